"""patchci.compare: who is blamed for what, on recorded JUnit reports and results files
(tests/data/patchci/), synthetic archives and the recorded timing sweep (tests/data/timing/).

The helpers here (recorded sides, a timing document slowed down) are shared with
tests/test_patchci_output.py."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kheaders_suite.patchci import compare, side
from kheaders_suite.patchci.archive import ConfigChange
from kheaders_suite.patchci.compare import CiVerdict, Divergence, Finding
from kheaders_suite.patchci.side import Outcome, SideResult, SideStatus
from tests.test_patchci_archive import (
    BASE_CONFIG,
    BASE_FILES,
    PATCHED_CONFIG,
    PATCHED_FILES,
    write_tar_xz,
)

DATA = Path(__file__).parent / "data"
PATCHCI = DATA / "patchci"
TIMING = DATA / "timing" / "x86_64-sysfs.json"
IDENTITY = "vmtests/test_archive.py::test_identity[x86_64-sysfs]"
MEMBER_LIST = "vmtests/test_archive.py::test_member_list[x86_64-sysfs]"
CONTENT = "vmtests/test_archive.py::test_content[x86_64-sysfs]"
LAYOUTS = "vmtests/test_archive.py::test_layouts[x86_64-sysfs]"


def recorded(tmp_path: Path, which: str, arch: str = "x86_64", junit_dir: str = "",
             **kw: Any) -> SideResult:
    """One recorded side (tests/data/patchci/<arch>-sysfs/<which>/), with a synthetic
    archive and .config written under tmp_path (base's or patched's content)."""
    files, config = (BASE_FILES, BASE_CONFIG) if which == "base" else \
        (PATCHED_FILES, PATCHED_CONFIG)
    out = tmp_path / f"{arch}-{which}"
    archive = write_tar_xz(out / "kheaders_data.tar.xz", files)
    (out / "config").write_text(config)
    recorded_dir = PATCHCI / f"{arch}-sysfs" / (junit_dir or which)
    results = recorded_dir / "results.json"
    kw.setdefault("timing", [TIMING] if arch == "x86_64" else [])
    return side.load_side(arch, "sysfs", junit=recorded_dir / "junit.xml",
                          results_json=results if results.exists() else None,
                          archive=archive, config=out / "config", **kw)


def timing_doc(scale: Callable[[str, int], float], calibration: float = 1.0) -> dict[str, Any]:
    """The recorded sweep with each point's samples multiplied by scale(strategy, n)."""
    doc: dict[str, Any] = copy.deepcopy(json.loads(TIMING.read_text()))
    for point in doc["points"]:
        factor = scale(point["strategy"], point["n"])
        point["samples"] = [s * factor for s in point["samples"]]
    doc["calibration"]["samples"] = [s * calibration for s in doc["calibration"]["samples"]]
    return doc


def slower_extract_once_n4(strategy: str, n: int) -> float:
    return 1.25 if (strategy, n) == ("extract-once", 4) else 1.0


@pytest.fixture
def job(tmp_path: Path) -> compare.JobReport:
    return compare.compare_job(recorded(tmp_path, "base"), recorded(tmp_path, "patched"))


# --- tests -----------------------------------------------------------------------------------

def test_pass_to_fail_is_a_regression(job: compare.JobReport) -> None:
    assert job.regressions == (Finding(
        "test", IDENTITY, Outcome.PASS, Outcome.FAIL,
        "AssertionError: archive lacks arch/x86/include/asm/page.h (and 431 more under "
        "arch/x86/include/)"), Finding("test", LAYOUTS, Outcome.PASS, Outcome.SKIP,
                                       "lost coverage: no BTF in this build"))
    assert job.verdict == CiVerdict.REGRESSION
    assert compare.EXIT_STATUS[job.verdict] == 1


def test_fail_to_pass_is_a_fix(job: compare.JobReport) -> None:
    assert [(f.name, f.base, f.patched) for f in job.fixes] == [
        (CONTENT, Outcome.FAIL, Outcome.PASS)]


def test_patched_error_is_an_infra_error_never_a_regression(job: compare.JobReport) -> None:
    assert [(f.name, f.base, f.patched) for f in job.infra] == [
        (MEMBER_LIST, Outcome.PASS, Outcome.ERROR)]
    assert MEMBER_LIST not in {f.name for f in job.regressions}


def test_infra_error_alone_gives_infra_verdict(tmp_path: Path) -> None:
    base = recorded(tmp_path, "base")
    tests = dict(base.tests)
    tests[MEMBER_LIST] = side.TestCase(MEMBER_LIST, Outcome.ERROR, "failed on setup with VMLost")
    job = compare.compare_job(base, replace(base, tests=tests))
    assert job.regressions == ()
    assert job.verdict == CiVerdict.INFRA_ERROR
    assert compare.EXIT_STATUS[job.verdict] == 2


