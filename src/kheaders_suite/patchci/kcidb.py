"""The report in KCIDB's I/O format (schema v5.3), for a KernelCI submitter.

Per side of the comparison one checkout (base; base plus the series), per job and side one
build (the arch as "architecture", the variant as "config_name"), and under it one test per
pytest test plus "boot", and one per compile-timing point ("kheaders.timing.<compiler>.
<strategy>.N<n>", "kheaders.timing.extraction") whose "number" is the side's median in
seconds. Ids are "kheaders_suite:<run id>:<side>[:<target>[:<node id or timing path>]]",
stable for a run, so resubmitting the same run updates rather than duplicates.

Each BUG/WARNING/Oops/panic report a test's failure quotes is an incident of an issue. The
issue's id is made from the report's headline less what differs between occurrences (CPU,
PID, code offsets, addresses), not from the run, so one fault seen by many runs, on both
sides or on several targets, is one issue with an incident per test that hit it.

The format is validated in tests/test_patchci_output.py with KernelCI's own schema library
(kcidb-io); this module does not import it, so the suite runs without it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import Any

from kheaders_suite.patchci.document import SIDES, JobDoc, ReportDoc, RunDoc, SideDoc, side_of
from kheaders_suite.patchci.side import Outcome, SideStatus

ORIGIN = "kheaders_suite"
VERSION = {"major": 5, "minor": 3}
# Keyed by the documents' plain strings. An expected failure is KCIDB's SKIP and a strict
# XPASS its FAIL, as pytest counts them; misc.outcome keeps pytest's word for both.
_STATUS: dict[str, str] = {Outcome.PASS: "PASS", Outcome.FAIL: "FAIL", Outcome.ERROR: "ERROR",
                          Outcome.SKIP: "SKIP", Outcome.XFAIL: "SKIP", Outcome.XPASS: "FAIL"}
_PATH_JUNK = re.compile(r"[^A-Za-z0-9_-]+")  # KCIDB path parts: [a-zA-Z0-9_-]+, "." between
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
EXCERPT = 16384  # KCIDB's maxLength for log_excerpt
REGRESSED = "REGRESSED"  # timing.compare.Verdict.status of a point that got slower
ISSUE_VERSION = 0  # an issue made here is never revised: another headline is another issue
# What differs between two occurrences of one fault in a report's headline, and its stand-in.
_VOLATILE = (
    (re.compile(r"\bCPU: \d+ (?:UID: \d+ )?PID: \d+ "), ""),  # WARNING: CPU: 1 PID: 212 at
    (re.compile(r"\+0x[0-9a-f]+/0x[0-9a-f]+"), ""),  # ikheaders_read+0x3c/0x60
    (re.compile(r"\b(?:0x)?[0-9a-f]{12,}\b"), "<address>"),  # address: 0000000000000008
    (re.compile(r" ?\[#\d+\]"), ""),  # Oops: 0000 [#1]: the how-many-th oops
    (re.compile(r"\s+"), " "),
)


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


def _test(build_id: str, nodeid: str, path: str, status: str, message: str,
          **misc: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": f"{build_id}:{nodeid}", "build_id": build_id,
                           "origin": ORIGIN, "path": path, "status": status,
                           "misc": {"nodeid": nodeid, **misc}}
    if message:
        doc["log_excerpt"] = message[:EXCERPT]
    return doc


def _boot(build_id: str, job: JobDoc, s: SideDoc) -> dict[str, Any]:
    """The "boot" test: FAIL when the kernel said why it did not boot (a regression), ERROR
    when it never came up; misc.rerun_after when the side was run again for it."""
    failed = s["status"] == SideStatus.BOOT_FAILED
    blamed = any(f["kind"] == "boot" for f in job["regressions"])
    status = "PASS" if not failed else "FAIL" if blamed else "ERROR"
    misc = {"rerun_after": s["rerun_after"]} if s["rerun_after"] else {}
    return _test(build_id, "boot", "boot", status, s["message"] if failed else "", **misc)


def _verdicts(job: JobDoc) -> dict[str, str]:
    """The comparison's word on each retried test: "regression", "infra-error", "flaky"."""
    return {f["name"]: word for findings, word in ((job["regressions"], "regression"),
                                                   (job["infra_errors"], "infra-error"),
                                                   (job["flaky"], "flaky"))
            for f in findings if f["retry"]}


def _retries(build_id: str, job: JobDoc, s: SideDoc) -> list[dict[str, Any]]:
    """One more test per test the side ran again, "<node id>:retry", its second outcome."""
    if s["retry"] is None:
        return []
    verdicts = _verdicts(job)
    return [_test(build_id, f"{nodeid}:retry", kcidb_path(nodeid), _STATUS[t["outcome"]],
                  "\n\n".join([t["message"], *t.get("kernel", [])]), outcome=t["outcome"],
                  retry_of=f"{build_id}:{nodeid}", verdict=verdicts.get(nodeid, ""))
            for nodeid, t in s["retry"]["tests"].items()]


