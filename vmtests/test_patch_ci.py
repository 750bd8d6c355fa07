"""kheaders-ci end to end (issue 12): real kernels, base against patched, x86_64 sysfs.

A throwaway git tree is made once per cache from the default kernel source (Debian's
linux-source, as the suite extracts it) under <cache>/patchci/: a bare repository whose one
commit, tagged e2e-base, holds the extracted tree (git add with the extracted tree as the
work tree: nothing is copied or written there). Two series go onto it, each made with git
plumbing on a temporary index (no 1.5 GB checkout):

(a) gen_kheaders.sh (kernel/Makefile from 6.17 on) stops packing arch/$SRCARCH/include/,
    given as an mbox (git format-patch): the archive loses every arch header, the suite's
    member-list check fails where it passed on base, so the report is a regression that
    names the check and the missing members, exit status 1;
(b) a comment in init/version.c, given as a range: nothing in the archive or the tests may
    change, exit status 0.

Each side runs the archive checks only (--select: test_archive.py's tests and
test_matches_build.py's test_archive_check), so a side costs a build and one boot. Slow
(a cold base build, then incremental ones): it runs only when selected with -m patch_ci.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from kheaders_suite.host.locks import file_lock
from kheaders_suite.patchci import cli
from kheaders_suite.plugin.options import Settings
from kheaders_suite.source.tree import embedded_source

pytestmark = [pytest.mark.patch_ci, pytest.mark.xdist_group("patch_ci")]

BASE_TAG = "e2e-base"
SELECT = "test_archive.py or test_archive_check"
# Same content, same commits: the tree, and the series' commits, are the same on every run.
FIXED = {"GIT_AUTHOR_NAME": "kheaders-suite", "GIT_AUTHOR_EMAIL": "e2e@kheaders-suite",
         "GIT_COMMITTER_NAME": "kheaders-suite", "GIT_COMMITTER_EMAIL": "e2e@kheaders-suite",
         "GIT_AUTHOR_DATE": "2024-01-01T00:00:00+00:00",
         "GIT_COMMITTER_DATE": "2024-01-01T00:00:00+00:00"}
# Where the list of directories gen_kheaders.sh packs lives: the script until 6.17, then
# kernel/Makefile's file lists (626c54af3576). (file, text, the text without arch/).
DROP_ARCH_INCLUDE = (
    ("kernel/gen_kheaders.sh", "\narch/$SRCARCH/include/\n", "\n"),
    ("kernel/Makefile", 'for d in include "arch/$(SRCARCH)/include"; do', "for d in include; do"),
)
HARMLESS = ("init/version.c", "/* kheaders-ci end-to-end test: a harmless comment */\n")


def git_raw(repo: Path, *args: str, stdin: str | None = None,
            env: dict[str, str] | None = None) -> str:
    # surrogateescape: a file's bytes survive the round trip through str unchanged
    done = subprocess.run(("git", f"--git-dir={repo}", *args), input=stdin, encoding="utf-8",
                          errors="surrogateescape", capture_output=True, check=False,
                          env={**os.environ, **FIXED, **(env or {})})
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr.strip()}"
    return done.stdout


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return git_raw(repo, *args, env=env).strip()


def make_tree(source: Path, dest: Path) -> None:
    """A bare repository, one commit of ``source``, tagged; made aside, then renamed into
    place, so a tree that exists is whole."""
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run(("git", "init", "-q", "--bare", "-b", "master", str(partial)), check=True)
    # --force: the kernel's .gitignore files name files the tarball ships
    git(partial, "-c", "core.looseCompression=1", f"--work-tree={source}", "add", "-A",
        "--force")
    tree = git(partial, "write-tree")
    commit = git(partial, "commit-tree", tree, "-m", f"e2e base: {source.name}")
    git(partial, "update-ref", "refs/heads/master", commit)
    git(partial, "update-ref", f"refs/tags/{BASE_TAG}", commit)
    (partial / "index").unlink()
    partial.rename(dest)


@pytest.fixture(scope="module")
def selected_on_purpose(request: pytest.FixtureRequest) -> None:
    """Several kernel builds: never part of a run that did not ask for it (ci/test runs
    vmtests with -m "not timing", which would otherwise take it in)."""
    markexpr = str(request.config.getoption("markexpr") or "")
    if "patch_ci" not in markexpr or "not patch_ci" in markexpr:
        pytest.skip("kheaders-ci end to end builds kernels twice per case: "
                    "select it with -m patch_ci")
    if platform.machine() != "x86_64":
        pytest.skip("runs x86_64 sysfs, natively only")


@pytest.fixture(scope="module")
def e2e_tree(selected_on_purpose: None, suite_settings: Settings) -> Path:
    """The throwaway tree, made once per cache and kernel source, reused while whole."""
    cache = suite_settings.cache_dir
    source = embedded_source(cache, suite_settings.kernel_package)
    name = hashlib.sha256(source.identity.encode()).hexdigest()[:12]
    dest = cache / "patchci" / f"e2e-tree-{name}.git"
    with file_lock(cache / "patchci" / "e2e-tree.lock", timeout=3600):
        whole = dest.is_dir() and subprocess.run(
            ("git", f"--git-dir={dest}", "rev-parse", "--verify", "--quiet",
             f"{BASE_TAG}^{{commit}}"), capture_output=True, check=False).returncode == 0
        if not whole:
            shutil.rmtree(dest, ignore_errors=True)
            make_tree(source.path, dest)
    return dest


def commit_edit(repo: Path, branch: str, path: str, edit: Callable[[str], str],
                message: str) -> str:
    """A commit on e2e-base with ``path`` edited, as branch ``branch``."""
    text = git_raw(repo, "cat-file", "blob", f"{BASE_TAG}:{path}")
    changed = edit(text)
    assert changed != text, f"{path} at {BASE_TAG}: the edit changes nothing"
    blob = git_raw(repo, "hash-object", "-w", "--stdin", stdin=changed).strip()
    mode = git(repo, "ls-tree", BASE_TAG, "--", path).split()[0]
    with tempfile.TemporaryDirectory() as tmp:
        index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git(repo, "read-tree", BASE_TAG, env=index)
        git(repo, "update-index", "--cacheinfo", f"{mode},{blob},{path}", env=index)
        tree = git(repo, "write-tree", env=index)
    commit = git(repo, "commit-tree", tree, "-p", BASE_TAG, "-m", message)
    git(repo, "update-ref", f"refs/heads/{branch}", commit)
    return commit


def replacing(old: str, new: str) -> Callable[[str], str]:
    return lambda text: text.replace(old, new)


def drop_arch_include(repo: Path) -> str:
    """Series (a): the list of packed directories without arch/$SRCARCH/include/."""
    for path, old, new in DROP_ARCH_INCLUDE:
        if old in git_raw(repo, "cat-file", "blob", f"{BASE_TAG}:{path}"):
            return commit_edit(repo, "e2e-drop-arch-include", path, replacing(old, new),
                               "kheaders: pack include/ only\n\n"
                               "Drop arch/$SRCARCH/include/ from the archive.")
    raise AssertionError("no list of packed directories found in "
                         f"{', '.join(p for p, _, _ in DROP_ARCH_INCLUDE)} at {BASE_TAG}")


def kheaders_ci(tree: Path, series: Sequence[str], out: Path, settings: Settings,
                capsys: pytest.CaptureFixture[str], variant: str = "sysfs"
                ) -> tuple[int, dict[str, Any], str]:
    """cli.main on x86_64 ``variant``, its output shown as it goes; (exit status,
    report.json, report.md)."""
    argv = ["--tree", str(tree), *series, "--arch", "x86_64", "--variant", variant,
            "--select", SELECT, "--cache-dir", str(settings.cache_dir),
            "--accel", settings.accel, "--out", str(out)]
    with capsys.disabled():
        rc = cli.main(argv)
    assert (out / "report.json").is_file(), f"kheaders-ci {argv} wrote no report (exit {rc})"
    return rc, json.loads((out / "report.json").read_text()), (out / "report.md").read_text()


def test_a_patch_dropping_arch_headers_is_a_regression(
        e2e_tree: Path, suite_settings: Settings, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    drop_arch_include(e2e_tree)
    mbox = tmp_path / "drop-arch-include.mbox"
    mbox.write_text(git(e2e_tree, "format-patch", "--stdout",
                        f"{BASE_TAG}..e2e-drop-arch-include") + "\n")
    rc, report, markdown = kheaders_ci(e2e_tree, ["--base", BASE_TAG, "--mbox", str(mbox)],
                                       tmp_path / "out", suite_settings, capsys)
    assert report["verdict"] == "regression", markdown
    assert rc == 1
    job = report["jobs"][0]
    regressed = [f["name"] for f in job["regressions"]]
    assert any("test_archive_check" in n and "member_list" in n for n in regressed), markdown
    assert job["archive"]["removed"], markdown
    assert all(n.lstrip("./").startswith("arch/x86/include/")
               for n in job["archive"]["removed"]), job["archive"]["removed"][:5]
    assert "### Regressions" in markdown
    assert "member_list" in markdown
    assert "removed (" in markdown
    assert "arch/x86/include/" in markdown


def test_a_harmless_patch_is_clean(e2e_tree: Path, suite_settings: Settings, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    path, comment = HARMLESS
    commit_edit(e2e_tree, "e2e-harmless", path, lambda text: text + comment,
                "init: a comment")
    rc, report, markdown = kheaders_ci(e2e_tree, ["--range", f"{BASE_TAG}..e2e-harmless"],
                                       tmp_path / "out", suite_settings, capsys)
    assert report["verdict"] == "clean", markdown
    assert rc == 0
    job = report["jobs"][0]
    assert job["regressions"] == []
    assert job["infra_errors"] == []
    for side in ("base", "patched"):  # the archive checks ran, and passed, on both sides
        outcomes = {t["outcome"] for t in job[side]["tests"].values()}
        assert "pass" in outcomes, (side, markdown)
        assert outcomes <= {"pass", "skip"}, (side, markdown)
    assert "### Archive changes" not in markdown


# kheaders' own init (kernel/kheaders.c), as every kernel since 5.2 spells its first lines.
INIT = "static int __init ikheaders_init(void)\n{\n"
BROKEN_INIT = {
    # Built in (sysfs), kheaders' initcall runs before the serial driver registers: only the
    # early console shows this panic (connect.kernel_args_for).
    "panic": 'panic("kheaders-ci e2e: injected panic in kheaders init");\n',
    # As a module (CONFIG_IKHEADERS=m), modprobe reports init's error.
    "enomem": "return -ENOMEM;\n",
    # A task in D state nothing wakes: modprobe hangs until the hung-task detector reports it.
    "hang": "set_current_state(TASK_UNINTERRUPTIBLE);\nschedule();\n",
}


def broken_init(repo: Path, how: str) -> str:
    """A series whose kheaders init does ``how`` (BROKEN_INIT) first; its branch name."""
    branch = f"e2e-init-{how}"

    def edit(text: str) -> str:
        assert INIT in text, f"kernel/kheaders.c at {BASE_TAG}: no {INIT!r}"
        text = text.replace(INIT, INIT + "\t" + BROKEN_INIT[how])
        return text.replace("#include <linux/init.h>\n",
                            "#include <linux/init.h>\n#include <linux/sched.h>\n")

    commit_edit(repo, branch, "kernel/kheaders.c", edit, f"kheaders: {how} in init")
    return branch


def regression_text(report: dict[str, Any], markdown: str) -> str:
    """Everything report.json says about the job's regressions, as one string to search."""
    return json.dumps(report["jobs"][0].get("regressions", [])) + "\n" + markdown


