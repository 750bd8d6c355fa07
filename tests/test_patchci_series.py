"""kheaders-ci's git side on tiny synthetic kernel trees: the series read from a range or
mail files, the clone that never writes the user's tree, git am's failures named."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from kheaders_suite.errors import UserError
from kheaders_suite.patchci import clone as clones
from kheaders_suite.patchci import series as git_series

IDENTITY = ("-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgSign=false")
FIXED_DATE = "2024-01-02T03:04:05+00:00"
GEN_KHEADERS = 'dir_list="\ninclude/\narch/$SRCARCH/include/\n"\n'
VERSION_C = "/* init/version.c */\nint version;\n"


def g(repo: Path, *args: str) -> str:
    """git in a test repo, with a fixed identity and dates (same content, same shas)."""
    env = {**os.environ, "GIT_AUTHOR_DATE": FIXED_DATE, "GIT_COMMITTER_DATE": FIXED_DATE}
    return subprocess.run(("git", "-C", str(repo), *IDENTITY, *args), check=True, env=env,
                          capture_output=True, text=True).stdout.strip()


def commit_files(repo: Path, message: str, files: dict[str, str | None]) -> str:
    """Write (or, for None, delete) files and commit them; the new commit."""
    for rel, text in files.items():
        path = repo / rel
        if text is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    g(repo, "add", "-A")
    g(repo, "commit", "-q", "-m", message)
    return g(repo, "rev-parse", "HEAD")


@dataclass(frozen=True)
class KernelRepo:
    path: Path
    base: str  # tag v6.12
    tip: str  # branch "series": two commits on the base
    other: str  # branch "other": the base with init/version.c rewritten and Kconfig gone


def make_kernel_repo(root: Path) -> KernelRepo:
    """A git tree the suite takes for a 6.12 kernel, a two-commit series branch on it, and a
    diverging branch the series does not apply to."""
    repo = root / "linux"
    repo.mkdir(parents=True)
    g(repo, "init", "-q", "-b", "master")
    base = commit_files(repo, "Linux 6.12", {
        "Makefile": "VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 0\nEXTRAVERSION =\n",
        "Kconfig": "", "scripts/kconfig/merge_config.sh": "",
        "kernel/gen_kheaders.sh": GEN_KHEADERS, "init/version.c": VERSION_C,
        "kernel/configs.c": "int configs;\n"})
    g(repo, "tag", "v6.12")
    g(repo, "checkout", "-q", "-b", "series")
    commit_files(repo, "init: a comment", {"init/version.c": VERSION_C + "/* harmless */\n"})
    tip = commit_files(repo, "kheaders: pack include/ only", {
        "kernel/gen_kheaders.sh": GEN_KHEADERS.replace("arch/$SRCARCH/include/\n", "")})
    g(repo, "checkout", "-q", "-b", "other", "v6.12")
    other = commit_files(repo, "rewrite version.c, drop configs.c", {
        "init/version.c": "/* rewritten */\nint other;\n", "kernel/configs.c": None})
    g(repo, "checkout", "-q", "master")
    return KernelRepo(repo, base, tip, other)


@pytest.fixture
def kernel_repo(tmp_path: Path) -> KernelRepo:
    return make_kernel_repo(tmp_path / "trees")


def snapshot(tree: Path) -> dict[str, tuple[int, int]]:
    """Every file of the tree, .git included, by size and mtime: any write shows. But an
    object's mtime: git "freshens" (touches) an object of an alternate that a write in the
    clone would have created again, to keep it from being pruned (git's own, unavoidable
    for a --shared clone; content-addressed, so no content changes)."""
    def mtime(p: Path) -> int:
        return 0 if p.relative_to(tree).parts[:2] == (".git", "objects") else p.stat().st_mtime_ns
    return {str(p.relative_to(tree)): (p.stat().st_size, mtime(p))
            for p in sorted(tree.rglob("*")) if p.is_file()}


def mbox_of(repo: Path, revs: str, dest: Path, *extra: str) -> Path:
    dest.write_text(g(repo, "format-patch", "--stdout", *extra, revs) + "\n")
    return dest


def prepare_range(repo: KernelRepo, cache: Path, text: str, base_ref: str,
                  scratch: Path) -> clones.Prepared:
    found, _ = git_series.range_series(repo.path, text, scratch)
    base = git_series.resolve_commit(repo.path, base_ref, "--base")
    return clones.prepare(repo.path, clones.clone_path(cache, repo.path), base_ref, base, found)


def test_the_tree_is_never_written(kernel_repo: KernelRepo, tmp_path: Path) -> None:
    tree = kernel_repo.path
    state = (g(tree, "status", "--porcelain"), g(tree, "for-each-ref"),
             g(tree, "rev-parse", "HEAD"))
    before = snapshot(tree)  # after git status, which may refresh the index itself
    prepare_range(kernel_repo, tmp_path / "cache", "v6.12..series", "v6.12", tmp_path / "r")
    mbox = mbox_of(tree, "v6.12..series", tmp_path / "s.mbox")
    found = git_series.mbox_series([mbox], tmp_path / "m")
    clones.prepare(tree, clones.clone_path(tmp_path / "cache", tree), "v6.12",
                   kernel_repo.base, found)
    assert snapshot(tree) == before
    assert state == (g(tree, "status", "--porcelain"), g(tree, "for-each-ref"),
                     g(tree, "rev-parse", "HEAD"))


def test_range_gives_the_tip_tree_and_names_the_tip(kernel_repo: KernelRepo,
                                                    tmp_path: Path) -> None:
    prepared = prepare_range(kernel_repo, tmp_path / "cache", "v6.12..series", "v6.12",
                             tmp_path / "r")
    assert prepared.created
    assert prepared.clone == clones.clone_path(tmp_path / "cache", kernel_repo.path)
    assert prepared.clone.is_relative_to(tmp_path / "cache" / "patchci" / "clones")
    assert prepared.base == kernel_repo.base
    assert clones.tree_of(prepared.clone, prepared.patched) == clones.tree_of(
        kernel_repo.path, kernel_repo.tip)
    assert prepared.published == kernel_repo.tip
    assert [p.subject for p in prepared.series.patches] == [
        "init: a comment", "kheaders: pack include/ only"]
    assert prepared.series.patches[0].origin.startswith("commit ")
    # the clone is left checked out at the patched commit, and it is a clean checkout
    script = (prepared.clone / "kernel/gen_kheaders.sh").read_text()
    assert "arch/$SRCARCH" not in script
    assert g(prepared.clone, "status", "--porcelain") == ""


def test_checkouts_rewrite_only_what_differs(kernel_repo: KernelRepo, tmp_path: Path) -> None:
    """The build's work copy hard-links the clone's files (a new ctime on each); switching
    sides must still leave every file both commits share as it was (inode, mtime), or the
    clone's identity and make's view of it change everywhere: a cold build each side."""
    prepared = prepare_range(kernel_repo, tmp_path / "cache", "v6.12..series", "v6.12",
                             tmp_path / "r")
    links = tmp_path / "links"
    links.mkdir()
    time.sleep(1.1)  # git compares ctimes in whole seconds: make the links' ctime differ
    for name in ("Makefile", "init/version.c"):
        os.link(prepared.clone / name, links / name.replace("/", "_"))

    def stat(name: str) -> tuple[int, int]:
        st = (prepared.clone / name).stat()
        return st.st_ino, st.st_mtime_ns
    before = {name: stat(name) for name in ("Makefile", "init/version.c")}
    clones.checkout(prepared.clone, prepared.base)
    assert stat("Makefile") == before["Makefile"]
    assert stat("init/version.c") != before["init/version.c"]  # differs: rewritten
    assert (prepared.clone / "init/version.c").read_text() == VERSION_C


def test_range_onto_another_base_is_not_the_tip(kernel_repo: KernelRepo,
                                                tmp_path: Path) -> None:
    """The range's last commit alone, onto the base: its tree is not the tip's, so the
    report names the patchset, not a commit of the user's tree."""
    prepared = prepare_range(kernel_repo, tmp_path / "cache", "series~1..series", "v6.12",
                             tmp_path / "r")
    assert prepared.published == ""
    assert len(prepared.series.patches) == 1
    assert (prepared.clone / "init/version.c").read_text() == VERSION_C


