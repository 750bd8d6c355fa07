"""The retry in every output of a report: Markdown, report.json (schema 2, and version 1
documents still read), the comparison's JUnit and KCIDB (validated with kcidb-io)."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from kcidb_io.schema import LATEST  # type: ignore[import-untyped]

from kheaders_suite.patchci import compare, docread, document, junitreport, kcidb, render
from kheaders_suite.patchci.side import Outcome, Retry, SideResult, SideStatus, TestCase
from tests.test_patchci_output import RUN, sections

P, F, E = Outcome.PASS, Outcome.FAIL, Outcome.ERROR
ID = "vmtests/test_archive.py::test_{}[x86_64-sysfs]"
FLAKY, REGRESSED, XFAILED = ID.format("flaky"), ID.format("identity"), ID.format("stale")


def retried_report() -> document.ReportDoc:
    """One job: a test lost its VM once (ERROR, then PASS: flaky), one FAILs twice
    (a regression), one is an expected failure on both sides."""
    def tests(*cases: tuple[str, Outcome, str]) -> dict[str, TestCase]:
        return {n: TestCase(n, o, m) for n, o, m in cases}
    base = SideResult("x86_64", "sysfs", SideStatus.OK, exit_status=0, tests=tests(
        (FLAKY, P, ""), (REGRESSED, P, ""), (XFAILED, Outcome.XFAIL, "stale archive")))
    patched = SideResult("x86_64", "sysfs", SideStatus.OK, exit_status=1, tests=tests(
        (FLAKY, E, "infrastructure: VMLost: QEMU killed"), (REGRESSED, F, "AssertionError: x"),
        (XFAILED, Outcome.XFAIL, "stale archive")),
        retry=Retry((FLAKY, REGRESSED), tests((FLAKY, P, ""), (REGRESSED, F, "AssertionError: x")),
                    1))
    return document.job_report(compare.compare_job(base, patched, layout_probe=None), RUN)


def test_markdown_has_a_flaky_section_with_both_outcomes() -> None:
    md = render.markdown(retried_report())
    got = sections(md)
    assert got["Flaky"].split("\n\n")[1:3] == [
        "Failed once on the patched side, then not on a retry (a fresh VM, the same build): "
        "both outcomes shown; not blamed on the series, not clean either.",
        "**x86_64-sysfs**"]
    assert f"- `{FLAKY}` (pass -> error; retry: pass): infrastructure: VMLost" in got["Flaky"]
    assert f"- `{REGRESSED}` (pass -> fail; retry: fail): AssertionError" in got["Regressions"]
    assert "- patched: 2 tests run again on a fresh VM (pytest exit 1)" in got["Notes"]
    assert md.rstrip().endswith("Exit status 1 (0 clean or flaky, 1 regression, 2 infra error "
                                "or broken base).")


def test_flaky_only_is_its_own_verdict_with_exit_0() -> None:
    doc = retried_report()
    job = doc["jobs"][0]
    job["regressions"] = []
    alone = document.report_doc([{**job, "verdict": "flaky", "exit_status": 0}], doc["run"])
    assert (alone["verdict"], alone["exit_status"]) == ("flaky", 0)
    assert "| x86_64 | flaky |" in render.markdown(alone)


def test_report_json_keeps_the_retry_and_reads_back() -> None:
    doc = retried_report()
    again = docread.check_report(json.loads(json.dumps(doc)))
    assert again == doc
    job = doc["jobs"][0]
    assert [(f["name"], f["patched"], f["retry"]) for f in job["flaky"]] == [(FLAKY, "error",
                                                                              "pass")]
    assert job["patched"]["exit_status"] == 1
    assert job["patched"]["retry"] == {"asked": [FLAKY, REGRESSED], "exit_status": 1, "tests": {
        FLAKY: {"outcome": "pass", "message": ""},
        REGRESSED: {"outcome": "fail", "message": "AssertionError: x"}}}
    assert job["patched"]["tests"][XFAILED]["outcome"] == "xfail"


def as_version_1(doc: document.ReportDoc) -> dict[str, Any]:
    """The document as version 1 wrote it: none of the keys version 2 added."""
    old: dict[str, Any] = copy.deepcopy(dict(doc))
    old["schema_version"] = 1
    for job in old["jobs"]:
        del job["flaky"]
        for side in ("base", "patched"):
            for key in ("exit_status", "rerun_after", "retry"):
                del job[side][key]
        for key in ("regressions", "fixes", "new", "removed", "infra_errors", "base_problems"):
            for finding in job[key]:
                del finding["retry"]
    return old


def test_a_version_1_document_still_reads_and_renders(tmp_path: Path) -> None:
    old = as_version_1(retried_report())
    doc = docread.check_report(old)
    assert doc["schema_version"] == 2
    job = doc["jobs"][0]
    assert (job["flaky"], job["patched"]["retry"], job["patched"]["exit_status"]) == (
        [], None, None)
    assert all(f["retry"] is None for f in job["regressions"])
    assert len(render.write_outputs(tmp_path, doc)) == 4


def test_junit_of_the_comparison_marks_the_retry() -> None:
    root = ET.fromstring(junitreport.junit_document(retried_report()))
    (suite,) = root
    assert suite.get("name") == "kheaders-ci.x86_64-sysfs"
    cases = {c.get("name"): c for c in suite}
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"),
            suite.get("skipped")) == ("3", "1", "0", "1")
    flaky = cases[FLAKY]
    assert [(p.get("name"), p.get("value")) for p in flaky.iter("property")] == [
        ("kheaders-retry", "error -> pass")]
    assert flaky.find("failure") is None
    assert flaky.find("error") is None
    assert flaky.findtext("system-out") == (
        "flaky: error, then pass on a retry: infrastructure: VMLost: QEMU killed")
    regressed = cases[REGRESSED]
    assert regressed.find("failure") is not None
    assert [p.get("value") for p in regressed.iter("property")] == ["fail -> fail"]
    skipped = cases[XFAILED].find("skipped")
    assert skipped is not None
    assert skipped.get("type") == "pytest.xfail"


def test_kcidb_has_the_retry_as_a_test_of_its_own() -> None:
    doc = kcidb.kcidb_document(retried_report())
    assert LATEST.validate(doc) is doc
    build = "kheaders_suite:gh-4242-1:patched:x86_64-sysfs"
    by_id = {t["id"]: t for t in doc["tests"]}
    first, retry = by_id[f"{build}:{FLAKY}"], by_id[f"{build}:{FLAKY}:retry"]
    assert (first["status"], first["misc"]["retry"]) == ("ERROR", "pass")
    assert (retry["status"], retry["path"], retry["misc"]["verdict"],
            retry["misc"]["retry_of"]) == ("PASS", first["path"], "flaky", first["id"])
    assert by_id[f"{build}:{REGRESSED}:retry"]["misc"]["verdict"] == "regression"
    stale = by_id[f"{build}:{XFAILED}"]
    assert (stale["status"], stale["misc"]["outcome"]) == ("SKIP", "xfail")
