"""Booting a build: the virtme-ng launch, the guest's root, init and home, the accelerator,
the console."""