def test_mbox_with_a_cover_letter(kernel_repo: KernelRepo, tmp_path: Path) -> None:
    mbox = mbox_of(kernel_repo.path, "v6.12..series", tmp_path / "s.mbox", "--cover-letter")
    found = git_series.mbox_series([mbox], tmp_path / "m")
    assert [p.subject for p in found.patches] == [
        "init: a comment", "kheaders: pack include/ only"]
    assert found.description == "*** SUBJECT HERE *** [2 patches, s.mbox]"
    assert found.option == f"--mbox {mbox}"
    assert len(found.patchset_hash) == 64
    prepared = clones.prepare(kernel_repo.path,
                              clones.clone_path(tmp_path / "cache", kernel_repo.path),
                              "v6.12", kernel_repo.base, found)
    assert prepared.published == ""  # applied as files: the report names the patchset
    assert clones.tree_of(prepared.clone, prepared.patched) == clones.tree_of(
        kernel_repo.path, kernel_repo.tip)


def test_patch_files_in_order_and_the_same_commit_on_every_run(kernel_repo: KernelRepo,
                                                               tmp_path: Path) -> None:
    """Two single-patch files; a second run reuses (and refreshes) the clone and, with a
    fixed committer and the base's date, makes the same patched commit."""
    first = mbox_of(kernel_repo.path, "series~2..series~1", tmp_path / "1.patch")
    second = mbox_of(kernel_repo.path, "series~1..series", tmp_path / "2.patch")
    cache = tmp_path / "cache"
    runs = []
    for i in range(2):
        found = git_series.mbox_series([first, second], tmp_path / f"m{i}")
        assert found.description == "init: a comment (+1 more) [2 patches, 1.patch, 2.patch]"
        runs.append(clones.prepare(kernel_repo.path, clones.clone_path(cache, kernel_repo.path),
                                   "v6.12", kernel_repo.base, found))
    assert [r.created for r in runs] == [True, False]
    assert runs[0].patched == runs[1].patched


