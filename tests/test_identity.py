"""A source's identity is its content: the build key of two checkouts of one commit is one,
and any change a build would see changes it; a touch, a copy or a moved tree do not."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from kheaders_suite.errors import UserError
from kheaders_suite.source import gittree, plaintree
from kheaders_suite.source import tree as source
from tests.test_source import fake_kernel

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git trees need git")
GIT = ("git", "-c", "user.name=t", "-c", "user.email=t@localhost", "-c", "commit.gpgSign=false",
       "-c", "init.defaultBranch=main")
OLD = 1_000_000 * 10**9  # an mtime long past: a checkout's files are always newer
HEADER = "include/linux/kheaders.h"


def git(repo: Path, *args: str) -> str:
    done = subprocess.run((*GIT, "-C", str(repo), *args), capture_output=True, text=True,
                          check=True, timeout=60)
    return done.stdout


def kernel_files(root: Path) -> Path:
    tree = fake_kernel(root, "6.12.0")
    (tree / "include/linux").mkdir(parents=True)
    (tree / HEADER).write_text("#define KHEADERS 1\n")
    (tree / "scripts/setlocalversion").write_text("#!/bin/sh\n")
    (tree / "scripts/setlocalversion").chmod(0o755)
    (tree / "include/dt-link.h").symlink_to("linux/kheaders.h")
    for path in tree.rglob("*"):
        os.utime(path, ns=(OLD, OLD), follow_symlinks=False)
    return tree


def git_kernel(root: Path) -> Path:
    tree = kernel_files(root)
    (tree / ".gitignore").write_text("*.o\n")
    git(tree, "init", "-q")
    git(tree, "add", "-A")
    git(tree, "commit", "-q", "-m", "base")
    return tree


def identity(tree: Path, cache: Path) -> str:
    return source.tree_identity(tree, cache)


# --- git trees --------------------------------------------------------------------------------

@needs_git
def test_two_clones_of_one_commit_have_one_identity(tmp_path: Path) -> None:
    """Fails with the old identity (paths, sizes, mtimes): the clone's files are new."""
    tree = git_kernel(tmp_path / "linux")
    subprocess.run((*GIT, "clone", "-q", str(tree), str(tmp_path / "clone")), check=True,
                   capture_output=True, timeout=60)
    first = identity(tree, tmp_path / "cache")
    assert first == f"git:1:{git(tree, 'rev-parse', 'HEAD^{tree}').strip()}"
    assert identity(tmp_path / "clone", tmp_path / "cache") == first


def edit(tree: Path) -> None:
    (tree / HEADER).write_text("#define KHEADERS 2\n")


def untracked(tree: Path) -> None:
    (tree / "include/linux/new.h").write_text("\n")


def staged(tree: Path) -> None:
    edit(tree)
    git(tree, "add", HEADER)


def deletion(tree: Path) -> None:
    (tree / HEADER).unlink()


def mode_change(tree: Path) -> None:
    (tree / HEADER).chmod(0o755)


def retargeted_link(tree: Path) -> None:
    (tree / "include/dt-link.h").unlink()
    (tree / "include/dt-link.h").symlink_to("linux/new.h")


@needs_git
@pytest.mark.parametrize("change", [edit, untracked, staged, deletion, mode_change,
                                    retargeted_link], ids=lambda f: f.__name__)
def test_a_change_a_build_would_see_changes_the_identity(
        tmp_path: Path, change: Callable[[Path], None]) -> None:
    tree = git_kernel(tmp_path / "linux")
    clean = identity(tree, tmp_path / "cache")
    change(tree)
    changed = identity(tree, tmp_path / "cache")
    assert changed.startswith(f"{clean}+")
    assert identity(tree, tmp_path / "cache") == changed


def touched(tree: Path) -> None:
    os.utime(tree / HEADER)


def build_output(tree: Path) -> None:
    (tree / "kernel/kheaders.o").write_bytes(b"\x7fELF")


