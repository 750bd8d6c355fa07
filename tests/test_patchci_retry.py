"""patchci.compare's rules on synthetic sides: every pair of outcomes, the retry before a
verdict, boot failures by side, sides that ran nothing, and pytest's exit status; and the
JUnit reading of xfail, strict XPASS and the plugin's kernel failures."""

from __future__ import annotations

import pytest

from kheaders_suite.patchci import compare, side
from kheaders_suite.patchci.compare import CiVerdict, Finding
from kheaders_suite.patchci.side import Outcome, Retry, SideResult, SideStatus, TestCase

P, F, E, S, XF, XP = (Outcome.PASS, Outcome.FAIL, Outcome.ERROR, Outcome.SKIP,
                      Outcome.XFAIL, Outcome.XPASS)
T = "vmtests/test_archive.py::test_identity[x86_64-sysfs]"
OTHER = "vmtests/test_archive.py::test_release[x86_64-sysfs]"
PANIC = ("kernel: the boot of x86_64-sysfs failed: KernelReported: kernel reported during "
         "the boot of x86_64-sysfs (from the console log: the VM is gone):\n\n"
         "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n"
         "CPU: 0 UID: 0 PID: 1 Comm: swapper/0 Not tainted 6.12.117-dirty #1\n"
         "---[ end Kernel panic - not syncing: VFS: Unable to mount root fs ]---")
VM_LOST = ('failed on setup with "kheaders_suite.plugin.boots.BootFailed: the boot of '
           'x86_64-sysfs failed: VMLost: no SSH after 300 s"')


def case(outcome: Outcome, message: str = "", nodeid: str = T) -> TestCase:
    return TestCase(nodeid, outcome, message or f"{outcome} message")


def sides(base: Outcome | None, patched: Outcome | None, retry: Outcome | None = None,
          asked: bool | None = None) -> tuple[SideResult, SideResult]:
    """One test (T) with these outcomes, beside one that PASSes on both sides; ``retry``: its
    outcome on the retry (None with ``asked``: the retry left no result for it)."""
    keep = {OTHER: case(P, nodeid=OTHER)}
    b = {**keep, **({T: case(base)} if base else {})}
    p = {**keep, **({T: case(patched)} if patched else {})}
    again = Retry((T,), {T: case(retry, "retry said so")} if retry else {}, 0) \
        if retry or asked else None
    return (SideResult("x86_64", "sysfs", SideStatus.OK, tests=b, exit_status=0),
            SideResult("x86_64", "sysfs", SideStatus.OK, tests=p, exit_status=1, retry=again))


def job(base: SideResult, patched: SideResult) -> compare.JobReport:
    return compare.compare_job(base, patched, layout_probe=None)


def group_of(report: compare.JobReport) -> tuple[str, Finding] | None:
    """Which of the job's lists holds T, and its finding there."""
    for name in ("regressions", "fixes", "new", "removed", "infra", "flaky"):
        for f in getattr(report, name):
            if f.name == T:
                return name, f
    return None


# --- every pair of outcomes ------------------------------------------------------------------

@pytest.mark.parametrize(("base", "patched", "want"), [
    (P, F, "regressions"), (P, S, "regressions"), (P, XF, "regressions"), (P, E, "infra"),
    (P, P, None), (P, XP, None),
    (S, F, "regressions"), (S, P, None), (S, XF, None), (S, S, None),
    (None, F, "regressions"), (None, P, "new"), (None, S, "new"), (None, XF, "new"),
    (None, E, "infra"),
    (F, P, "fixes"), (F, XP, "fixes"), (F, F, None), (F, S, None), (F, XF, None),
    (XF, XP, "fixes"), (XF, P, "fixes"), (XF, F, "regressions"), (XF, S, "regressions"),
    (XF, XF, None),
    (XP, XF, "regressions"), (XP, F, "regressions"), (XP, S, "regressions"), (XP, P, None),
    (P, None, "removed"), (F, None, "removed"),
])
def test_every_pair_of_outcomes(base: Outcome | None, patched: Outcome | None,
                                want: str | None) -> None:
    found = group_of(job(*sides(base, patched)))
    assert (found[0] if found else None) == want
    verdicts = {"regressions": CiVerdict.REGRESSION, "infra": CiVerdict.INFRA_ERROR}
    assert job(*sides(base, patched)).verdict == verdicts.get(want or "", CiVerdict.CLEAN)


