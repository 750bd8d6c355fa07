"""kheaders-ci as a user meets it, without a VM: every bad input is one line and exit 2 with
nothing left in the cache, --dry-run validates all of it, --help documents the exit status,
and recorded sides become the per-job and merged reports."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from kheaders_suite.errors import UserError
from kheaders_suite.patchci import cli
from kheaders_suite.patchci import run as runs
from kheaders_suite.patchci import side as sides
from kheaders_suite.patchci.document import RunInfo
from kheaders_suite.records import Target
from tests.test_patchci_series import KernelRepo, make_kernel_repo, mbox_of

DATA = Path(__file__).parent / "data" / "patchci"
X86_SYSFS = Target("x86_64", "sysfs")


@pytest.fixture
def kernel_repo(tmp_path: Path) -> KernelRepo:
    return make_kernel_repo(tmp_path / "trees")


def clone_dirs(cache: Path) -> list[Path]:
    """What kheaders-ci left under <cache>/patchci/clones/ but its lock files."""
    clones = cache / "patchci" / "clones"
    return sorted(p for p in clones.iterdir() if p.is_dir()) if clones.exists() else []


Args = Callable[[KernelRepo, Path], list[str]]


def cover_only(tmp: Path) -> str:
    path = tmp / "cover.mbox"
    path.write_text("From: a <a@b>\nSubject: [PATCH 0/2] a series\n\nno diff here\n")
    return str(path)


BAD_INPUT: list[tuple[str, Args, str]] = [
    ("not a git tree",
     lambda r, t: ["--tree", str(t), "--range", "v6.12..series"],
     "--tree {tmp}: not a git tree; pass a kernel git checkout (git clone) or a bare "
     "repository"),
    ("unknown base",
     lambda r, t: ["--tree", str(r.path), "--range", "v6.12..series", "--base", "v9.9"],
     "--base v9.9: no such commit in {tree}; pass a branch, tag or commit of that tree"),
    ("series does not apply",
     lambda r, t: ["--tree", str(r.path), "--base", "other",
                   "--mbox", str(mbox_of(r.path, "series~2..series~1", t / "c.patch"))],
     "--mbox {tmp}/c.patch: patch 1/1 'init: a comment' (c.patch) does not apply to "
     "other ({other}): first failing file init/version.c"),
    ("empty range",
     lambda r, t: ["--tree", str(r.path), "--range", "series..v6.12"],
     "--range series..v6.12: no commits in it (an empty series); pass A..B with the "
     "series' commits in B and not in A"),
    ("empty mbox",
     lambda r, t: ["--tree", str(r.path), "--base", "v6.12", "--mbox", cover_only(t)],
     "--mbox {tmp}/cover.mbox: no patch in it (an empty series); pass the series' patches "
     "or the mbox b4 wrote"),
    ("mbox without a base",
     lambda r, t: ["--tree", str(r.path), "--mbox", cover_only(t)],
     "--mbox needs --base REF: the commit the series applies to"),
    ("unknown arch",
     lambda r, t: ["--tree", str(r.path), "--range", "v6.12..series", "--arch", "x86_64,mips"],
     "--arch 'mips': unknown architecture; choose from x86_64, arm64"),
    ("unknown variant",
     lambda r, t: ["--tree", str(r.path), "--range", "v6.12..series", "--variant", "sysfs,sys"],
     "--variant 'sys': unknown variant; choose from sysfs, module, proc, debugfs"),
]


@pytest.mark.parametrize(("make_args", "expected"), [(a, e) for _, a, e in BAD_INPUT],
                         ids=[name for name, _, _ in BAD_INPUT])
def test_bad_input_is_one_line_and_exit_2(kernel_repo: KernelRepo, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str], make_args: Args,
                                          expected: str) -> None:
    cache = tmp_path / "cache"
    args = make_args(kernel_repo, tmp_path)
    assert cli.main([*args, "--cache-dir", str(cache), "--out", str(tmp_path / "out")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "kheaders-ci: " + expected.format(
        tmp=tmp_path, tree=kernel_repo.path, other=kernel_repo.other[:12]) + "\n"
    assert clone_dirs(cache) == []
    assert not (tmp_path / "out").exists()


SELECT = "test_archive.py or test_archive_check"


def test_dry_run_validates_everything_and_builds_nothing(
        kernel_repo: KernelRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache, out = tmp_path / "cache", tmp_path / "out"
    rc = cli.main(["--tree", str(kernel_repo.path), "--range", "v6.12..series", "--arch",
                   "x86_64", "--variant", "sysfs", "--select", SELECT, "--cache-dir",
                   str(cache), "--out", str(out), "--dry-run"])
    stdout, err = capsys.readouterr()
    assert rc == 0
    lines = stdout.splitlines()
    assert lines[0] == "series: init: a comment (+1 more) [2 patches, v6.12..series]"
    assert lines[1].startswith(f"base {kernel_repo.base}, patched ")
    patched = lines[1].split()[3]
    assert err == ("[kheaders-ci] init: a comment (+1 more) [2 patches, v6.12..series]: applies "
                   f"onto {kernel_repo.base[:12]} as {patched[:12]}; 1 jobs x 2 sides\n")
    assert lines[1].endswith(f" in {clone_dirs(cache)[0]}/linux; every make in the bwrap "
                             "sandbox")
    assert [line.split(":")[0] for line in lines[2:]] == ["base x86_64-sysfs",
                                                          "patched x86_64-sysfs"]
    assert f"--junitxml {out}/patched/x86_64-sysfs/junit.xml" in lines[3]
    assert f"-k 'x86_64-sysfs and ({SELECT})'" in lines[3]
    assert len(clone_dirs(cache)) == 1  # validated, kept for the run
    assert not (cache / "builds").exists()
    assert not out.exists()


def test_a_selection_without_tests_is_bad_input(kernel_repo: KernelRepo, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache"
    rc = cli.main(["--tree", str(kernel_repo.path), "--range", "v6.12..series", "--arch",
                   "x86_64", "--variant", "sysfs,proc", "--select", "no_such_test",
                   "--cache-dir", str(cache), "--dry-run"])
    assert rc == 2
    assert capsys.readouterr().err == (
        "kheaders-ci: --select 'no_such_test' (sweep none) selects no test for "
        "x86_64-sysfs, x86_64-proc; pass a -k expression naming tests of vmtests/, e.g. "
        "test_archive\n")
    assert clone_dirs(cache) == []  # made by this run, removed again


@pytest.mark.parametrize(("select", "said"), [
    # "x86_64-sysfs and (test_archive) or (test_layout)": test_layout of every target
    ("test_archive) or (test_layout", "its parentheses do not balance; pass one -k "
     "expression, e.g. 'test_archive or (test_layout and not arm64)'"),
    ("(test_archive", "its parentheses do not balance; pass one -k expression, e.g. "
     "'test_archive or (test_layout and not arm64)'"),
    # balanced, counting the quoted ones: pytest's call syntax could hide one in a string
    ('test_archive(x="(")) or (test_layout(x=")")', "only test names, and, or, not and parentheses "
     "make a -k expression (no quotes, '=' or ',')"),
])
def test_a_selection_cannot_reach_beyond_the_jobs_target(
        kernel_repo: KernelRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        select: str, said: str) -> None:
    cache = tmp_path / "cache"
    rc = cli.main(["--tree", str(kernel_repo.path), "--range", "v6.12..series", "--arch",
                   "x86_64", "--variant", "sysfs", "--select", select, "--cache-dir",
                   str(cache), "--dry-run"])
    out, err = capsys.readouterr()
    assert (rc, out) == (2, "")
    assert err == f"kheaders-ci: --select {select!r}: {said}\n"
    assert clone_dirs(cache) == []


def test_a_balanced_selection_stays_inside_the_target() -> None:
    assert runs.keyword(["x86_64-sysfs"], "test_a or (test_b and not test_c)") == \
        "x86_64-sysfs and (test_a or (test_b and not test_c))"
    with pytest.raises(UserError, match="do not balance"):
        runs.keyword(["x86_64-sysfs"], "a) or (b")


def path_without_bwrap(tmp_path: Path) -> str:
    """A PATH with git and nothing else: no bwrap."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    git = shutil.which("git")
    assert git is not None
    (bin_dir / "git").symlink_to(git)
    return str(bin_dir)


