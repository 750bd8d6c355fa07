"""A file's sha256, read in blocks: cache entries' sums, fetched packages, archive stamps."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: Path) -> str:
    """The hex sha256 of the file at ``path`` (OSError if it cannot be read)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