@pytest.mark.parametrize(("how", "variant", "said"), [
    # The patched kernel never boots; the base did, in the same run.
    pytest.param("panic", "sysfs", ("Kernel panic - not syncing: kheaders-ci e2e: injected "
                                    "panic", "did not boot"), id="panic-at-boot"),
    # modprobe kheaders fails, and the report names it and the kernel's error.
    pytest.param("enomem", "module", ("modprobe", "Cannot allocate memory"), id="enomem"),
    # The hung-task detector's report on modprobe is the regression, not a deadline.
    pytest.param("hang", "module", ("INFO: task modprobe:", "blocked for more than"),
                 id="hang", marks=pytest.mark.slow),
])
def test_a_patch_that_breaks_kheaders_init_is_a_regression(
        e2e_tree: Path, suite_settings: Settings, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], how: str, variant: str,
        said: tuple[str, ...]) -> None:
    """kheaders' init broken by the series (BROKEN_INIT): the series' regression, exit 1,
    the report quoting what the kernel said."""
    branch = broken_init(e2e_tree, how)
    rc, report, markdown = kheaders_ci(e2e_tree, ["--range", f"{BASE_TAG}..{branch}"],
                                       tmp_path / "out", suite_settings, capsys, variant)
    assert report["verdict"] == "regression", markdown
    assert rc == 1, markdown
    text = regression_text(report, markdown)
    for words in said:
        assert words in text, f"{words!r} not in the regressions\n{markdown}"


@pytest.mark.slow
def test_qemu_killed_once_on_the_patched_side_is_retried_not_blamed(
        e2e_tree: Path, suite_settings: Settings, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The harmless series with the patched side's QEMU killed once (the suite's own fault
    hook, plugin/faults.py): the ERROR is re-run on a fresh VM, passes, and the report says
    flaky with both outcomes, exit 0."""
    path, comment = HARMLESS
    commit_edit(e2e_tree, "e2e-harmless", path, lambda text: text + comment,
                "init: a comment")
    fault = f"kill-qemu-once:{tmp_path / 'fault-state'}"
    rc, report, markdown = kheaders_ci(
        e2e_tree, ["--range", f"{BASE_TAG}..e2e-harmless", "--patched-fault", fault],
        tmp_path / "out", suite_settings, capsys)
    assert (tmp_path / "fault-state").exists(), "the fault was never injected"
    assert rc == 0, markdown
    job = report["jobs"][0]
    assert job["regressions"] == [], markdown
    assert job["flaky"], markdown
    assert "### Flaky" in markdown