def test_without_bwrap_the_sandbox_is_one_line_naming_the_fix(
        kernel_repo: KernelRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", path_without_bwrap(tmp_path))
    cache = tmp_path / "cache"
    rc = cli.main(["--tree", str(kernel_repo.path), "--range", "v6.12..series", "--arch",
                   "x86_64", "--variant", "sysfs", "--cache-dir", str(cache), "--dry-run"])
    assert rc == 2
    assert capsys.readouterr().err == ("kheaders-ci: bwrap not found: apt-get install "
                                       "bubblewrap, or --no-sandbox\n")
    assert clone_dirs(cache) == []


def test_no_sandbox_needs_no_bwrap_and_says_so(
        kernel_repo: KernelRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", path_without_bwrap(tmp_path))
    rc = cli.main(["--tree", str(kernel_repo.path), "--base", "v6.12", "--mbox",
                   str(mbox_of(kernel_repo.path, "v6.12..series", tmp_path / "s.mbox")),
                   "--arch", "x86_64", "--variant", "sysfs", "--select", SELECT,
                   "--cache-dir", str(tmp_path / "cache"), "--no-sandbox", "--dry-run"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert out.splitlines()[1].endswith("; make unconfined")


@pytest.mark.parametrize(("sandbox", "said"), [(True, "1"), (False, "0")])
def test_the_suites_runs_are_told_whether_to_sandbox(tmp_path: Path, sandbox: bool,
                                                     said: str) -> None:
    opts = runs.SuiteOptions(cache_dir=tmp_path, sandbox=sandbox)
    assert runs.suite_env(opts, {"A": "b"}) == {"A": "b", "KHEADERS_SANDBOX": said}


def test_help_documents_the_series_and_the_exit_status(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for needle in ("--range A..B", "--mbox FILE", "--sweep {none,reduced,full}", "--select",
                   "exit status:", "0 clean, or flaky only", "1 a regression",
                   "2 an infrastructure error", "broken base", "bad input",
                   "git clone --shared --no-checkout", "--no-sandbox",
                   "Read-only file system"):
        assert needle in text, needle


# --- recorded sides to reports ------------------------------------------------------------------

def recorded_side(out: Path, side: str, recorded: str,
                  status: sides.SideStatus = sides.SideStatus.OK,
                  message: str = "") -> runs.SideRun:
    """A side as run_side leaves it, its junit.xml and results.json from tests/data."""
    paths = runs.side_paths(out, side, X86_SYSFS)
    paths.results_dir.mkdir(parents=True)
    shutil.copy(DATA / "x86_64-sysfs" / recorded / "junit.xml", paths.junit)
    return runs.SideRun(X86_SYSFS, status, message, paths, None, None)


INFO = RunInfo(run_id="r1", base_ref="v6.12", base_commit="a" * 40, series="s [1 patch, x]")


def test_recorded_sides_make_the_job_and_merged_reports(tmp_path: Path) -> None:
    done = {"base": {X86_SYSFS: recorded_side(tmp_path, "base", "base")},
            "patched": {X86_SYSFS: recorded_side(tmp_path, "patched", "patched")}}
    report = cli.write_reports(done, [X86_SYSFS], INFO, tmp_path)
    assert (report["verdict"], report["exit_status"]) == ("regression", 1)
    for where in (tmp_path / "jobs" / "x86_64-sysfs", tmp_path):
        assert sorted(p.name for p in where.glob("*.*")) == [
            "junit.xml", "kcidb.json", "report.json", "report.md"]
    markdown = (tmp_path / "report.md").read_text()
    assert markdown.startswith("## kheaders-suite patch CI: regression")
    assert "series: s [1 patch, x]" in markdown


def test_a_base_that_did_not_build_blames_nothing(tmp_path: Path) -> None:
    failed = sides.SideStatus.BUILD_FAILED
    done = {"base": {X86_SYSFS: recorded_side(tmp_path, "base", "base", failed,
                                              "make failed (exit 2)")},
            "patched": {X86_SYSFS: recorded_side(tmp_path, "patched", "patched")}}
    report = cli.write_reports(done, [X86_SYSFS], INFO, tmp_path)
    assert (report["verdict"], report["exit_status"]) == ("base-broken", 2)
    assert report["jobs"][0]["regressions"] == []
    assert "### Base broken" in (tmp_path / "report.md").read_text()
