"""Result records for the run's results.json, and the table for pytest's terminal summary.

record_fields(doc, path) condenses one result document into the fields of a timing record
(report.results.TimingRecord.of); summary_lines(records) turns records as results.json holds
them (any kinds: others are ignored) into the lines of the table.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kheaders_suite.records import target_id
from kheaders_suite.timing import noise
from kheaders_suite.timing.stats import summarize

KINDS = ("timing", "bcc")
HEADER = (f"{'target':<16} {'compiler':<9} {'strategy':<14} {'N':>3} {'median':>8} {'min':>8} "
          f"{'max':>8} {'spread':>7} {'kept':>7} {'s/compile':>9} {'cpu/job':>7} "
          f"{'maxrss':>7} {'tmpfs':>8}")


def _summary(samples: Sequence[float]) -> dict[str, float]:
    s = summarize(samples)
    return {"median": round(s.median, 4), "min": s.min, "max": s.max,
            "spread": round(s.spread, 4)}


def point_fields(point: dict[str, Any], files: int,
                 kept: list[int] | None = None) -> dict[str, Any]:
    """``kept``: the rounds the calibration loop calls undisturbed (noise.kept_rounds)."""
    rss = [b["maxrss_kb"].get("compile", 0) for b in point["batches"]]
    fields = {"compiler": point["compiler"], "strategy": point["strategy"], "n": point["n"],
              "samples": len(point["samples"]), **_summary(point["samples"]),
              "spread_kept": noise.kept_spread(point["samples"], kept),
              "cpu_per_job": noise.cpu_per_job(point),
              "maxrss_kb": max(rss, default=0),
              "tmpfs_peak_bytes": max(point["tmpfs_peak_bytes"], default=0)}
    fields["per_compile"] = round(fields["median"] / (point["n"] * max(1, files)), 4)
    return fields


def batch_share(point: dict[str, Any], key: str) -> float | None:
    """Median over the measured batches of ``key`` (seconds) / batch wall."""
    measured = noise.measured_batches(point)
    shares = [b[key] / b["wall"] for b in measured if key in b and b.get("wall")]
    return round(statistics.median(shares), 5) if shares else None


def overhead_fields(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Per gcc point, as shares of the samples: "harness", the measuring loop's own busy time
    after wait4() returns (reported, not asserted: it is not where the noise is); "spawn",
    time in posix_spawn (process creation and exec, which any job runner pays); "empty", the
    same jobs with `true` steps against the real median (the process-creation floor of the
    workload). The last two are reported only."""
    empty = {(o["strategy"], o["n"]): summarize(o["samples"]).median for o in doc["overhead"]}
    out = []
    for p in doc["points"]:
        if p["compiler"] != "gcc" or not p["samples"]:
            continue
        real = summarize(p["samples"]).median
        floor = empty.get((p["strategy"], p["n"]))
        out.append({"strategy": p["strategy"], "n": p["n"],
                    "harness": batch_share(p, "loop_seconds"),
                    "spawn": batch_share(p, "spawn_seconds"), "empty_seconds": floor,
                    "empty": round(floor / real, 5) if floor is not None and real else None})
    return out


