"""Load benchmark: the whole suite of one arch, several times in a row.

    .venv/bin/python benchmarks/load.py [--runs 5] [--arch x86_64] [--workers 2]
                                        [--out results/load.json] [-- PYTEST ARGS...]

Each run is ``pytest vmtests --arch A -n W -m "not timing"`` (the sweeps measure time, not
robustness) on the embedded default kernel. Before the first run and after every run it
counts the processes a run may leave behind (QEMU, virtme-ng, virtiofsd, compilers, make,
pytest workers) and sizes the cache: every build entry, the object trees and ccache apart.
It prints one line per run and a verdict: every run passed, no process left, and the cache
did not grow after the first run (the builds it needs are made once, then reused).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kheaders_suite.catalog.paths import REPO_ROOT, default_cache_dir

WATCHED = ("qemu-system", "vng", "virtme", "virtiofsd", "cc1", "make", "ld", "pytest")


def processes() -> dict[str, int]:
    """How many live processes' command lines start with each WATCHED name (ours excluded)."""
    counts = dict.fromkeys(WATCHED, 0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        names = [Path(a.decode(errors="replace")).name for a in argv[:3] if a]
        for watched in WATCHED:
            if any(n.startswith(watched) for n in names):
                counts[watched] += 1
    return counts


def du(path: Path) -> int:
    """Bytes used under ``path`` (0 when absent); hard links counted once, as du does."""
    if not path.exists():
        return 0
    out = subprocess.run(("du", "-sb", str(path)), capture_output=True, text=True, check=False)
    return int(out.stdout.split()[0]) if out.stdout else 0


def cache_sizes(cache: Path) -> dict[str, int]:
    builds = cache / "builds"
    return {"total": du(cache), "builds": du(builds), "work": du(cache / "work"),
            "ccache": du(cache / "ccache"),
            "entries": sum(1 for _ in builds.iterdir()) if builds.is_dir() else 0}


def one_run(arch: str, workers: int, extra: list[str], out: Path, k: int) -> dict[str, Any]:
    argv = [sys.executable, "-m", "pytest", "vmtests", "--arch", arch, "-n", str(workers),
            "-m", "not timing", "-q", "-p", "no:cacheprovider",
            "--results-dir", str(out.parent / f"load-run{k}"), *extra]
    start = time.monotonic()
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    log = out.parent / f"load-run{k}.log"
    log.write_text(done.stdout + done.stderr)
    tail = done.stdout.strip().splitlines()[-1:] or [""]
    return {"run": k, "seconds": round(time.monotonic() - start, 1), "exit": done.returncode,
            "summary": tail[0], "log": str(log)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--arch", default="x86_64")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results/load.json")
    parser.add_argument("pytest_args", nargs="*")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cache = default_cache_dir()
    report: dict[str, Any] = {"before": {"processes": processes(),
                                         "cache": cache_sizes(cache)}, "runs": []}
    print(f"load: before: processes {report['before']['processes']}, "
          f"cache {report['before']['cache']}", flush=True)
    for k in range(1, args.runs + 1):
        run = one_run(args.arch, args.workers, args.pytest_args, args.out, k)
        run["processes"], run["cache"] = processes(), cache_sizes(cache)
        report["runs"].append(run)
        print(f"load: run {k}: {run['seconds']:.0f}s exit {run['exit']} ({run['summary']}); "
              f"processes {run['processes']}; cache {run['cache']}", flush=True)
    report["verdict"] = verdict(report)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"load: {report['verdict']}")
    return 0 if report["verdict"].startswith("ok") else 1


def verdict(report: dict[str, Any]) -> str:
    """ok, or every way the runs fell short."""
    runs = report["runs"]
    problems = [f"run {r['run']} exit {r['exit']}" for r in runs if r["exit"] != 0]
    base = report["before"]["processes"]
    problems += [f"run {r['run']} left {name}: {count - base[name]}"
                 for r in runs for name, count in r["processes"].items() if count > base[name]]
    if len(runs) > 1:
        first = runs[0]["cache"]
        problems += [f"run {r['run']}: {key} grew {first[key]} -> {r['cache'][key]}"
                     for r in runs[1:] for key in ("builds", "work", "entries")
                     if r["cache"][key] > first[key] * 1.01]
    return f"ok: {len(runs)} runs" if not problems else "; ".join(problems)


if __name__ == "__main__":
    sys.exit(main())
