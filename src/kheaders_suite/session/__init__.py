"""Talking to a booted guest: the SSH session, the agent link, the kernel log,
connecting once booted, a variant's guest steps."""
