"""One side of one kheaders-ci job, without a VM: the pytest command lines, the selection
check's parsing, the status decision on recorded JUnit and results files with a faked
build directory, and the streaming runner on a tiny command."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from kheaders_suite import vmsuite
from kheaders_suite.catalog.paths import REPO_ROOT
from kheaders_suite.errors import UserError
from kheaders_suite.patchci import cli, compare, run
from kheaders_suite.patchci import side as sides
from kheaders_suite.patchci.compare import CiVerdict
from kheaders_suite.records import Target
from kheaders_suite.report.results import Accel, BootRecord, Results, RunMeta
from kheaders_suite.report.results import write as write_results
from tests.test_source import fake_kernel

X86_SYSFS = Target("x86_64", "sysfs")
OPTS = run.SuiteOptions(cache_dir=Path("/c"), select="test_archive", python="/py")
# The checkout's suite (these tests run from one), with the settings a wheel has too.
SUITE = ("-c", str(vmsuite.INI), "--rootdir", str(REPO_ROOT), "-p", "kheaders_suite.plugin",
         f"{REPO_ROOT}/vmtests")


def test_the_pytest_command_of_one_side() -> None:
    paths = run.side_paths(Path("/o"), "base", X86_SYSFS)
    assert run.pytest_command(Path("/clone"), X86_SYSFS, OPTS, paths) == (
        "/py", "-m", "pytest", *SUITE, "--kernel-src", "/clone",
        "--arch", "x86_64", "-k", "x86_64-sysfs and (test_archive)", "-m", "not timing",
        "--cache-dir", "/c", "--accel", "auto",
        "--results-dir", "/o/base/x86_64-sysfs/results",
        "--junitxml", "/o/base/x86_64-sysfs/junit.xml", "-p", "no:cacheprovider", "-n", "0")


def test_a_sweep_runs_the_timing_tests_too() -> None:
    opts = run.SuiteOptions(cache_dir=Path("/c"), sweep="reduced", accel="tcg", python="/py")
    cmd = run.pytest_command(Path("/clone"), Target("arm64", "proc"), opts,
                             run.side_paths(Path("/o"), "patched", Target("arm64", "proc")))
    assert "not timing" not in cmd
    assert cmd[cmd.index("--sweep") + 1] == "reduced"
    assert cmd[cmd.index("-k") + 1] == "arm64-proc"
    assert cmd[cmd.index("--accel") + 1] == "tcg"


def test_the_collect_command_covers_every_job() -> None:
    jobs = (X86_SYSFS, Target("x86_64", "proc"), Target("arm64", "sysfs"))
    assert run.collect_command(Path("/t"), jobs, OPTS) == (
        "/py", "-m", "pytest", *SUITE, "--kernel-src", "/t",
        "--arch", "x86_64,arm64",
        "-k", "(x86_64-sysfs or x86_64-proc or arm64-sysfs) and (test_archive)",
        "-m", "not timing", "--cache-dir", "/c", "--collect-only", "-q", "--no-header",
        "-p", "no:cacheprovider", "-n", "0")


COLLECTED = """\
vmtests/test_archive.py::test_mode_0444_root_owned[x86_64-sysfs]
vmtests/test_matches_build.py::test_archive_check[x86_64-sysfs-member_list]
vmtests/test_matches_build.py::test_archive_check[x86_64-proc-identity]

