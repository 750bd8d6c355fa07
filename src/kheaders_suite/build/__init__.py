"""Building a kernel: the config, the keyed kernel build, cache entries."""