def test_lost_coverage_is_a_regression_with_the_skips_reason() -> None:
    base, patched = sides(P, P)
    patched = SideResult("x86_64", "sysfs", SideStatus.OK, exit_status=0, tests={
        **patched.tests, T: TestCase(T, S, "no BTF in this build")})
    assert job(base, patched).regressions == (
        Finding("test", T, P, S, "lost coverage: no BTF in this build"),)


def test_a_new_test_that_fails_is_a_regression() -> None:
    report = job(*sides(None, F))
    assert report.regressions == (Finding("test", T, None, F, "fail message"),)
    assert report.new == ()


# --- the retry -------------------------------------------------------------------------------

def test_retry_candidates_are_fail_regressions_and_errors() -> None:
    base = {f"t{i}": TestCase(f"t{i}", o) for i, o in enumerate((P, P, P, S, F, P, P))}
    patched = {f"t{i}": TestCase(f"t{i}", o) for i, o in enumerate((F, E, S, F, F, P, XF))}
    patched["new"] = TestCase("new", F)
    patched["new-error"] = TestCase("new-error", E)
    assert compare.retry_candidates(base, patched) == ["new", "new-error", "t0", "t1", "t3",
                                                       "t6"]


@pytest.mark.parametrize(("base", "first", "again", "group", "message", "verdict"), [
    (P, F, F, "regressions", "fail message", CiVerdict.REGRESSION),  # repeats
    (P, F, P, "flaky", "fail message", CiVerdict.FLAKY),  # did not repeat
    (P, E, E, "infra", "error message", CiVerdict.INFRA_ERROR),
    (P, E, P, "flaky", "error message", CiVerdict.FLAKY),  # QEMU killed once
    (P, E, F, "regressions", "retry said so", CiVerdict.REGRESSION),  # the kernel's, after all
    (P, F, E, "infra", "retry said so", CiVerdict.INFRA_ERROR),  # not confirmed either way
    (P, F, S, "regressions", "lost coverage: retry said so", CiVerdict.REGRESSION),
    (None, F, P, "flaky", "fail message", CiVerdict.FLAKY),
    (F, E, F, "flaky", "error message", CiVerdict.FLAKY),  # FAIL on both: nothing new
])
def test_the_retry_decides(base: Outcome | None, first: Outcome, again: Outcome, group: str,
                           message: str, verdict: CiVerdict) -> None:
    report = job(*sides(base, first, again))
    assert group_of(report) == (group, Finding("test", T, base, first, message, again))
    assert report.verdict == verdict


def test_flaky_alone_exits_0_and_ranks_below_infra() -> None:
    assert compare.EXIT_STATUS[CiVerdict.FLAKY] == 0
    assert compare.report_verdict([CiVerdict.CLEAN, CiVerdict.FLAKY]) == CiVerdict.FLAKY
    assert compare.report_verdict([CiVerdict.FLAKY, CiVerdict.INFRA_ERROR]) == \
        CiVerdict.INFRA_ERROR
    assert compare.report_verdict([CiVerdict.FLAKY, CiVerdict.REGRESSION]) == \
        CiVerdict.REGRESSION


def test_a_retry_that_left_no_result_keeps_the_first_outcome() -> None:
    assert group_of(job(*sides(P, F, asked=True))) == (
        "regressions", Finding("test", T, P, F, "fail message"))
    assert group_of(job(*sides(P, E, asked=True)))[0] == "infra"  # type: ignore[index]


