"""The kernel source: trees, Debian's source packages, patched work copies."""
