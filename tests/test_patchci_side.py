"""patchci.side: reading one side of a job from pytest's JUnit XML, results.json and the build
directory, without ever raising on a missing file (recorded inputs: tests/data/patchci/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kheaders_suite.patchci import side
from kheaders_suite.patchci.side import Outcome, TestCase

DATA = Path(__file__).parent / "data" / "patchci"
X86 = DATA / "x86_64-sysfs"
IDENTITY = "vmtests/test_archive.py::test_identity[x86_64-sysfs]"


@pytest.mark.parametrize(("classname", "name", "file", "want"), [
    ("vmtests.test_archive", "test_identity[x86_64-sysfs]", None, IDENTITY),
    ("vmtests.test_kheaders_ko.TestModule", "test_unload[arm64-proc]", None,
     "vmtests/test_kheaders_ko.py::TestModule::test_unload[arm64-proc]"),
    ("vmtests.test_x.TestA.TestB", "test_y", "vmtests/test_x.py",
     "vmtests/test_x.py::TestA::TestB::test_y"),
    ("test_top", "test_z", None, "test_top.py::test_z"),
])
def test_node_id_rebuilt_from_classname_and_name(classname: str, name: str, file: str | None,
                                                 want: str) -> None:
    assert side.nodeid(classname, name, file) == want


def test_junit_outcomes_keep_error_apart_from_failure() -> None:
    tests = side.parse_junit((X86 / "patched" / "junit.xml").read_text())
    assert tests[IDENTITY] == TestCase(
        IDENTITY, Outcome.FAIL,
        "AssertionError: archive lacks arch/x86/include/asm/page.h (and 431 more under "
        "arch/x86/include/)")
    member_list = tests["vmtests/test_archive.py::test_member_list[x86_64-sysfs]"]
    assert member_list.outcome == Outcome.ERROR
    assert member_list.message.startswith('failed on setup with "kheaders_suite.errors.VMLost')
    assert tests["vmtests/test_archive.py::test_layouts[x86_64-sysfs]"].outcome == Outcome.SKIP
    assert tests["vmtests/test_tamper_catalogue.py::test_catalogue"].outcome == Outcome.PASS
    assert len(tests) == 9


def test_failed_call_with_teardown_error_counts_as_failed() -> None:
    """pytest writes two <testcase> for it; the body's failure is what says most."""
    xml = """<testsuites><testsuite>
      <testcase classname="t" name="test_a"><failure message="assert 1 == 2">x</failure>
      </testcase>
      <testcase classname="t" name="test_a"><error message="failed on teardown">y</error>
      </testcase>
      <testcase classname="t" name="test_b"><error message="failed on teardown">y</error>
      </testcase>
      <testcase classname="t" name="test_c"><skipped type="pytest.xfail" message="known"/>
      </testcase></testsuite></testsuites>"""
    tests = side.parse_junit(xml)
    assert tests["t.py::test_a"] == TestCase("t.py::test_a", Outcome.FAIL, "assert 1 == 2")
    assert tests["t.py::test_b"].outcome == Outcome.ERROR
    assert tests["t.py::test_c"] == TestCase("t.py::test_c", Outcome.XFAIL, "known")


def test_message_falls_back_to_first_line_of_text() -> None:
    xml = '<testsuite><testcase classname="t" name="test_a"><failure>\n\n  boom\nmore' \
          '</failure></testcase></testsuite>'
    assert side.parse_junit(xml)["t.py::test_a"].message == "boom"


def test_loader_reads_recorded_side_and_follows_timing_record() -> None:
    s = side.load_side("x86_64", "sysfs", junit=X86 / "base" / "junit.xml",
                       results_json=X86 / "base" / "results.json")
    assert s.status == side.SideStatus.OK
    assert len(s.tests) == 9
    assert [r.kind for r in s.records] == ["boot", "verify", "verify", "timing"]
    assert len(s.timing) == 1
    assert (s.timing[0]["arch"], s.timing[0]["variant"]) == ("x86_64", "sysfs")
    assert s.notes == ()


def test_missing_junit_on_an_ok_side_is_no_results(tmp_path: Path) -> None:
    s = side.load_side("x86_64", "sysfs", junit=tmp_path / "junit.xml")
    assert s.status == side.SideStatus.NO_RESULTS
    assert "junit.xml unreadable" in s.message
    assert s.tests == {}


def test_missing_junit_after_failed_build_keeps_build_status(tmp_path: Path) -> None:
    s = side.load_side("x86_64", "sysfs", status=side.SideStatus.BUILD_FAILED,
                       message="make: *** [vmlinux] Error 2", junit=tmp_path / "junit.xml",
                       archive=tmp_path / "none.tar.xz", config=None)
    assert (s.status, s.message) == (side.SideStatus.BUILD_FAILED, "make: *** [vmlinux] Error 2")
    assert s.archive is None
    assert any("none.tar.xz does not exist" in n for n in s.notes)