def resident_fields(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The parse-only comparison (frontend.py resident), condensed; None when not run."""
    resident = doc.get("resident")
    if not resident:
        return None
    points = [{"source": p["source"], "n": p["n"], **_summary(p["samples"]),
               "maxrss_kb": max((b["maxrss_kb"] for b in p["batches"]), default=0),
               "cpu_seconds": round(statistics.median(
                   b["cpu_seconds"] for b in noise.measured_batches(p)), 4)}
              for p in resident["points"] if p["samples"]]
    return {"decompress_seconds": resident["decompress_seconds"], "bytes": resident["bytes"],
            "files": resident["files"], "failures": resident["failures"], "points": points,
            "used_files": resident.get("used_files"), "used_bytes": resident.get("used_bytes")}


def record_fields(doc: dict[str, Any], path: Path | None = None) -> dict[str, Any]:
    files = len(doc["workload"])
    kept = noise.kept_rounds(doc)
    extraction = doc["extraction"]
    return {
        "arch": doc["arch"], "variant": doc["variant"], "release": doc["release"],
        "accel": doc["accel"], "guest_cpus": doc["guest_cpus"],
        "online_cpus": doc["online_cpus"], "sweep": doc["sweep"],
        "workload": doc["workload"], "json": str(path) if path else None,
        "total_seconds": doc.get("total_seconds"),
        "extraction": {**_summary(extraction["samples"] or extraction["warmup"]),
                       "tmpfs_bytes": extraction.get("tmpfs_bytes"),
                       "bytes": extraction.get("bytes"), "files": extraction.get("files")},
        "points": [point_fields(p, files, kept) for p in doc["points"] if p["samples"]],
        "rounds": {"measured": len((doc.get("calibration") or {}).get("samples") or []),
                   "kept": kept},
        "overhead": overhead_fields(doc), "failures": len(doc["failures"]),
        "compilers_skipped": doc["compilers_skipped"], "resident": resident_fields(doc),
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _rounds_line(target: str, rounds: dict[str, Any] | None) -> str:
    if not rounds or rounds.get("kept") is None:
        return f"  {target}: no calibration loop: every round kept"
    kept, measured = rounds["kept"], rounds["measured"]
    return (f"  {target}: 'kept' is the spread without the {measured - len(kept)} of {measured} "
            f"rounds whose calibration loop ran > {noise.TOLERANCE:.0%} slower than the "
            f"fastest (host interference); cpu/job: the guest's CPU seconds per job")


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value / 1e6:.1f}MB"


def _worst(rec: dict[str, Any], key: str) -> str:
    values = [o[key] for o in rec["overhead"] if o.get(key) is not None]
    return f"{max(values):.2%}" if values else "-"


def _timing_lines(rec: dict[str, Any]) -> list[str]:
    target = rec.get("target") or target_id(rec["arch"], rec["variant"])
    lines = []
    for p in sorted(rec["points"], key=lambda p: (p["compiler"], p["n"], p["strategy"])):
        lines.append(
            f"{target:<16} {p['compiler']:<9} {p['strategy']:<14} {p['n']:>3} "
            f"{p['median']:>8.3f} {p['min']:>8.3f} {p['max']:>8.3f} {p['spread']:>7.1%} "
            f"{_pct(p.get('spread_kept')):>7} {p['per_compile']:>9.3f} "
            f"{_num(p.get('cpu_per_job')):>7} {p['maxrss_kb'] / 1024:>5.0f}MB "
            f"{_mb(p['tmpfs_peak_bytes']):>8}")
    x = rec["extraction"]
    lines.append(
        f"  {target}: {rec['release']} {rec['accel']} {rec['online_cpus']} vCPUs online "
        f"({rec['guest_cpus']} asked), "
        f"{len(rec['workload'])} files/job; one-time extraction {x['median']:.2f}s "
        f"[{x['min']:.2f}-{x['max']:.2f}], {_mb(x.get('tmpfs_bytes'))} tmpfs; "
        f"worst point: harness loop {_worst(rec, 'harness')}, spawn+exec "
        f"{_worst(rec, 'spawn')}, `true`-step jobs {_worst(rec, 'empty')}; "
        f"{rec['failures']} failed jobs" + (f"; {rec['json']}" if rec.get("json") else ""))
    lines.append(_rounds_line(target, rec.get("rounds")))
    lines += _resident_lines(target, rec.get("resident"))
    lines += [f"  {target}: {name} skipped: {why[:120]}"
              for name, why in rec.get("compilers_skipped", {}).items()]
    return lines


def _resident_lines(target: str, res: dict[str, Any] | None) -> list[str]:
    if not res:
        return []
    lines = [f"  {target}: libclang parse only, headers already decompressed (decompression "
             f"{res['decompress_seconds']:.2f}s once, {_mb(res['bytes'])} in memory, "
             f"{res['failures']} failed parses; memory-used: the {res.get('used_files')} "
             f"headers the program includes, {_mb(res.get('used_bytes'))}):"]
    for p in sorted(res["points"], key=lambda p: (p["n"], p["source"])):
        lines.append(f"    headers {p['source']:<11} N={p['n']:<2} median {p['median']:.3f}s "
                     f"[{p['min']:.3f}-{p['max']:.3f}] spread {p['spread']:.1%}, "
                     f"peak RSS {p['maxrss_kb'] / 1024:.0f}MB")
    return lines


def _bcc_line(rec: dict[str, Any]) -> str:
    cold, warm = rec.get("cold", []), rec.get("warm", [])
    def fmt(xs: list[float]) -> str:
        return f"{summarize(xs).median:.2f}s (n={len(xs)})" if xs else "-"
    return (f"{rec['target']:<16} bcc BPF() with the kheaders archive: cold {fmt(cold)} "
            f"(extract + compile), warm {fmt(warm)} (reused {rec.get('cache_dir', '$TMPDIR')})")


def summary_lines(records: list[dict[str, Any]]) -> list[str]:
    """The terminal-summary table; [] when no record is of a timing kind."""
    timing = [r for r in records if r.get("kind", "timing") == "timing" and "points" in r]
    bcc = [r for r in records if r.get("kind") == "bcc"]
    if not timing and not bcc:
        return []
    lines = ["kheaders compile timing: in-guest wall seconds per batch of N parallel jobs "
             "(median, min, max, spread=(max-min)/median)"]
    if timing:
        lines.append(HEADER)
        for rec in sorted(timing, key=lambda r: (r["arch"], r["variant"])):
            lines += _timing_lines(rec)
    lines += [_bcc_line(r) for r in sorted(bcc, key=lambda r: str(r.get("target")))]
    return lines