def test_a_patch_that_does_not_apply_names_itself_and_its_file(kernel_repo: KernelRepo,
                                                               tmp_path: Path) -> None:
    mbox = mbox_of(kernel_repo.path, "series~2..series~1", tmp_path / "comment.patch")
    found = git_series.mbox_series([mbox], tmp_path / "m")
    clone = clones.clone_path(tmp_path / "cache", kernel_repo.path)
    with pytest.raises(UserError) as err:
        clones.prepare(kernel_repo.path, clone, "other", kernel_repo.other, found)
    assert str(err.value) == (
        f"--mbox {mbox}: patch 1/1 'init: a comment' (comment.patch) does not apply to "
        f"other ({kernel_repo.other[:12]}): first failing file init/version.c")
    assert not clone.parent.exists()  # made by this call, removed again


def test_a_failed_am_leaves_a_reused_clone_clean(kernel_repo: KernelRepo,
                                                 tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    good = prepare_range(kernel_repo, cache, "v6.12..series", "v6.12", tmp_path / "r")
    configs = tmp_path / "configs.patch"
    commit_files(kernel_repo.path, "configs: a comment",
                 {"kernel/configs.c": "int configs;\n/* c */\n"})
    mbox_of(kernel_repo.path, "HEAD~1..HEAD", configs)
    found = git_series.mbox_series([configs], tmp_path / "m")
    with pytest.raises(UserError, match=r"first failing file kernel/configs\.c$"):
        clones.prepare(kernel_repo.path, good.clone, "other", kernel_repo.other, found)
    assert good.clone.is_dir()  # not made by this call: kept
    assert not (good.clone / ".git" / "rebase-apply").exists()
    assert g(good.clone, "status", "--porcelain") == ""


def test_a_base_that_is_no_kernel_tree_is_refused(kernel_repo: KernelRepo,
                                                  tmp_path: Path) -> None:
    broken = commit_files(kernel_repo.path, "configured in place", {".config": "CONFIG_X=y\n"})
    found, _ = git_series.range_series(kernel_repo.path, "v6.12..series~1", tmp_path / "r")
    clone = clones.clone_path(tmp_path / "cache", kernel_repo.path)
    with pytest.raises(UserError) as err:
        clones.prepare(kernel_repo.path, clone, "master", broken, found)
    assert str(err.value).startswith(f"--base master ({broken[:12]}): tree has been "
                                     "configured in place")
    assert not clone.parent.exists()


def test_not_a_git_tree(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"^--tree .*/nope: no such directory"):
        git_series.check_tree(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(UserError, match=r"^--tree .*/plain: not a git tree"):
        git_series.check_tree(tmp_path / "plain")


def test_a_subdirectory_is_refused_with_its_top(kernel_repo: KernelRepo) -> None:
    with pytest.raises(UserError, match=f"not its top; pass {kernel_repo.path}$"):
        git_series.check_tree(kernel_repo.path / "kernel")
    assert git_series.check_tree(kernel_repo.path) == kernel_repo.path.resolve()


def test_a_bare_repository_is_a_tree(kernel_repo: KernelRepo, tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    subprocess.run(("git", "clone", "-q", "--bare", str(kernel_repo.path), str(bare)),
                   check=True)
    assert git_series.check_tree(bare) == bare
    with pytest.raises(UserError, match=f"not its top; pass {bare}$"):
        git_series.check_tree(bare / "refs")


def test_unknown_refs(kernel_repo: KernelRepo, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"^--base v9.9: no such commit in .*; pass a branch"):
        git_series.resolve_commit(kernel_repo.path, "v9.9", "--base")
    with pytest.raises(UserError, match=r"^--range nope: no such commit"):
        git_series.range_series(kernel_repo.path, "nope..series", tmp_path / "r")


@pytest.mark.parametrize("text", ["series", "..series", "v6.12..", "v6.12...series"])
def test_a_range_must_be_a_two_dot_range(text: str) -> None:
    with pytest.raises(UserError, match=r"expected A\.\.B"):
        git_series.split_range(text)


def test_empty_series(kernel_repo: KernelRepo, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"^--range series\.\.v6\.12: no commits in it"):
        git_series.range_series(kernel_repo.path, "series..v6.12", tmp_path / "r")
    cover_only = tmp_path / "cover.mbox"
    cover_only.write_text("From: a <a@b>\nSubject: [PATCH 0/2] a series\n\nno diff here\n")
    empty = tmp_path / "empty.mbox"
    empty.write_text("")
    for files in ([cover_only], [empty], [empty, cover_only]):
        with pytest.raises(UserError, match="no patch in it"):
            git_series.mbox_series(files, tmp_path / f"m{len(files)}{files[0].name}")
    with pytest.raises(UserError, match=r"^--mbox .*/missing.mbox: no such file"):
        git_series.mbox_series([tmp_path / "missing.mbox"], tmp_path / "m")


def test_a_range_with_a_merge_is_refused(kernel_repo: KernelRepo, tmp_path: Path) -> None:
    g(kernel_repo.path, "checkout", "-q", "-b", "side", "v6.12")
    commit_files(kernel_repo.path, "a new file", {"MAINTAINERS": "x\n"})
    g(kernel_repo.path, "checkout", "-q", "-b", "merged", "series")
    g(kernel_repo.path, "merge", "-q", "--no-ff", "--no-edit", "side")
    g(kernel_repo.path, "checkout", "-q", "master")
    with pytest.raises(UserError, match="is a merge; pass a range of plain commits"):
        git_series.range_series(kernel_repo.path, "v6.12..merged", tmp_path / "r")


# git am's own output (git 2.39), recorded from the cases above.
AM_PATCH_FAILED = """Applying: change f
Applying: second
Patch failed at 0002 second
When you have resolved this problem, run "git am --continue".
error: patch failed: init/version.c:1
error: init/version.c: patch does not apply
hint: Use 'git am --show-current-patch=diff' to see the failed patch
"""
AM_NOT_IN_INDEX = """Applying: rm g
Patch failed at 0001 rm g
error: kernel/configs.c: does not exist in index
"""
AM_GARBAGE = "Patch is empty.\nerror: patch with only garbage at line 3\n"


def two_patch_series() -> git_series.Series:
    patches = (git_series.Patch(Path("/s/1"), "first", "s.mbx"),
               git_series.Patch(Path("/s/2"), "second", "s.mbx"))
    return git_series.Series(patches, "--mbox s.mbx", "first (+1 more)")


@pytest.mark.parametrize(("output", "expected"), [
    (AM_PATCH_FAILED, "patch 2/2 'second' (s.mbx) does not apply to v6.12 (abc): "
                      "first failing file init/version.c"),
    (AM_NOT_IN_INDEX, "patch 1/2 'first' (s.mbx) does not apply to v6.12 (abc): "
                      "first failing file kernel/configs.c"),
    (AM_GARBAGE, "the series does not apply to v6.12 (abc): "
                 "error: patch with only garbage at line 3"),
])
def test_am_failure_line(output: str, expected: str) -> None:
    assert git_series.am_failure(output, two_patch_series(), "v6.12 (abc)") == (
        f"--mbox s.mbx: {expected}")


def test_git_commands_are_fixed_tuples() -> None:
    clone = Path("/c/linux")
    assert clones.clone_cmd(Path("/t"), clone) == (
        "git", "clone", "--shared", "--no-checkout", "--quiet", "--", "/t", "/c/linux")
    assert clones.checkout_cmd(clone, "a" * 40) == (
        "git", "-C", "/c/linux", *git_series.GIT_SETTINGS, "checkout", "--quiet", "--detach",
        "--force", "a" * 40)
    assert clones.am_cmd(clone, (Path("/s/1"),))[-3:] == ("am", "--no-3way", "/s/1")
    assert git_series.mailsplit_cmd(Path("/m"), Path("/d")) == (
        "git", "mailsplit", "-b", "-o/d", "/m")
    assert "core.hooksPath=/dev/null" in git_series.GIT_SETTINGS
