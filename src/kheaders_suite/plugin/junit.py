"""An infrastructure fault in a test body is an <error> in the JUnit file, not a <failure>;
a kernel fault in a set-up or teardown (a panic at boot, kheaders.ko not loading) is a
<failure>, not an <error>: CI systems count the two apart, and patch CI blames a series for
a <failure> only.

pytest's JUnit writer makes every failed test body a <failure>. The blame travels with the
test as a user property (verdict.INFRA_PROPERTY, which the writer puts in the test's
<properties>); once the writer has written the file, each <failure> of a test with that
property becomes an <error> whose message is "infrastructure: <reason>", each <error> of a
test with verdict.KERNEL_PROPERTY a <failure> whose message is "kernel: <the fault>", and
the suite's failures and errors counts follow. Only public ground: the --junitxml option, the user
properties, and the file itself.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kheaders_suite.report.verdict import INFRA_PROPERTY, KERNEL_PROPERTY

JUNIT_PATH = pytest.StashKey[Path]()  # the file --junitxml names, made absolute at start-up


def infra_reason(case: ET.Element, name: str = INFRA_PROPERTY) -> str | None:
    """The reason a <testcase> carries as property ``name``, if any."""
    for prop in case.iter("property"):
        if prop.get("name") == name:
            return prop.get("value", "")
    return None


def _retag(case: ET.Element) -> int:
    """+1 when this case's <failure> became an <error>, -1 for the reverse, else 0."""
    reason = infra_reason(case)
    failure = case.find("failure")
    if reason is not None and failure is not None:
        failure.tag = "error"
        failure.set("message", f"infrastructure: {reason}")
        return 1
    fault = infra_reason(case, KERNEL_PROPERTY)
    errors = case.findall("error")
    if fault is None or not errors or failure is not None:
        return 0
    errors[0].tag = "failure"
    errors[0].set("message", f"kernel: {fault}")
    for extra in errors[1:]:  # a set-up and a teardown both failed: one verdict per test
        case.remove(extra)
    return -len(errors)


def infra_as_errors(root: ET.Element) -> int:
    """Turn each infrastructure <failure> under ``root`` into an <error>, and each kernel
    fault's <error> into a <failure>; how many cases changed."""
    changed = 0
    for suite in root.iter("testsuite"):
        moves = [_retag(case) for case in suite.iter("testcase")]
        to_errors = sum(m for m in moves if m > 0)
        to_failures = sum(1 for m in moves if m < 0)
        dropped = -sum(m for m in moves if m < 0) - to_failures
        for count, step in (("failures", to_failures - to_errors),
                            ("errors", to_errors - to_failures - dropped)):
            if step and suite.get(count, "").isdigit():
                suite.set(count, str(int(suite.get(count, "0")) + step))
        changed += sum(1 for m in moves if m)
    return changed


def rewrite(path: Path) -> None:
    """Rewrite the JUnit file at ``path`` in place when it has infrastructure failures, in
    the writer's own shape (an XML declaration, then the tree)."""
    root = ET.parse(path).getroot()
    if infra_as_errors(root):
        path.write_text('<?xml version="1.0" encoding="utf-8"?>'
                        + ET.tostring(root, encoding="unicode"), encoding="utf-8")


def pytest_configure(config: pytest.Config) -> None:
    """Where the JUnit file goes, resolved as pytest resolves it (environment variables,
    ~, relative to the directory the run started in), so a test changing directory does
    not move it. xdist workers write none."""
    value = config.getoption("xmlpath", None)
    if value and not hasattr(config, "workerinput"):
        path = os.path.expanduser(os.path.expandvars(str(value)))
        config.stash[JUNIT_PATH] = Path(os.path.normpath(os.path.abspath(path)))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """After pytest's JUnit writer (trylast): the file is complete by now."""
    path = session.config.stash.get(JUNIT_PATH, None)
    if path is not None and path.is_file():
        rewrite(path)