def staged_and_undone(tree: Path) -> None:
    staged(tree)
    (tree / HEADER).write_text("#define KHEADERS 1\n")


def hard_linked(tree: Path) -> None:
    """What the build's work copy does to the tree's files (rsync --link-dest): new ctimes."""
    os.link(tree / HEADER, tree.parent / "link")


@needs_git
@pytest.mark.parametrize("change", [touched, build_output, staged_and_undone, hard_linked],
                         ids=lambda f: f.__name__)
def test_what_a_build_would_not_see_keeps_the_identity(
        tmp_path: Path, change: Callable[[Path], None]) -> None:
    tree = git_kernel(tmp_path / "linux")
    clean = identity(tree, tmp_path / "cache")
    change(tree)
    assert identity(tree, tmp_path / "cache") == clean


@needs_git
def test_the_identity_is_of_the_content_not_of_what_is_staged(tmp_path: Path) -> None:
    one, two = git_kernel(tmp_path / "one"), git_kernel(tmp_path / "two")
    edit(one)
    staged(two)
    assert identity(one, tmp_path / "cache") == identity(two, tmp_path / "cache")


@needs_git
def test_another_repository_named_in_the_environment_is_not_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hook sets GIT_DIR; a suite run from another repository's hook reads the tree."""
    tree, other = git_kernel(tmp_path / "linux"), git_kernel(tmp_path / "other")
    edit(other)
    git(other, "commit", "-q", "-a", "-m", "other")
    clean = identity(tree, tmp_path / "cache")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(other / ".git/index"))
    assert identity(tree, tmp_path / "cache") == clean


@needs_git
def test_a_repository_without_a_commit_is_one_line_naming_the_fix(tmp_path: Path) -> None:
    tree = kernel_files(tmp_path / "linux")
    git(tree, "init", "-q")
    with pytest.raises(UserError) as err:
        identity(tree, tmp_path / "cache")
    assert str(err.value).startswith(f"--kernel-src {tree}: git cannot read its HEAD")
    assert "pass a copy without .git" in str(err.value)
    assert "\n" not in str(err.value)


def test_git_commands_are_read_only_and_name_the_tree() -> None:
    tree = Path("/src/linux 7.3")
    unset = ("-u", "GIT_DIR", "-u", "GIT_WORK_TREE", "-u", "GIT_INDEX_FILE",
             "-u", "GIT_OBJECT_DIRECTORY", "-u", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
             "-u", "GIT_COMMON_DIR")
    head = ("env", *unset, "git", "-C", "/src/linux 7.3", "--no-optional-locks",
            "-c", "core.trustctime=false")
    assert gittree.head_tree_cmd(tree) == (*head, "rev-parse", "--verify", "HEAD^{tree}")
    assert gittree.changed_cmd(tree) == (*head, "diff-index", "-z", "--no-renames",
                                         "--ignore-submodules=all", "HEAD", "--")
    assert gittree.untracked_cmd(tree) == (*head, "ls-files", "-z", "--others",
                                           "--exclude-standard")


def test_diff_index_records_give_heads_blob() -> None:
    a, b, zero = "a" * 40, "b" * 40, "0" * 40
    out = (f":100644 100644 {a} {zero} M\0kernel/kheaders.c\0"
           f":000000 100644 {zero} {b} A\0new file.h\0"
           f":100755 000000 {b} {zero} D\0scripts/x\0")
    assert gittree.parse_changed(out) == {
        "kernel/kheaders.c": gittree.Blob("100644", a), "new file.h": None,
        "scripts/x": gittree.Blob("100755", b)}
    assert gittree.parse_changed("") == {}


def test_blob_ids_are_gits() -> None:
    assert gittree.blob_id(b"hello\n", "sha1") == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert gittree.blob_id(b"", "sha1") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


# --- plain trees ------------------------------------------------------------------------------

def plain(tree: Path, cache: Path) -> plaintree.TreeHash:
    """With no settling time: the tests' files are all fresh (the default leaves them out)."""
    return plaintree.plain_identity(tree, cache, settle_ns=0)


