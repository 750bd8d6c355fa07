"""Talking to a booted guest: the SSH session, the agent link, command results, the kernel log."""