def test_skip_to_pass_is_neutral_and_new_and_removed_are_listed(job: compare.JobReport
                                                                 ) -> None:
    listed = {f.name for group in (job.regressions, job.fixes, job.infra, job.new,
                                   job.removed) for f in group}
    assert "vmtests/test_archive.py::test_metadata[x86_64-sysfs]" not in listed  # skip->pass
    assert [f.name for f in job.new] == ["vmtests/test_archive.py::test_symlinks[x86_64-sysfs]"]
    assert [f.name for f in job.removed] == ["vmtests/test_bcc.py::test_bcc_compiles[x86_64-sysfs]"]


def test_identical_sides_are_clean(tmp_path: Path) -> None:
    base = recorded(tmp_path, "base")
    job = compare.compare_job(base, base)
    assert job.verdict == CiVerdict.CLEAN
    assert job.archive is not None
    assert job.archive.unchanged
    assert [v.status for v in job.timing] == ["ok"] * len(job.timing)
    assert len(job.timing) == 7  # extraction + 6 points


@pytest.mark.parametrize(("status", "kind"), [(SideStatus.BUILD_FAILED, "build"),
                                            (SideStatus.BOOT_FAILED, "boot")])
def test_base_that_failed_to_build_or_boot_blames_nothing(tmp_path: Path, status: SideStatus,
                                                         kind: str) -> None:
    base = replace(recorded(tmp_path, "base"), status=status, message="base went wrong",
                   tests={})
    patched = replace(recorded(tmp_path, "patched"), timing=(timing_doc(
        slower_extract_once_n4),))
    job = compare.compare_job(base, patched)
    assert job.verdict == CiVerdict.BASE_BROKEN
    assert compare.EXIT_STATUS[job.verdict] == 2
    assert (job.regressions, job.fixes, job.timing) == ((), (), ())
    assert [(f.kind, f.message) for f in job.base_problems] == [(kind, "base went wrong")]


def test_broken_base_blames_no_patched_build_failure(tmp_path: Path) -> None:
    base = replace(recorded(tmp_path, "base"), status=SideStatus.BOOT_FAILED, tests={})
    patched = side.load_side("x86_64", "sysfs", status=SideStatus.BUILD_FAILED, message="error")
    job = compare.compare_job(base, patched)
    assert (job.verdict, job.regressions) == (CiVerdict.BASE_BROKEN, ())


def test_base_with_an_error_is_broken(tmp_path: Path) -> None:
    base = recorded(tmp_path, "base", junit_dir="base-error")
    job = compare.compare_job(base, recorded(tmp_path, "patched"))
    assert job.verdict == CiVerdict.BASE_BROKEN
    assert [(f.name, f.base) for f in job.base_problems] == [(IDENTITY, Outcome.ERROR)]
    assert "GuestTimeout" in job.base_problems[0].message
    assert job.regressions == ()
    assert job.archive is not None  # still shown, for information


def test_base_without_results_is_broken(tmp_path: Path) -> None:
    base = recorded(tmp_path, "base", junit_dir="nowhere")
    assert base.status == SideStatus.NO_RESULTS
    assert compare.compare_job(base, recorded(tmp_path, "patched")).verdict == CiVerdict.BASE_BROKEN


def test_patched_build_failure_is_a_regression(tmp_path: Path) -> None:
    patched = side.load_side("x86_64", "sysfs", status=SideStatus.BUILD_FAILED,
                             message="include/linux/sched.h:5: error: expected ';'")
    job = compare.compare_job(recorded(tmp_path, "base"), patched)
    assert job.verdict == CiVerdict.REGRESSION
    assert job.regressions == (Finding("build", "build", SideStatus.OK, SideStatus.BUILD_FAILED,
                                       "include/linux/sched.h:5: error: expected ';'"),)
    assert job.removed == ()  # the tests did not run: not 9 "removed" tests
    assert job.archive is None


@pytest.mark.parametrize(("status", "junit"), [(SideStatus.BOOT_FAILED, None),
                                             (SideStatus.OK, "nowhere")])
def test_patched_boot_failure_or_no_results_is_infra(tmp_path: Path, status: SideStatus,
                                                     junit: str | None) -> None:
    patched = side.load_side("x86_64", "sysfs", status=status, message="VM lost",
                             junit=tmp_path / junit if junit else None)
    job = compare.compare_job(recorded(tmp_path, "base"), patched)
    assert job.verdict == CiVerdict.INFRA_ERROR
    assert job.regressions == ()
    want = "boot" if status == SideStatus.BOOT_FAILED else "results"
    assert [f.kind for f in job.infra] == [want]


def test_unreadable_patched_archive_is_infra_and_base_one_breaks_base(tmp_path: Path) -> None:
    base, patched = recorded(tmp_path, "base"), recorded(tmp_path, "base")
    bad = tmp_path / "bad.tar.xz"
    bad.write_bytes(b"garbage")
    job = compare.compare_job(base, replace(patched, archive=bad))
    assert (job.verdict, [f.kind for f in job.infra]) == (CiVerdict.INFRA_ERROR, ["archive"])
    assert compare.compare_job(replace(base, archive=bad), patched).verdict == CiVerdict.BASE_BROKEN