def test_garbage_junit_and_results_become_notes_not_exceptions(tmp_path: Path) -> None:
    junit, results = tmp_path / "junit.xml", tmp_path / "results.json"
    junit.write_text("<testsuite><testcase")
    results.write_text("{not json")
    s = side.load_side("arm64", "proc", junit=junit, results_json=results)
    assert s.status == side.SideStatus.NO_RESULTS
    assert "not XML" in s.message
    assert len(s.notes) == 1
    assert "results.json unreadable" in s.notes[0]


def test_invalid_timing_document_is_noted_and_skipped(tmp_path: Path) -> None:
    bad = tmp_path / "x86_64-sysfs.json"
    bad.write_text(json.dumps({"schema": "something else"}))
    s = side.load_side("x86_64", "sysfs", junit=X86 / "base" / "junit.xml", timing=[bad])
    assert s.timing == ()
    assert "not a timing result" in s.notes[0]


def test_unknown_status_is_refused() -> None:
    """mypy refuses a status that is no SideStatus; so does load_side, for unchecked callers."""
    with pytest.raises(ValueError, match="expected one of ok, build-failed"):
        side.load_side("x86_64", "sysfs", status="exploded")  # type: ignore[arg-type]


def test_build_outputs_from_build_json_and_fallback(tmp_path: Path) -> None:
    named = tmp_path / "named"
    named.mkdir()
    (named / "a.tar.xz").write_bytes(b"x")
    (named / "dot-config").write_text("CONFIG_IKHEADERS=y\n")
    (named / "build.json").write_text(json.dumps(
        {"archive": str(named / "a.tar.xz"), "config": str(named / "dot-config")}))
    assert side.build_outputs(named) == (named / "a.tar.xz", named / "dot-config")
    died = tmp_path / "died"
    died.mkdir()
    (died / "config").write_text("CONFIG_IKHEADERS=y\n")
    assert side.build_outputs(died) == (None, died / "config")


def test_a_kernel_report_in_a_fixture_is_the_kernels_fail_and_harness_errors_stay() -> None:
    """An <error> from kernellog.KernelReported (a WARNING at boot) is blamed like a FAIL; an
    infrastructure <error> (plugin: a VM lost inside a test body) stays an ERROR."""
    xml = """<testsuites><testsuite>
      <testcase classname="t" name="test_a"><error message='failed on setup with
      "kheaders_suite.session.kernellog.KernelReported: kernel reported during the boot"'>y</error>
      </testcase>
      <testcase classname="t" name="test_b"><error
        message="infrastructure: VMLost: VM lost (x86_64-proc)">z</error></testcase>
      </testsuite></testsuites>"""
    tests = side.parse_junit(xml)
    assert tests["t.py::test_a"].outcome == Outcome.FAIL
    assert tests["t.py::test_a"].message.startswith("failed on setup with")
    assert tests["t.py::test_b"].outcome == Outcome.ERROR


def test_the_kernels_reports_are_read_from_failures_and_errors() -> None:
    """x86_64-sysfs/patched-kernel: a WARNING quoted by a failed body (the plugin's
    AssertionError), the same WARNING and a BUG by a set-up error (KernelReported), each kept
    whole from its headline, without the quote pytest closes the error message with."""
    tests = side.parse_junit((X86 / "patched-kernel" / "junit.xml").read_text())
    release = tests["vmtests/test_archive.py::test_release[x86_64-sysfs]"]
    unload = tests["vmtests/test_kheaders_ko.py::TestModule::test_unload[x86_64-sysfs]"]
    assert [r.splitlines()[0] for r in release.kernel] == [
        "WARNING: CPU: 1 PID: 212 at kernel/kheaders.c:52 ikheaders_read+0x3c/0x60"]
    assert release.kernel[0].endswith("---[ end trace 0000000000000000 ]---")
    assert (unload.outcome, [r.splitlines()[0] for r in unload.kernel]) == (Outcome.FAIL, [
        "WARNING: CPU: 0 PID: 187 at kernel/kheaders.c:52 ikheaders_read+0x3c/0x60",
        "BUG: sleeping function called from invalid context at kernel/module/main.c:3047"])
    assert unload.kernel[1].endswith("</TASK>")
    assert [t.nodeid for t in tests.values() if t.kernel] == [release.nodeid, unload.nodeid]


@pytest.mark.parametrize("message", [
    "AssertionError: dmesg shows no 'WARNING: CPU: 0 PID: 1 at x.c:1 f+0x0/0x1'",
    'failed on setup with "VMLost: VM lost; console: Kernel panic - not syncing: VFS"',
])
def test_a_report_not_quoted_as_the_kernels_is_none(message: str) -> None:
    """Only what follows the plugin's "kernel reported during" is the kernel's: a test that
    talks about a WARNING, or an infrastructure error quoting the console, has none."""
    assert side.kernel_reports(message) == ()