def test_a_broken_base_retries_and_blames_nothing() -> None:
    base, patched = sides(P, F, F)
    broken = SideResult("x86_64", "sysfs", SideStatus.OK, exit_status=1,
                        tests={**base.tests, OTHER: case(E, nodeid=OTHER)})
    report = job(broken, patched)
    assert (report.verdict, report.regressions, report.flaky) == (CiVerdict.BASE_BROKEN, (), ())


# --- boot failures by side -------------------------------------------------------------------

def booting(status: SideStatus, message: str, rerun_after: str = "") -> SideResult:
    """A side whose one test (T) says ``message``; "": it PASSed."""
    tests = {T: side.parse_junit(junit_case(message))[T]} if message else {T: case(P)}
    return SideResult("x86_64", "sysfs", status, message.split("\n")[0], tests,
                      exit_status=1, rerun_after=rerun_after)


def junit_case(message: str) -> str:
    tag = "failure" if message.startswith("kernel: ") else "error"
    quoted = message.replace("&", "&amp;").replace('"', "&quot;").replace("\n", "&#10;")
    return (f'<testsuites><testsuite><testcase classname="vmtests.test_archive" '
            f'name="test_identity[x86_64-sysfs]"><{tag} message="{quoted}">x</{tag}>'
            "</testcase></testsuite></testsuites>")


def test_patched_kernel_that_panics_at_boot_is_a_regression_quoting_the_panic() -> None:
    base = booting(SideStatus.OK, "")
    patched = booting(SideStatus.BOOT_FAILED, PANIC)
    assert not compare.needs_rerun(base, patched)  # the kernel said why: no second boot
    report = job(base, patched)
    assert report.verdict == CiVerdict.REGRESSION
    assert report.regressions == (Finding(
        "boot", "boot", SideStatus.OK, SideStatus.BOOT_FAILED,
        "patched kernel did not boot: Kernel panic - not syncing: VFS: Unable to mount root "
        "fs on unknown-block(0,0)"),)


def test_both_sides_failing_to_boot_is_a_broken_base() -> None:
    base = booting(SideStatus.BOOT_FAILED, PANIC)
    patched = booting(SideStatus.BOOT_FAILED, PANIC)
    assert not compare.needs_rerun(base, patched)
    report = job(base, patched)
    assert (report.verdict, report.regressions) == (CiVerdict.BASE_BROKEN, ())


def test_a_silent_boot_failure_is_run_again_then_infra_if_it_repeats() -> None:
    base = booting(SideStatus.OK, "")
    first = booting(SideStatus.BOOT_FAILED, VM_LOST)
    assert compare.needs_rerun(base, first)
    assert job(base, first).verdict == CiVerdict.INFRA_ERROR  # were it not run again
    again = booting(SideStatus.BOOT_FAILED, VM_LOST, rerun_after=first.message)
    assert not compare.needs_rerun(base, again)  # once
    report = job(base, again)
    assert report.verdict == CiVerdict.INFRA_ERROR
    assert report.infra == (Finding("boot", "boot", SideStatus.OK, SideStatus.BOOT_FAILED,
                                    first.message, SideStatus.BOOT_FAILED),)


def test_a_silent_boot_failure_that_boots_the_second_time_is_flaky() -> None:
    base, patched = sides(P, P)
    rerun = SideResult("x86_64", "sysfs", SideStatus.OK, tests=patched.tests, exit_status=0,
                       rerun_after=VM_LOST)
    report = job(base, rerun)
    assert report.verdict == CiVerdict.FLAKY
    assert report.flaky == (Finding("boot", "boot", SideStatus.OK, SideStatus.BOOT_FAILED,
                                    VM_LOST, SideStatus.OK),)


# --- sides that ran nothing ------------------------------------------------------------------

def skipped_everything() -> SideResult:
    return SideResult("x86_64", "sysfs", SideStatus.OK, exit_status=0,
                      tests={T: case(S), OTHER: case(S, nodeid=OTHER)})