def _tests(build_id: str, job: JobDoc, side: str) -> list[dict[str, Any]]:
    s = side_of(job, side)
    tests = []
    if s["status"] in (SideStatus.OK, SideStatus.BOOT_FAILED):  # a failed build never booted
        tests.append(_boot(build_id, job, s))
    again = s["retry"]["tests"] if s["retry"] else {}
    tests += [_test(build_id, nodeid, kcidb_path(nodeid), _STATUS[t["outcome"]],
                    "\n\n".join([t["message"], *t.get("kernel", [])]), outcome=t["outcome"],
                    **({"retry": again[nodeid]["outcome"]} if nodeid in again else {}))
              for nodeid, t in s["tests"].items()]
    return tests + _retries(build_id, job, s)


def timing_path(target: str, key: str) -> str:
    """"x86_64-sysfs gcc extract-once N=4" (timing.compare's key) ->
    "kheaders.timing.gcc.extract-once.N4"."""
    parts = key.removeprefix(target).replace("=", "").split()
    return ".".join(["kheaders", "timing",
                     *(_PATH_JUNK.sub("_", p).strip("_") or "_" for p in parts)])


def seconds(value: float) -> dict[str, Any]:
    """A KCIDB test "number": seconds, shown with a metric prefix (ms, s)."""
    return {"value": float(value), "unit": "s", "prefix": "metric"}


def _timing_tests(build_id: str, job: JobDoc, side: str) -> list[dict[str, Any]]:
    """One test per timing point the side measured: DONE, or FAIL on the patched side of a
    point that regressed (the suite's own verdict, kheaders-compare's rule)."""
    tests = []
    for point in job["timing"]["points"]:
        summary = point["base"] if side == "base" else point["patched"]
        if summary is None:
            continue
        path = timing_path(job["target"], point["key"])
        failed = side == "patched" and point["status"] == REGRESSED
        misc: dict[str, Any] = {"key": point["key"], "samples": summary["count"],
                                "min": summary["min"], "max": summary["max"],
                                "comparison": point["status"]}
        if point["change"] is not None:
            misc["change"] = point["change"]
        tests.append({"id": f"{build_id}:{path}", "build_id": build_id, "origin": ORIGIN,
                      "path": path, "status": "FAIL" if failed else "DONE",
                      "number": seconds(summary["median"]), "comment": point["line"],
                      "misc": misc})
    return tests


def issue_signature(headline: str) -> str:
    """"WARNING: CPU: 1 PID: 212 at kernel/kheaders.c:52 ikheaders_read+0x3c/0x60" ->
    "WARNING: at kernel/kheaders.c:52 ikheaders_read": the same for every occurrence."""
    for pattern, stand_in in _VOLATILE:
        headline = pattern.sub(stand_in, headline)
    return headline.strip()


def issue_id(signature: str) -> str:
    return f"{ORIGIN}:kernel:{hashlib.sha256(signature.encode()).hexdigest()[:16]}"


def _incidents(test_id: str, reports: Sequence[str]) -> list[dict[str, Any]]:
    incidents = []
    for i, report in enumerate(reports):
        headline = report.split("\n", 1)[0]
        incidents.append({
            "id": f"{test_id}:kernel:{i}", "origin": ORIGIN,
            "issue_id": issue_id(issue_signature(headline)), "issue_version": ISSUE_VERSION,
            "test_id": test_id, "present": True, "comment": headline,
            "misc": {"report": report[:EXCERPT]}})
    return incidents


def _kernel_incidents(build_id: str, job: JobDoc, side: str) -> list[dict[str, Any]]:
    return [incident for nodeid, t in side_of(job, side)["tests"].items()
            for incident in _incidents(f"{build_id}:{nodeid}", t.get("kernel", []))]


def _issues(incidents: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One issue per signature the incidents name, in the order first seen."""
    issues: dict[str, dict[str, Any]] = {}
    for incident in incidents:
        signature = issue_signature(incident["comment"])
        issues.setdefault(incident["issue_id"], {
            "id": incident["issue_id"], "version": ISSUE_VERSION, "origin": ORIGIN,
            "comment": signature, "culprit": {"code": True},
            "misc": {"kind": "kernel report"}})
    return list(issues.values())


def kcidb_document(report: ReportDoc) -> dict[str, Any]:
    """The whole report as one KCIDB submission."""
    run = report["run"]
    builds, tests, incidents = [], [], []
    for job in report["jobs"]:
        for side in SIDES:
            build = _build(run["run_id"], job, side)
            builds.append(build)
            tests += _tests(build["id"], job, side) + _timing_tests(build["id"], job, side)
            incidents += _kernel_incidents(build["id"], job, side)
    return {"version": dict(VERSION), "checkouts": [_checkout(run, s) for s in SIDES],
            "builds": builds, "tests": tests, "issues": _issues(incidents),
            "incidents": incidents}
