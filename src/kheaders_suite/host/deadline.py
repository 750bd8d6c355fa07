"""Deadlines instead of bare sleep loops: every wait in the suite is bounded."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


@dataclass
class Deadline:
    """A point in monotonic time; ``remaining`` never goes below zero."""

    seconds: float
    clock: Callable[[], float] = time.monotonic
    start: float = field(init=False)

    def __post_init__(self) -> None:
        self.start = self.clock()

    @property
    def remaining(self) -> float:
        return max(0.0, self.start + self.seconds - self.clock())

    @property
    def expired(self) -> bool:
        return self.remaining <= 0.0

    @property
    def elapsed(self) -> float:
        return self.clock() - self.start

    def sleep(self, interval: float) -> None:
        """Sleep ``interval`` seconds, or less if the deadline comes first."""
        time.sleep(min(interval, self.remaining))


def poll(
    probe: Callable[[], T | None],
    deadline: Deadline,
    interval: float,
) -> T | None:
    """Call ``probe`` until it returns something, or the deadline expires (then None)."""
    while True:
        value = probe()
        if value is not None:
            return value
        if deadline.expired:
            return None
        deadline.sleep(interval)
