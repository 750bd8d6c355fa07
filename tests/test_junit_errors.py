"""plugin/junit.py: an infrastructure fault in a test body, carried as a user property, makes
its <failure> an <error> in the JUnit file pytest wrote; patch CI reads it as an ERROR."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from kheaders_suite.patchci import side
from kheaders_suite.plugin import junit
from kheaders_suite.report.verdict import INFRA_PROPERTY

WRITTEN = f'''<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">\
<testsuite name="pytest" errors="1" failures="2" skipped="0" tests="4" time="1.0">\
<testcase classname="vmtests.test_archive" name="test_lost[x86_64-sysfs]" time="0.1">\
<properties><property name="{INFRA_PROPERTY}" value="VM lost during the test (EOFError: x)"/>\
</properties><failure message="EOFError: x">vmtests/test_archive.py:9: EOFError</failure>\
</testcase>\
<testcase classname="vmtests.test_archive" name="test_fails[x86_64-sysfs]" time="0.1">\
<failure message="AssertionError: size 0">x</failure></testcase>\
<testcase classname="vmtests.test_archive" name="test_setup[x86_64-sysfs]" time="0.0">\
<properties><property name="{INFRA_PROPERTY}" value="GuestTimeout: 60s"/></properties>\
<error message="failed on teardown with &quot;VMLost: gone&quot;">x</error></testcase>\
<testcase classname="vmtests.test_archive" name="test_passes[x86_64-sysfs]" time="0.1"/>\
</testsuite></testsuites>'''


def test_an_infrastructure_failure_becomes_an_error_and_the_counts_follow() -> None:
    root = ET.fromstring(WRITTEN)
    assert junit.infra_as_errors(root) == 1
    suite = next(root.iter("testsuite"))
    assert (suite.get("failures"), suite.get("errors")) == ("1", "2")
    lost, fails, setup, _ = suite.iter("testcase")
    error = lost.find("error")
    assert error is not None
    assert lost.find("failure") is None
    assert error.get("message") == "infrastructure: VM lost during the test (EOFError: x)"
    assert error.text == "vmtests/test_archive.py:9: EOFError"
    assert [c.tag for c in fails] == ["failure"]  # the kernel's FAIL stays one
    assert [c.tag for c in setup] == ["properties", "error"]  # already an error: untouched


def test_the_rewritten_file_reads_as_an_error_in_patch_ci(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(WRITTEN)
    junit.rewrite(path)
    text = path.read_text()
    assert text.startswith('<?xml version="1.0" encoding="utf-8"?><testsuites')
    cases = side.parse_junit(text)
    lost = cases["vmtests/test_archive.py::test_lost[x86_64-sysfs]"]
    assert lost.outcome == side.Outcome.ERROR
    assert lost.message.startswith("infrastructure: VM lost during the test")
    assert cases["vmtests/test_archive.py::test_fails[x86_64-sysfs]"].outcome == side.Outcome.FAIL


def test_a_file_without_infrastructure_failures_is_left_as_written(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    clean = WRITTEN.replace(f'name="{INFRA_PROPERTY}"', 'name="other"')
    path.write_text(clean)
    junit.rewrite(path)
    assert path.read_text() == clean
