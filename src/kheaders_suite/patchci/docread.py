"""Reading a report document back (kheaders-ci-merge, tests): its version first, then the
keys each part must have, each refusal a one-line reason. A version 1 document (written
before retries and flaky findings existed) is read as version 2: no flaky findings, no
retry, exit statuses not known (document.py names what version 2 added)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, cast

from kheaders_suite.patchci.compare import CiVerdict
from kheaders_suite.patchci.document import (
    KIND,
    SCHEMA_VERSION,
    SIDES,
    JobDoc,
    LayoutsDoc,
    ReportDoc,
    RunDoc,
    SideDoc,
)


def _require(obj: Any, keys: Collection[str], where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: not a JSON object")
    missing = sorted(set(keys) - obj.keys())
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)}")
    return obj


READABLE = (1, SCHEMA_VERSION)
_V2_SIDE = {"exit_status": None, "rerun_after": "", "retry": None}
_FINDINGS = ("regressions", "fixes", "new", "removed", "infra_errors", "base_problems",
             "flaky")


def upgrade_v1(doc: dict[str, Any]) -> dict[str, Any]:
    """A version 1 document as version 2 (a copy): the keys version 2 added, empty."""
    jobs = []
    for job in doc.get("jobs") or []:
        if not isinstance(job, dict):
            jobs.append(job)
            continue
        job = {**job, "flaky": job.get("flaky", [])}
        for side in SIDES:
            if isinstance(job.get(side), dict):
                job[side] = {**_V2_SIDE, **job[side]}
        for key in _FINDINGS:
            if isinstance(job.get(key), list):
                job[key] = [{"retry": None, **f} if isinstance(f, dict) else f
                            for f in job[key]]
        jobs.append(job)
    return {**doc, "schema_version": SCHEMA_VERSION, "jobs": jobs}


def check_report(obj: Any) -> ReportDoc:
    """``obj`` as a report, or ValueError with a one-line reason: the version first, so a
    document of another version is named as such and not as a list of missing keys."""
    if isinstance(obj, dict) and obj.get("schema_version") not in READABLE:
        raise ValueError(f"schema_version {obj.get('schema_version')!r}, expected one of "
                         f"{', '.join(map(str, READABLE))}")
    if isinstance(obj, dict) and obj.get("schema_version") == 1:
        obj = upgrade_v1(obj)
    doc = _require(obj, ReportDoc.__required_keys__, "report")
    if doc["kind"] != KIND:
        raise ValueError(f"kind {doc['kind']!r}, expected {KIND!r}")
    _require(doc["run"], RunDoc.__required_keys__, "run")
    if not isinstance(doc["jobs"], list) or not doc["jobs"]:
        raise ValueError("jobs: not a non-empty list")
    for i, job in enumerate(doc["jobs"]):
        _require(job, JobDoc.__required_keys__, f"jobs[{i}]")
        if job["verdict"] not in tuple(CiVerdict):
            raise ValueError(f"jobs[{i}].verdict {job['verdict']!r} is not one of "
                             f"{', '.join(CiVerdict)}")
        for side in SIDES:
            _require(job[side], SideDoc.__required_keys__, f"jobs[{i}].{side}")
        if job.get("layouts") is not None:
            _require(job["layouts"], LayoutsDoc.__required_keys__, f"jobs[{i}].layouts")
    return cast(ReportDoc, doc)
