"""The per-run result file: one JSON document per (arch, variant), every raw sample kept.

Schema "kheaders-suite/compile-timing/1" (validate() checks it; tests/test_timing.py too):

    schema, arch, variant, release, accel, guest_cpus (asked), online_cpus (the guest's),
    sweep, created, host                                                   (identity)
    archive, preinstalled, workload (file names), ns, reps, warmup         (what ran)
    compilers {name: version}, compilers_skipped {name: why}, environment  (the guest)
    extraction {warmup, samples, tmpfs_bytes, files, bytes, ...}  (extract-once's fixed cost)
    calibration {argv, warmup, samples}      (a fixed CPU loop once per round: host speed)
    overhead [{strategy, n, steps, warmup, samples}]       (the same jobs, every step `true`)
    points [{compiler, strategy, n, warmup, samples, tmpfs_peak_bytes, batches}]
    failures [{strategy, compiler, n, round, job, rc, step, stderr}]
    resident {decompress_seconds, files, bytes, roots, failures,   (frontend.py resident; or null)
              points [{source, n, warmup, samples, batches}]}

Samples are wall seconds of one batch (N jobs started together, until the last one ends).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kheaders_suite.records import target_id
from kheaders_suite.timing.sweep import SweepPlan

SCHEMA = "kheaders-suite/compile-timing/1"
_TOP: dict[str, type | tuple[type, ...]] = {
    "schema": str, "arch": str, "variant": str, "release": str, "accel": str,
    "guest_cpus": int, "online_cpus": int, "sweep": str, "workload": list, "ns": list, "reps": int,
    "extraction": dict, "overhead": list, "points": list, "failures": list,
    "compilers": dict, "compilers_skipped": dict,
}
_POINT: dict[str, type | tuple[type, ...]] = {
    "compiler": str, "strategy": str, "n": int, "samples": list, "warmup": list,
    "tmpfs_peak_bytes": list, "batches": list,
}


def document(raw: dict[str, Any], *, arch: str, variant: str, release: str, accel: str,
             guest_cpus: int, online_cpus: int, plan: SweepPlan, archive: str,
             preinstalled: str) -> dict[str, Any]:
    env = dict(raw.get("environment", {}))
    return {
        "schema": SCHEMA, "arch": arch, "variant": variant, "release": release, "accel": accel,
        "guest_cpus": guest_cpus, "online_cpus": online_cpus, "sweep": plan.sweep,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": platform.node(), "archive": archive, "preinstalled": preinstalled,
        "workload": [p.name for p in plan.files], "ns": list(plan.ns), "reps": plan.reps,
        "warmup": plan.warmup, "warmup_ns": list(plan.warmup_ns),
        "compilers": env.pop("compiler_versions", {}),
        "compilers_skipped": raw.get("compilers_skipped", {}), "environment": env,
        "extraction": raw["extraction"], "overhead": raw["overhead"], "points": raw["points"],
        "calibration": raw.get("calibration", {}), "resident": raw.get("resident"),
        "failures": raw["failures"], "total_seconds": raw.get("total_seconds"),
        "ssh_seconds": raw.get("ssh_seconds"),
    }


def validate(doc: Any) -> list[str]:
    """Every way ``doc`` departs from the schema (empty: valid)."""
    if not isinstance(doc, dict):
        return ["document is not an object"]
    problems = [f"{key}: missing or not {_name(kind)}" for key, kind in _TOP.items()
                if not isinstance(doc.get(key), kind)]
    if doc.get("schema") != SCHEMA:
        problems.append(f"schema: {doc.get('schema')!r}, expected {SCHEMA!r}")
    for i, point in enumerate(doc.get("points") or []):
        problems += [f"points[{i}].{key}: missing or not {_name(kind)}"
                     for key, kind in _POINT.items() if not isinstance(point.get(key), kind)]
        if not all(isinstance(s, int | float) and s > 0 for s in point.get("samples") or []):
            problems.append(f"points[{i}].samples: not all positive numbers")
    extraction = doc.get("extraction")
    if isinstance(extraction, dict) and not isinstance(extraction.get("samples"), list):
        problems.append("extraction.samples: missing or not list")
    return problems


def _name(kind: type | tuple[type, ...]) -> str:
    return kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)


def file_name(arch: str, variant: str) -> str:
    return f"{target_id(arch, variant)}.json"


def write(doc: dict[str, Any], directory: Path) -> Path:
    """Write atomically (xdist workers share the directory)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / file_name(doc["arch"], doc["variant"])
    partial = path.with_suffix(f".json.{os.getpid()}")
    partial.write_text(json.dumps(doc, indent=1, sort_keys=True))
    os.replace(partial, path)
    return path


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def load_dir(directory: Path) -> Iterator[dict[str, Any]]:
    """Every valid result document in ``directory``, in name order."""
    for path in sorted(directory.glob("*.json")):
        try:
            doc = load(path)
        except (OSError, ValueError):
            continue
        if not validate(doc):
            yield doc


def points(doc: dict[str, Any]) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Points keyed (compiler, strategy, n)."""
    return {(p["compiler"], p["strategy"], int(p["n"])): p for p in doc["points"]}
