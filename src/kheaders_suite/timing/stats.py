"""Summaries of timing samples: median, min, max and spread = (max - min) / median."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    count: int
    median: float
    min: float
    max: float

    @property
    def spread(self) -> float:
        """(max - min) / median: the relative width of the samples (0 for one sample)."""
        return (self.max - self.min) / self.median if self.median > 0 else 0.0

    @property
    def range(self) -> float:
        return self.max - self.min


def summarize(samples: Sequence[float]) -> Summary:
    if not samples:
        raise ValueError("no samples to summarize")
    return Summary(len(samples), statistics.median(samples), min(samples), max(samples))


def ratio(part: float, whole: float) -> float:
    return part / whole if whole > 0 else float("inf")