def test_archive_and_config_changes_are_in_the_job(job: compare.JobReport) -> None:
    assert job.archive is not None
    assert job.archive.removed == ("arch/x86/include/asm/page.h",)
    assert "include/linux/sched.h" in job.archive.changed
    assert ConfigChange("CONFIG_IKHEADERS", "y", "m") in job.config


def test_timing_slowdown_beyond_noise_is_a_regression(tmp_path: Path) -> None:
    base = recorded(tmp_path, "base")
    slow = replace(base, timing=(timing_doc(slower_extract_once_n4),))
    job = compare.compare_job(base, slow)
    assert [v.key for v in job.timing_regressions] == ["x86_64-sysfs gcc extract-once N=4"]
    assert job.timing_regressions[0].change == pytest.approx(0.25)
    assert job.verdict == CiVerdict.REGRESSION


def test_timing_shift_within_noise_is_not_flagged(tmp_path: Path) -> None:
    """2% everywhere is under the 3% floor; +8% on pre-installed N=1 stays inside that
    point's own wide spread (7.73-10.11 s), so the samples overlap."""
    def scale(strategy: str, n: int) -> float:
        return 1.08 if strategy == "pre-installed" else 1.02
    base = recorded(tmp_path, "base")
    job = compare.compare_job(base, replace(base, timing=(timing_doc(scale),)))
    assert job.timing_regressions == ()
    assert job.verdict == CiVerdict.CLEAN
    pre = next(v for v in job.timing if "pre-installed" in v.key)
    assert pre.status == "ok"
    assert pre.change == pytest.approx(0.08)


def test_timing_slowdown_of_the_whole_host_is_divided_out(tmp_path: Path) -> None:
    base = recorded(tmp_path, "base")
    busy = timing_doc(lambda strategy, n: 1.25, calibration=1.25)
    job = compare.compare_job(base, replace(base, timing=(busy,)))
    assert job.timing_regressions == ()
    assert any("calibration loop ran 25.0% slower" in n for n in job.timing_notes)


def test_timing_on_one_side_only_is_noted_not_compared(tmp_path: Path) -> None:
    base = recorded(tmp_path, "base")
    job = compare.compare_job(base, replace(base, timing=()))
    assert job.timing == ()
    assert job.timing_notes == ("timing: x86_64-sysfs measured on base only, not compared",)


def test_jobs_of_different_targets_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one arch x variant"):
        compare.compare_job(recorded(tmp_path, "base"),
                            recorded(tmp_path, "base", arch="arm64"))


def test_arch_divergence_in_base_and_in_patched(tmp_path: Path) -> None:
    arches = ("x86_64", "arm64")
    found = []
    for which in ("base", "patched"):
        outcomes = {t.nodeid: t.outcome for a in arches
                    for t in recorded(tmp_path, which, arch=a).tests.values()}
        found += compare.divergences(which, outcomes, arches)
    assert found == [
        Divergence("base", "vmtests/test_archive.py::test_identity[*-sysfs]",
                   ("x86_64",), ("arm64",)),
        Divergence("patched", "vmtests/test_archive.py::test_release[*-sysfs]",
                   ("x86_64",), ("arm64",)),
    ]  # not member_list: an ERROR on x86_64 patched is no divergence


@pytest.mark.parametrize(("nodeid", "want"), [
    ("m.py::test_a[x86_64-sysfs]", ("m.py::test_a[*-sysfs]", "x86_64")),
    ("m.py::test_a[gcc-arm64-proc]", ("m.py::test_a[gcc-*-proc]", "arm64")),
    ("m.py::test_a", None),
    ("m.py::test_a[synthetic]", None),
    ("m.py::test_a[x86_64-arm64]", None),  # which of the two is the target's: not ours
])
def test_arch_is_taken_out_of_the_parameter(nodeid: str,
                                            want: tuple[str, str] | None) -> None:
    assert compare.without_arch(nodeid, ("x86_64", "arm64")) == want


@pytest.mark.parametrize(("verdicts", "want"), [
    ([CiVerdict.CLEAN, CiVerdict.CLEAN], CiVerdict.CLEAN),
    ([CiVerdict.CLEAN, CiVerdict.INFRA_ERROR], CiVerdict.INFRA_ERROR),
    ([CiVerdict.INFRA_ERROR, CiVerdict.BASE_BROKEN], CiVerdict.BASE_BROKEN),
    ([CiVerdict.BASE_BROKEN, CiVerdict.REGRESSION, CiVerdict.INFRA_ERROR], CiVerdict.REGRESSION),
    ([], CiVerdict.CLEAN),
])
def test_report_verdict_and_exit_status(verdicts: list[str], want: CiVerdict) -> None:
    assert compare.report_verdict(verdicts) == want
    assert compare.EXIT_STATUS[want] == {CiVerdict.CLEAN: 0, CiVerdict.REGRESSION: 1}.get(want, 2)