3/88 tests collected (85 deselected) in 0.16s
"""


def test_jobs_the_selection_leaves_without_a_test() -> None:
    jobs = (X86_SYSFS, Target("x86_64", "proc"), Target("x86_64", "module"))
    assert run.unselected(COLLECTED, jobs) == [Target("x86_64", "module")]
    assert run.unselected("no tests collected\n", jobs[:1]) == [X86_SYSFS]


def test_jobs_asked_for() -> None:
    assert run.jobs_for("x86_64", "sysfs,proc") == (X86_SYSFS, Target("x86_64", "proc"))
    every = run.jobs_for("all", "all")
    assert len(every) == 8
    assert every[0] == X86_SYSFS
    with pytest.raises(UserError, match=r"^--arch 'riscv': unknown architecture; "
                                        r"choose from x86_64, arm64$"):
        run.jobs_for("riscv", "all")
    with pytest.raises(UserError, match=r"^--variant 'sys': unknown variant; choose from "
                                        r"sysfs, module, proc, debugfs$"):
        run.jobs_for("all", "sysfs, sys")


def test_progress_lines() -> None:
    assert run.is_progress("[kheaders] x86_64-sysfs: make 1200/1900 steps\n")
    assert run.is_progress("===== 1 failed, 11 passed, 76 deselected in 300.12s =====")
    assert not run.is_progress("vmtests/test_archive.py::test_x PASSED")
    assert not run.is_progress("E   assert 1 == 2")


# --- the side's status ------------------------------------------------------------------------

def junit(*cases: str) -> str:
    return ('<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">'
            + "".join(cases) + "</testsuite></testsuites>")


def case(name: str, inner: str = "") -> str:
    return f'<testcase classname="vmtests.test_archive" name="{name}[x86_64-sysfs]">' \
           f"{inner}</testcase>"


BUILD_ERROR = '<error message="failed on setup with &quot;kheaders_suite.errors.BuildFailed: ' \
              'x86_64-sysfs: make failed (exit 2)&quot;">build.py: BuildFailed</error>'
SANDBOX_ERROR = '<error message="failed on setup with &quot;kheaders_suite.errors.' \
                'InfraError: x86_64-sysfs: make: the build sandbox did not start: bwrap: ' \
                'Can&apos;t mount proc&quot;">make.py: InfraError</error>'
VM_ERROR = '<error message="failed on setup with &quot;kheaders_suite.errors.VMLost: ' \
           'no SSH after 300 s&quot;">vm.py: VMLost</error>'
PATCH_ERROR = '<error message="failed on setup with &quot;kheaders_suite.errors.PatchFailed: ' \
              'carried patch proc/6.1-6.16/0001.patch does not apply&quot;">x</error>'
BOOT_PANIC = ('<failure message="kernel: the boot of x86_64-sysfs failed: KernelReported: '
              'kernel reported during the boot of x86_64-sysfs&#10;&#10;Kernel panic - not '
              'syncing: VFS">x</failure>')
SKIPPED = '<skipped message="native only">x</skipped>'
FAILED = '<failure message="AssertionError: members differ">x</failure>'


def side_files(tmp: Path, cases: tuple[str, ...] | None,
               booted: bool = False) -> tuple[Path, Path]:
    """junit.xml (None: pytest wrote none) and results.json (a boot record if booted)."""
    junit_path, results = tmp / "junit.xml", tmp / "results" / "results.json"
    if cases is not None:
        junit_path.write_text(junit(*cases))
    results.parent.mkdir()
    records = (BootRecord(target="x86_64-sysfs", seconds=20.0, accel=Accel.TCG,
                          release="6.12.117"),) if booted else ()
    write_results(results, Results(RunMeta("ci", ("x86_64",), "auto"), records))
    return junit_path, results


def fake_build(cache: Path) -> Path:
    """builds/<arch>-<variant>-<key>/ as ensure_build leaves it: build.json, archive, config."""
    out = cache / "builds" / "x86_64-sysfs-0123456789abcdef0123"
    out.mkdir(parents=True)
    (out / "kheaders_data.tar.xz").write_bytes(b"not really xz")
    (out / "config").write_text("CONFIG_IKHEADERS=y\n")
    (out / "build.json").write_text(json.dumps({"archive": str(out / "kheaders_data.tar.xz"),
                                                "config": str(out / "config")}))
    return out


@pytest.mark.parametrize(("built", "cases", "booted", "expected"), [
    # no build, and the tests ERRORed on it: the build failed
    (None, (case("a", BUILD_ERROR), case("b", BUILD_ERROR)), False,
     (sides.SideStatus.BUILD_FAILED, 'failed on setup with "kheaders_suite.errors.BuildFailed: '
                          'x86_64-sysfs: make failed (exit 2)"')),
    # no build, the sandbox did not start (the host's fault): nothing is blamed on the series
    (None, (case("a", SANDBOX_ERROR),), False, (sides.SideStatus.OK, "")),
    # built, every test that ran ERRORed, no boot record: the boot failed
    (True, (case("a", VM_ERROR), case("b", VM_ERROR), case("c", SKIPPED)), False,
     (sides.SideStatus.BOOT_FAILED, 'failed on setup with "kheaders_suite.errors.VMLost: '
                         'no SSH after 300 s"')),
    # the kernel panicked at boot (the plugin's FAIL), a host-side test passed: the boot failed
    (True, (case("a", BOOT_PANIC), case("b")), False,
     (sides.SideStatus.BOOT_FAILED, "kernel: the boot of x86_64-sysfs failed: KernelReported: "
                                    "kernel reported during the boot of x86_64-sysfs")),
    # the guest came up (boot record), then the tests ERRORed: ok, the ERRORs are the finding
    (True, (case("a", VM_ERROR),), True, (sides.SideStatus.OK, "")),
    (True, (case("a"), case("b", FAILED)), True, (sides.SideStatus.OK, "")),
    # a carried variant patch that does not fit: the suite's fault, never the series' build
    (False, (case("a", PATCH_ERROR),), False, (sides.SideStatus.OK, "")),
    # pytest left no JUnit file: nothing to say here (the loader makes it "no-results")
    (False, None, False, (sides.SideStatus.OK, "")),
])
def test_side_status(tmp_path: Path, built: bool | None, cases: tuple[str, ...] | None,
                     booted: bool, expected: tuple[str, str]) -> None:
    """``built`` None: no key could be made (build_dir gave None)."""
    build = fake_build(tmp_path / "cache") if built else (
        None if built is None else tmp_path / "cache/builds/none")
    junit_path, results = side_files(tmp_path, cases, booted)
    assert run.side_status(build, junit_path, results, "x86_64-sysfs") == expected


def test_a_side_is_read_from_its_own_copies(tmp_path: Path) -> None:
    build = fake_build(tmp_path / "cache")
    paths = run.side_paths(tmp_path / "out", "base", X86_SYSFS)
    paths.dir.mkdir(parents=True)
    archive, config = run.copy_outputs(build, paths)
    assert (archive, config) == (paths.archive, paths.config)
    shutil.rmtree(build)  # a later build of the key may replace the cache's files
    assert paths.archive.read_bytes() == b"not really xz"
    loaded = run.SideRun(X86_SYSFS, sides.SideStatus.OK, "", paths, archive, config).load()
    assert loaded.status == sides.SideStatus.NO_RESULTS  # pytest wrote no junit.xml here
    assert (loaded.archive, loaded.config) == (paths.archive, paths.config)
    assert run.copy_outputs(None, paths) == (None, None)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="the build key names the compiler")
def test_the_build_dir_follows_the_checkout(tmp_path: Path) -> None:
    """The key is the clone's identity as checked out: a file a checkout changes moves it,
    so each side finds its own build; a file it only rewrites (a new mtime) does not."""
    tree = fake_kernel(tmp_path / "linux", "6.12.0")
    first = run.build_dir(tmp_path / "cache", tree, X86_SYSFS)
    assert first is not None
    assert first.parent == tmp_path / "cache" / "builds"
    assert first.name.startswith("x86_64-sysfs-")
    assert run.build_dir(tmp_path / "cache", tree, X86_SYSFS) == first
    os.utime(tree / "Kconfig", ns=(1, 1))
    assert run.build_dir(tmp_path / "cache", tree, X86_SYSFS) == first
    (tree / "Kconfig").write_text("config FOO\n")
    assert run.build_dir(tmp_path / "cache", tree, X86_SYSFS) != first
    assert run.build_dir(tmp_path / "cache", tmp_path / "nothing", X86_SYSFS) is None


# --- the runner -------------------------------------------------------------------------------

def test_the_run_goes_to_its_log_and_progress_to_say(tmp_path: Path) -> None:
    said: list[str] = []
    script = ("import sys; print('[kheaders] x86_64-sysfs: building'); print('noise'); "
              "print('to stderr', file=sys.stderr); sys.exit(3)")
    rc = run.run_suite((sys.executable, "-c", script), tmp_path / "p.log", "base x", said.append)
    assert rc == 3
    assert (tmp_path / "p.log").read_text().splitlines() == [
        "[kheaders] x86_64-sysfs: building", "noise", "to stderr"]
    assert said == ["base x: [kheaders] x86_64-sysfs: building"]


def test_a_run_past_its_deadline_is_stopped(tmp_path: Path) -> None:
    said: list[str] = []
    rc = run.run_suite((sys.executable, "-c", "import time; time.sleep(60)"),
                        tmp_path / "p.log", "base x", said.append, timeout=0.5)
    assert rc < 0
    assert said == ["base x: no result after 0s; stopping it"]


# --- the retry and the second run, with a stand-in for pytest ----------------------------------

# Stands in for "python -m pytest ...": each call takes the next run of the plan (its JUnit
# text, a results.json to copy or null, its exit status) and logs the node ids it was given.
FAKE_PYTEST = """\
import json, os, shutil, sys
from pathlib import Path
args = sys.argv[1:]
plan = Path(os.environ["FAKE_PLAN"])
now, *rest = json.loads(plan.read_text())
plan.write_text(json.dumps(rest))
Path(args[args.index("--junitxml") + 1]).write_text(now["junit"])
if now["results"]:
    out = Path(args[args.index("--results-dir") + 1])
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(now["results"], out / "results.json")
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps([a for a in args if "::" in a]) + "\\n")
sys.exit(now["rc"])
"""
A, B = (f"vmtests/test_archive.py::{n}[x86_64-sysfs]" for n in ("a", "b"))
BOOT_LOST = ('<error message="failed on setup with &quot;kheaders_suite.plugin.boots.'
             'BootFailed: the boot of x86_64-sysfs failed: VMLost: no SSH&quot;">x</error>')


@pytest.fixture
def stand_in(tmp_path: Path) -> tuple[Path, run.SuiteOptions, dict[str, str]]:
    """A kernel tree whose build is in the cache, options running the stand-in, its env."""
    if shutil.which("gcc") is None:
        pytest.skip("the build key names the compiler")
    tree = fake_kernel(tmp_path / "linux", "6.12.0")
    build = run.build_dir(tmp_path / "cache", tree, X86_SYSFS)
    assert build is not None
    build.mkdir(parents=True)
    (build / "build.json").write_text("{}")
    fake = tmp_path / "python"
    fake.write_text(f"#!{sys.executable}\n{FAKE_PYTEST}")
    fake.chmod(0o755)
    opts = run.SuiteOptions(cache_dir=tmp_path / "cache", python=str(fake))
    return tree, opts, {"FAKE_PLAN": str(tmp_path / "plan.json"),
                        "FAKE_LOG": str(tmp_path / "log")}


def plan(tmp_path: Path, env: dict[str, str], *runs: tuple[tuple[str, ...], bool, int]) -> None:
    """Each run: its cases, whether the guest came up (a boot record), its exit status."""
    _, booted_results = side_files(tmp_path, None, booted=True)
    Path(env["FAKE_PLAN"]).write_text(json.dumps([
        {"junit": junit(*cases), "results": str(booted_results) if up else None, "rc": rc}
        for cases, up, rc in runs]))


def passing_base() -> sides.SideResult:
    return sides.SideResult("x86_64", "sysfs", sides.SideStatus.OK, exit_status=0, tests={
        n: sides.TestCase(n, sides.Outcome.PASS) for n in (A, B)})


def test_suspects_are_run_again_by_node_id(tmp_path: Path, stand_in: Any) -> None:
    tree, opts, env = stand_in
    plan(tmp_path, env, ((case("a", FAILED), case("b", VM_ERROR)), True, 1),
         ((case("a", FAILED), case("b")), True, 1))
    done = cli.run_patched(tree, X86_SYSFS, passing_base(), opts, tmp_path / "out", env)
    calls = [json.loads(line) for line in Path(env["FAKE_LOG"]).read_text().splitlines()]
    suite = vmsuite.suite_dir()
    assert calls == [[], [str(suite.parent / A), str(suite.parent / B)]]
    assert done.exit_status == 1
    assert done.retry is not None
    assert (done.retry.asked, done.retry.exit_status) == ((A, B), 1)
    assert (done.paths.dir / "retry" / "junit.xml").is_file()
    report = compare.compare_job(passing_base(), done.load(), layout_probe=None)
    assert [(f.name, f.patched, f.retry) for f in report.regressions] == [
        (A, sides.Outcome.FAIL, sides.Outcome.FAIL)]
    assert [(f.name, f.patched, f.retry) for f in report.flaky] == [
        (B, sides.Outcome.ERROR, sides.Outcome.PASS)]


def test_a_silent_boot_failure_runs_the_side_again(tmp_path: Path, stand_in: Any) -> None:
    tree, opts, env = stand_in
    plan(tmp_path, env, ((case("a", BOOT_LOST), case("b", BOOT_LOST)), False, 1),
         ((case("a"), case("b")), True, 0))
    out = tmp_path / "out"
    done = cli.run_patched(tree, X86_SYSFS, passing_base(), opts, out, env)
    assert (done.status, done.retry) == (sides.SideStatus.OK, None)
    assert "the boot of x86_64-sysfs failed" in done.rerun_after
    assert (run.first_run_dir(out, "patched", X86_SYSFS) / "junit.xml").is_file()
    report = compare.compare_job(passing_base(), done.load(), layout_probe=None)
    assert (report.verdict, [f.kind for f in report.flaky]) == (CiVerdict.FLAKY, ["boot"])


def test_a_clean_patched_side_runs_once(tmp_path: Path, stand_in: Any) -> None:
    tree, opts, env = stand_in
    plan(tmp_path, env, ((case("a"), case("b")), True, 0))
    done = cli.run_patched(tree, X86_SYSFS, passing_base(), opts, tmp_path / "out", env)
    assert (done.exit_status, done.retry, done.rerun_after) == (0, None, "")
    assert len(Path(env["FAKE_LOG"]).read_text().splitlines()) == 1
