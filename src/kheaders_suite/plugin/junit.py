"""An infrastructure fault in a test body is an <error> in the JUnit file, not a <failure>:
CI systems count the two apart, and patch CI never blames a series for an <error>.

pytest's JUnit writer makes every failed test body a <failure>. The blame travels with the
test as a user property (verdict.INFRA_PROPERTY, which the writer puts in the test's
<properties>); once the writer has written the file, each <failure> of a test with that
property becomes an <error> whose message is "infrastructure: <reason>", and the suite's
failures and errors counts follow. Only public ground: the --junitxml option, the user
properties, and the file itself.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kheaders_suite.report.verdict import INFRA_PROPERTY

JUNIT_PATH = pytest.StashKey[Path]()  # the file --junitxml names, made absolute at start-up


def infra_reason(case: ET.Element) -> str | None:
    """The infrastructure reason a <testcase> carries as a property, if any."""
    for prop in case.iter("property"):
        if prop.get("name") == INFRA_PROPERTY:
            return prop.get("value", "")
    return None


def infra_as_errors(root: ET.Element) -> int:
    """Turn each infrastructure <failure> under ``root`` into an <error>; how many."""
    changed = 0
    for suite in root.iter("testsuite"):
        moved = 0
        for case in suite.iter("testcase"):
            reason = infra_reason(case)
            failure = case.find("failure")
            if reason is None or failure is None:
                continue
            failure.tag = "error"
            failure.set("message", f"infrastructure: {reason}")
            moved += 1
        for count, step in (("failures", -moved), ("errors", moved)):
            if moved and suite.get(count, "").isdigit():
                suite.set(count, str(int(suite.get(count, "0")) + step))
        changed += moved
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