def test_a_plain_tree_is_the_same_cold_and_warm(tmp_path: Path) -> None:
    tree = kernel_files(tmp_path / "linux")
    cold = plain(tree, tmp_path / "cache")
    warm = plain(tree, tmp_path / "cache")
    assert cold.identity.startswith("tree:1:")
    assert cold.identity == warm.identity == identity(tree, tmp_path / "cache")
    assert (cold.files, cold.hashed) == (7, 6)  # a symlink is read by its target, uncached
    assert (warm.files, warm.hashed) == (7, 0)


def test_a_same_size_edit_with_the_old_mtime_changes_a_warm_identity(tmp_path: Path) -> None:
    tree = kernel_files(tmp_path / "linux")
    before = plain(tree, tmp_path / "cache")
    (tree / HEADER).write_text("#define KHEADERS 2\n")  # same size, and the mtime put back
    os.utime(tree / HEADER, ns=(OLD, OLD))
    after = plain(tree, tmp_path / "cache")
    assert after.identity != before.identity
    assert after.hashed == 1


@pytest.mark.parametrize("change", [edit, untracked, deletion, mode_change, retargeted_link],
                         ids=lambda f: f.__name__)
def test_a_change_changes_a_plain_identity(tmp_path: Path,
                                           change: Callable[[Path], None]) -> None:
    tree = kernel_files(tmp_path / "linux")
    before = plain(tree, tmp_path / "cache")
    change(tree)
    assert plain(tree, tmp_path / "cache").identity != before.identity


def test_a_touch_a_copy_or_a_umask_keeps_a_plain_identity(tmp_path: Path) -> None:
    tree = kernel_files(tmp_path / "linux")
    before = plain(tree, tmp_path / "cache").identity
    touched(tree)
    (tree / "Makefile").chmod(0o664)
    shutil.copytree(tree, tmp_path / "copy", symlinks=True)
    assert plain(tree, tmp_path / "cache").identity == before
    assert plain(tmp_path / "copy", tmp_path / "cache").identity == before


def test_a_corrupt_cache_file_is_recomputed_not_an_error(tmp_path: Path) -> None:
    tree = kernel_files(tmp_path / "linux")
    good = plain(tree, tmp_path / "cache")
    where = plaintree.cache_file(tmp_path / "cache", tree)
    for garbage in ('{"version": 1, "files": {"Makefile": [1, 2]}}', "[]", "{", "\0\xff"):
        where.write_text(garbage)
        again = plain(tree, tmp_path / "cache")
        assert again.identity == good.identity
        assert again.hashed == 6
        assert len(plaintree.load_cache(where)) == 6  # replaced by a whole one


def test_a_file_changed_just_now_is_read_again_next_time(tmp_path: Path) -> None:
    """Within a timestamp tick, a second change could leave its stamp as it was."""
    tree = kernel_files(tmp_path / "linux")
    plaintree.plain_identity(tree, tmp_path / "cache")
    assert plaintree.plain_identity(tree, tmp_path / "cache").hashed == 6


def test_computing_at_once_in_several_workers_is_safe(tmp_path: Path) -> None:
    tree = kernel_files(tmp_path / "linux")
    found: list[str] = []
    workers = [threading.Thread(target=lambda: found.append(plain(tree, tmp_path / "c").identity))
               for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert len(found) == 4
    assert len(set(found)) == 1
    assert sorted(p.name for p in (tmp_path / "c/identity").iterdir()) == [
        plaintree.cache_file(tmp_path / "c", tree).name]  # no temporary file left behind


def test_an_unreadable_file_is_one_line_naming_it(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    tree = kernel_files(tmp_path / "linux")
    (tree / HEADER).chmod(0)
    try:
        with pytest.raises(UserError, match=r"cannot read .*kheaders\.h"):
            plain(tree, tmp_path / "cache")
    finally:
        (tree / HEADER).chmod(stat.S_IRUSR | stat.S_IWUSR)
