"""The comparison as JUnit XML (junit.xml beside report.md), for CI systems that show JUnit.

One <testsuite> per job, named by its target; in it one <testcase> per test of the patched
side and one per finding that is no test (build, boot, results, archive, config), each with
the comparison's verdict, not the raw outcome: a regression is a <failure>, an
infrastructure error an <error>, a flaky test a pass whose properties and <system-out> say
both outcomes, a skip (xfail too, typed "pytest.xfail" as pytest writes it) a <skipped>. A
job whose base is broken compared nothing: its cases are the base's problems, as <error>s.
Every retried test carries the property "kheaders-retry" ("fail -> pass"). The sides' own
junit.xml files, pytest's, stay where run.py writes them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from kheaders_suite.patchci.document import FindingDoc, JobDoc, ReportDoc
from kheaders_suite.patchci.side import Outcome

JUNIT_NAME = "junit.xml"
RETRY_PROPERTY = "kheaders-retry"


def _findings(job: JobDoc) -> dict[str, tuple[str, FindingDoc]]:
    """Each finding by name (a test's node id, or its kind), with the element it makes
    ("": none, the test passed as far as the comparison goes)."""
    found: dict[str, tuple[str, FindingDoc]] = {}
    for tag, findings in (("failure", job["regressions"]), ("error", job["infra_errors"]),
                          ("", job["flaky"])):
        for f in findings:
            found.setdefault(f["name"], (tag, f))
    return found


def _case(suite: ET.Element, name: str, tag: str, finding: FindingDoc | None,
          outcome: str, message: str) -> None:
    case = ET.SubElement(suite, "testcase", classname=suite.get("name", ""), name=name)
    if finding is not None and finding["retry"]:
        props = ET.SubElement(case, "properties")
        ET.SubElement(props, "property", name=RETRY_PROPERTY,
                      value=f"{finding['patched']} -> {finding['retry']}")
    if tag:
        ET.SubElement(case, tag, message=message or outcome)
    elif outcome in (Outcome.SKIP, Outcome.XFAIL):
        kind = "pytest.xfail" if outcome == Outcome.XFAIL else "pytest.skip"
        ET.SubElement(case, "skipped", type=kind, message=message or outcome)
    if finding is not None and not tag and finding["retry"]:
        ET.SubElement(case, "system-out").text = (
            f"flaky: {finding['patched']}, then {finding['retry']} on a retry: {message}")


def _cases(suite: ET.Element, job: JobDoc) -> None:
    if job["base_problems"]:  # nothing was compared: the base's problems are the cases
        for f in job["base_problems"]:
            _case(suite, f"base {f['name']}", "error", None, f["base"] or "", f["message"])
        return
    found = _findings(job)
    tests = job["patched"]["tests"]
    others = [n for n, (_, f) in found.items() if f["kind"] != "test"]
    for name in [*others, *sorted(tests)]:
        tag, finding = found.get(name, ("", None))
        test = tests.get(name)
        outcome = test["outcome"] if test else ""
        message = finding["message"] if finding else test["message"] if test else ""
        _case(suite, name, tag, finding, outcome, message)


def _suite(root: ET.Element, job: JobDoc) -> None:
    suite = ET.SubElement(root, "testsuite", name=f"kheaders-ci.{job['target']}")
    _cases(suite, job)
    suite.set("tests", str(len(suite)))
    for tag, key in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
        suite.set(key, str(sum(1 for c in suite if c.find(tag) is not None)))


def junit_document(report: ReportDoc) -> str:
    root = ET.Element("testsuites", name=f"kheaders-ci {report['run']['run_id']}")
    for job in report["jobs"]:
        _suite(root, job)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, "unicode") + "\n"
