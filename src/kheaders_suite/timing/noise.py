"""Where a point's spread comes from: rounds the host slowed down.

Every measured round starts with the calibration loop (sweep.CALIBRATION: a fixed CPU-bound
shell loop with nothing of the kernel under test in it), so sample i of every point and
calibration sample i belong to the same round. A round whose loop ran more than TOLERANCE
slower than the fastest round's was slowed by the host (another guest, a build, the page
cache): its samples are kept in the document and the table, and the spread is reported a
second time without them, with how many rounds that discarded. The guest's CPU seconds per
job sit beside the wall time: wall time that grows while CPU time does not is waiting, CPU time
that grows with it is the vCPU running slower (TCG under host contention).
"""

from __future__ import annotations

import statistics
from typing import Any

from kheaders_suite.timing.stats import summarize

TOLERANCE = 0.10


def kept_rounds(doc: dict[str, Any]) -> list[int] | None:
    """Indices of the measured rounds the calibration loop calls undisturbed; None without a
    calibration."""
    loops = (doc.get("calibration") or {}).get("samples") or []
    if not loops:
        return None
    fastest = min(loops)
    return [i for i, s in enumerate(loops) if s <= (1 + TOLERANCE) * fastest]


def kept_spread(samples: list[float], kept: list[int] | None) -> float | None:
    """The spread of the samples of undisturbed rounds (None when fewer than two remain or
    the rounds do not line up with the calibration's)."""
    if kept is None:
        return None
    chosen = [samples[i] for i in kept if i < len(samples)]
    return round(summarize(chosen).spread, 4) if len(chosen) >= 2 else None


def measured_batches(point: dict[str, Any]) -> list[dict[str, Any]]:
    """The batches of a point's measured rounds (its warm-up batches come first)."""
    batches: list[dict[str, Any]] = point["batches"]
    return batches[len(batches) - len(point["samples"]):]


def cpu_per_job(point: dict[str, Any]) -> float | None:
    """Median over the measured batches of the guest's CPU seconds per job."""
    per = [b["cpu_seconds"] / point["n"] for b in measured_batches(point) if "cpu_seconds" in b]
    return round(statistics.median(per), 3) if per else None
