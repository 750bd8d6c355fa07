"""The report in KCIDB's I/O format (schema v5.3), for a KernelCI submitter.

Per side of the comparison one checkout (base; base plus the series), per job and side one
build (the arch as "architecture", the variant as "config_name"), and under it one test per
pytest test plus "boot". Ids are "kheaders_suite:<run id>:<side>[:<target>[:<node id>]]",
stable for a run, so resubmitting the same run updates rather than duplicates. The format is
validated in tests/test_patchci_output.py with KernelCI's own schema library (kcidb-io); this
module does not import it, so the suite runs without it.
"""

from __future__ import annotations

import re
from typing import Any

from kheaders_suite.patchci.document import SIDES, JobDoc, ReportDoc, RunDoc, side_of
from kheaders_suite.patchci.side import Outcome, SideStatus

ORIGIN = "kheaders_suite"
VERSION = {"major": 5, "minor": 3}
_STATUS: dict[str, str] = {Outcome.PASS: "PASS", Outcome.FAIL: "FAIL", Outcome.ERROR: "ERROR",
                          Outcome.SKIP: "SKIP"}  # keyed by the documents' plain strings
_PATH_JUNK = re.compile(r"[^A-Za-z0-9_-]+")  # KCIDB path parts: [a-zA-Z0-9_-]+, "." between
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
EXCERPT = 16384  # KCIDB's maxLength for log_excerpt


def object_id(run_id: str, *parts: str) -> str:
    return ":".join((ORIGIN, run_id, *parts))


def kcidb_path(nodeid: str) -> str:
    """"vmtests/test_archive.py::test_identity[x86_64-sysfs]" ->
    "kheaders.test_archive.test_identity.x86_64-sysfs": KCIDB paths are dot-separated parts
    of [a-zA-Z0-9_-], so the directory goes and everything else is made to fit."""
    file, *names = nodeid.split("::")
    params = ""
    if names and (match := re.fullmatch(r"(.*?)\[(.*)\]", names[-1])):
        names[-1], params = match.group(1), match.group(2)
    parts = ["kheaders", file.rsplit("/", 1)[-1].removesuffix(".py"), *names, params]
    return ".".join(_PATH_JUNK.sub("_", p).strip("_") or "_" for p in parts if p)


def _checkout(run: RunDoc, side: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": object_id(run["run_id"], side), "origin": ORIGIN}
    if run["tree_name"]:
        doc["tree_name"] = run["tree_name"]
    if run["git_url"].startswith("https://"):
        doc["git_repository_url"] = run["git_url"]
    commit = run["patched_commit"] if side == "patched" and run["patched_commit"] \
        else run["base_commit"]
    if _SHA1.match(commit):
        doc["git_commit_hash"] = commit
    if run["base_ref"]:
        doc["git_commit_name"] = run["base_ref"]
    if side == "patched":
        if _SHA256.match(run["patchset_hash"]) and not run["patched_commit"]:
            doc["patchset_hash"] = run["patchset_hash"]
        if run["series"]:
            doc["comment"] = run["series"]
        if "@" in run["message_id"]:
            doc["message_id"] = run["message_id"].strip("<>")
    return doc


def _build(run_id: str, job: JobDoc, side: str) -> dict[str, Any]:
    s = side_of(job, side)
    doc: dict[str, Any] = {
        "id": object_id(run_id, side, job["target"]),
        "checkout_id": object_id(run_id, side), "origin": ORIGIN,
        "architecture": job["arch"], "config_name": job["variant"],
        "status": "FAIL" if s["status"] == SideStatus.BUILD_FAILED else "PASS",
        "misc": {"side": side, "variant": job["variant"], "status": s["status"],
                 "verdict": job["verdict"]}}
    if s["status"] == SideStatus.BUILD_FAILED and s["message"]:
        doc["log_excerpt"] = s["message"][-EXCERPT:]
    return doc


def _test(build_id: str, nodeid: str, path: str, status: str, message: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": f"{build_id}:{nodeid}", "build_id": build_id,
                           "origin": ORIGIN, "path": path, "status": status,
                           "misc": {"nodeid": nodeid}}
    if message:
        doc["log_excerpt"] = message[:EXCERPT]
    return doc


def _tests(build_id: str, job: JobDoc, side: str) -> list[dict[str, Any]]:
    s = side_of(job, side)
    tests = []
    if s["status"] in (SideStatus.OK, SideStatus.BOOT_FAILED):  # a failed build never booted
        boot = "PASS" if s["status"] == SideStatus.OK else "ERROR"
        tests.append(_test(build_id, "boot", "boot", boot,
                           s["message"] if s["status"] == SideStatus.BOOT_FAILED else ""))
    tests += [_test(build_id, nodeid, kcidb_path(nodeid), _STATUS[t["outcome"]], t["message"])
              for nodeid, t in s["tests"].items()]
    return tests


def kcidb_document(report: ReportDoc) -> dict[str, Any]:
    """The whole report as one KCIDB submission."""
    run = report["run"]
    builds, tests = [], []
    for job in report["jobs"]:
        for side in SIDES:
            build = _build(run["run_id"], job, side)
            builds.append(build)
            tests += _tests(build["id"], job, side)
    return {"version": dict(VERSION), "checkouts": [_checkout(run, s) for s in SIDES],
            "builds": builds, "tests": tests}