@pytest.mark.parametrize(("nothing", "why"), [
    (SideResult("x86_64", "sysfs", SideStatus.OK, exit_status=5), "pytest collected no test "
                                                                  "(exit 5)"),
    (skipped_everything(), "pytest skipped every test (2)"),
    (SideResult("x86_64", "sysfs", SideStatus.OK, exit_status=2, tests={T: case(P)}),
     "pytest stopped (exit 2, interrupted): its results are incomplete"),
    (SideResult("x86_64", "sysfs", SideStatus.OK, exit_status=-9, tests={T: case(P)}),
     "pytest stopped (exit -9, killed by signal 9): its results are incomplete"),
])
def test_a_side_that_ran_nothing_is_never_clean(nothing: SideResult, why: str) -> None:
    assert compare.ran_nothing(nothing) == why
    assert job(nothing, nothing).verdict == CiVerdict.BASE_BROKEN
    assert job(nothing, nothing).base_problems[0].message == why
    ok = SideResult("x86_64", "sysfs", SideStatus.OK, exit_status=0,
                    tests={T: case(P), OTHER: case(P, nodeid=OTHER)})
    # patched: an infrastructure error, and its lost coverage (if any) a regression
    patched_job = job(ok, nothing)
    assert patched_job.verdict in (CiVerdict.INFRA_ERROR, CiVerdict.REGRESSION)
    assert [f.message for f in patched_job.infra] == [why]


def test_the_exit_status_of_a_normal_run_is_no_finding() -> None:
    assert job(*sides(P, P)).verdict == CiVerdict.CLEAN  # exit 0 and 1: outcomes decide


# --- JUnit: xfail, strict XPASS, the kernel's failures ----------------------------------------

XML = """<testsuites><testsuite>
  <testcase classname="t" name="test_xfail"><skipped type="pytest.xfail" message="stale"/>
  </testcase>
  <testcase classname="t" name="test_xpass"><failure message="[XPASS(strict)] stale">x
  </failure></testcase>
  <testcase classname="t" name="test_skip"><skipped type="pytest.skip" message="no BTF"/>
  </testcase>
  <testcase classname="t" name="test_modprobe"><failure message="kernel: kernel interface
failed: modprobe -d /tmp/m kheaders (exit 1): modprobe: ERROR: could not insert 'kheaders':
Cannot allocate memory">x</failure></testcase>
  <testcase classname="t" name="test_infra"><error message="infrastructure: VMLost: gone">x
  </error></testcase>
</testsuite></testsuites>"""


def test_xfail_and_strict_xpass_are_outcomes_of_their_own() -> None:
    tests = side.parse_junit(XML)
    assert [(t.nodeid, t.outcome) for t in tests.values()] == [
        ("t.py::test_xfail", XF), ("t.py::test_xpass", XP), ("t.py::test_skip", S),
        ("t.py::test_modprobe", F), ("t.py::test_infra", E)]
    assert tests["t.py::test_xfail"].message == "stale"
    assert side.is_kernels(tests["t.py::test_modprobe"].message)
    assert not side.is_kernels(tests["t.py::test_infra"].message)


def test_an_error_that_is_the_kernels_reads_as_a_fail() -> None:
    """Should the kernel's fault reach JUnit as an <error> (a set-up, pytest's wrapping),
    it is still the kernel's."""
    xml = ("""<testsuites><testsuite><testcase classname="t" name="test_a"><error message='"""
           """failed on setup with "kernel: kernel interface failed: modprobe -d /m kheaders"""
           """&#10;(exit 1): Cannot allocate memory"'>x</error></testcase></testsuite>"""
           "</testsuites>")
    (got,) = side.parse_junit(xml).values()
    assert got.outcome == F
    assert got.message == 'failed on setup with "kernel: kernel interface failed: modprobe -d ' \
                          '/m kheaders'  # the first line: pytest's closing quote is not on it
    assert side.is_kernels(got.message)


def test_a_panic_at_boot_is_the_kernels_fail_with_its_report() -> None:
    (panic,) = side.parse_junit(junit_case(PANIC)).values()
    assert panic.outcome == F
    assert [r.split("\n")[0] for r in panic.kernel] == [
        "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)"]
