"""Running things on the host: processes, locks, deadlines, the guardian, required tools."""
