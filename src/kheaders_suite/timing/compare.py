"""kheaders-compare OLD.json NEW.json: flag points that got slower beyond the samples' noise.

A point (compiler, strategy, N; plus the one-time extraction) is REGRESSED only when both hold:

1. no overlap: every new sample is slower than every old one (min(new) > max(old)). With
   5 + 5 samples and no real change that happens by chance with probability 1/252 (it is the
   extreme of a Mann-Whitney U test: U = 0); with 3 + 3, 1/20;
2. the median moved by more than the noise: median(new) - median(old) exceeds both the mean
   of the two ranges ((max-min)(old) + (max-min)(new)) / 2 and a floor of 3% of the old
   median (two very tight sets a hair apart are not a regression worth a red build).

The mirror image is reported as "improved"; anything else is "ok" (within noise). Points with
fewer than 3 samples on either side are "few" and never judged. Exit status: 1 if any point
regressed, 0 otherwise, 2 on unreadable or invalid input.

Host speed: samples of one run agree closely with each other, but two runs on a shared TCG
host can differ by 25% because the host was busier (measured: the same code, minutes apart).
When both files carry the calibration loop (a fixed CPU-bound shell loop run once per round,
with nothing of the kernel under test in it), the new samples are first divided by
median(new calibration) / median(old calibration); the line shows the raw change and the
adjusted one, and the rule judges the adjusted samples.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from kheaders_suite.records import target_id
from kheaders_suite.timing import results
from kheaders_suite.timing.stats import Summary, summarize

MIN_SAMPLES = 3
FLOOR = 0.03
IDENTITY = ("arch", "variant", "accel", "online_cpus", "workload", "release")


class PointStatus(StrEnum):
    """A point's verdict (module docstring); the values are what the report lines say."""

    REGRESSED = "REGRESSED"
    IMPROVED = "improved"
    OK = "ok"  # within noise
    FEW = "few"  # fewer than MIN_SAMPLES on a side: not judged
    NEW = "new"  # in NEW only
    GONE = "gone"  # in OLD only


@dataclass(frozen=True)
class Verdict:
    key: str
    status: PointStatus
    old: Summary | None
    new: Summary | None
    speed: float = 1.0  # new host time / old host time, from the calibration loops

    @property
    def change(self) -> float | None:
        if self.old is None or self.new is None or self.old.median <= 0:
            return None
        return self.new.median / self.old.median - 1

    def line(self) -> str:
        def fmt(s: Summary | None) -> str:
            return "-" if s is None else f"{s.median:.3f} [{s.min:.3f}-{s.max:.3f}] n={s.count}"
        change = "" if self.change is None else f" {self.change:+.1%}"
        if self.change is not None and self.speed != 1.0:
            change += f" ({(1 + self.change) / self.speed - 1:+.1%} host-speed adjusted)"
        return f"{self.status:<9} {self.key}: old {fmt(self.old)}, new {fmt(self.new)}{change}"


def judge(old: Sequence[float], new: Sequence[float]) -> PointStatus:
    """The rule in the module docstring, for one point."""
    if len(old) < MIN_SAMPLES or len(new) < MIN_SAMPLES:
        return PointStatus.FEW
    a, b = summarize(old), summarize(new)
    threshold = max((a.range + b.range) / 2, FLOOR * a.median)
    if b.min > a.max and b.median - a.median > threshold:
        return PointStatus.REGRESSED
    if b.max < a.min and a.median - b.median > threshold:
        return PointStatus.IMPROVED
    return PointStatus.OK


def samples_by_point(doc: dict[str, Any]) -> dict[str, list[float]]:
    target = target_id(doc["arch"], doc["variant"])
    out = {f"{target} extraction": list(doc["extraction"].get("samples") or [])}
    for (compiler, strategy, n), point in sorted(results.points(doc).items()):
        out[f"{target} {compiler} {strategy} N={n}"] = list(point["samples"])
    return out


def host_speed(old: dict[str, Any], new: dict[str, Any]) -> float:
    """median(new calibration) / median(old calibration); 1.0 unless both have enough."""
    a = (old.get("calibration") or {}).get("samples") or []
    b = (new.get("calibration") or {}).get("samples") or []
    if len(a) < MIN_SAMPLES or len(b) < MIN_SAMPLES:
        return 1.0
    return summarize(b).median / summarize(a).median


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[Verdict]:
    a, b = samples_by_point(old), samples_by_point(new)
    speed = host_speed(old, new)
    verdicts = []
    for key in sorted(a.keys() | b.keys()):
        sa, sb = a.get(key), b.get(key)
        if sa is None or sb is None:
            status = PointStatus.NEW if sa is None else PointStatus.GONE
        else:
            status = judge(sa, [x / speed for x in sb])
        verdicts.append(Verdict(key, status, summarize(sa) if sa else None,
                                summarize(sb) if sb else None, speed))
    return verdicts


def notes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Differences in run identity (the comparison may not mean much across them), and the
    host-speed factor when one is applied."""
    lines = [f"note: {field} differs: {old.get(field)!r} -> {new.get(field)!r}"
             for field in IDENTITY if old.get(field) != new.get(field)]
    speed = host_speed(old, new)
    if speed != 1.0:
        lines.append(f"note: the calibration loop ran {abs(speed - 1):.1%} "
                     f"{'slower' if speed > 1 else 'faster'} in NEW; new samples are judged "
                     "after dividing that out")
    return lines


def _load(path: Path) -> dict[str, Any]:
    try:
        doc = results.load(path)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"kheaders-compare: {path}: {exc}") from None
    problems = results.validate(doc)
    if problems:
        raise SystemExit(f"kheaders-compare: {path}: not a timing result: {problems[0]}")
    return doc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kheaders-compare", description=__doc__.split("\n\n")[0],
        epilog="A point regresses only if new min > old max and the median shift exceeds "
               "both the mean of the two ranges and 3%% of the old median, after dividing "
               "out the host-speed drift the calibration loops show.")
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    args = parser.parse_args(argv)
    try:
        old, new = _load(args.old), _load(args.new)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    for line in notes(old, new):
        print(line)
    verdicts = compare(old, new)
    for verdict in verdicts:
        print(verdict.line())
    return 1 if any(v.status == PointStatus.REGRESSED for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
