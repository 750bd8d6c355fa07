"""Inter-process file locks, so xdist workers build one key once and share it."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from kheaders_suite.errors import InfraError
from kheaders_suite.host.deadline import Deadline


@contextmanager
def file_lock(path: Path, timeout: float,
              waiting: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (created if missing), waiting at most ``timeout``;
    ``waiting`` is called once if another holder makes us wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = Deadline(timeout)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if waiting is not None:
                    waiting()
                    waiting = None
                if deadline.expired:
                    raise InfraError(f"waited {timeout:.0f}s for lock {path}") from None
                deadline.sleep(0.5)
        yield
    finally:
        os.close(fd)
