"""Small programs the suite uploads and runs inside the guest (with the guest's python3)."""

from __future__ import annotations

from importlib import resources


def source(name: str) -> bytes:
    return resources.files(__package__).joinpath(name).read_bytes()
