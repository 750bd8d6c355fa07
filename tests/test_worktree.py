import os
import re
import shutil
from pathlib import Path

import pytest

from kheaders_suite.errors import PatchFailed, UserError
from kheaders_suite.source import worktree
from kheaders_suite.source.tree import KernelVersion

PATCH = """\
--- a/kernel/kheaders.c
+++ b/kernel/kheaders.c
@@ -1,3 +1,3 @@
 line one
-sysfs
+proc
 line three
"""


def make_tree(root: Path) -> Path:
    src = root / "src"
    (src / "kernel").mkdir(parents=True)
    (src / "kernel/kheaders.c").write_text("line one\nsysfs\nline three\n")
    (src / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\n")
    return src


def series_dir(root: Path, versions: list[str]) -> Path:
    for v in versions:
        d = root / "patches/proc" / v
        d.mkdir(parents=True)
        (d / "0001-proc.patch").write_text(PATCH)
    return root / "patches"


@pytest.mark.parametrize(("version", "want"), [
    (KernelVersion(6, 1), "6.1-6.11"), (KernelVersion(6, 11, 99), "6.1-6.11"),
    (KernelVersion(6, 12), "6.12-7.x"), (KernelVersion(7, 99, 1), "6.12-7.x"),
])
def test_pick_series_by_range_with_both_bounds(
        tmp_path: Path, version: KernelVersion, want: str) -> None:
    patches = series_dir(tmp_path, ["6.1-6.11", "6.12-7.x"])
    assert worktree.pick_series(patches, "proc", version).range == want


@pytest.mark.parametrize("version", [KernelVersion(5, 15), KernelVersion(6, 14),
                                     KernelVersion(8, 0)])
def test_version_no_range_covers_is_an_error_naming_them(
        tmp_path: Path, version: KernelVersion) -> None:
    patches = series_dir(tmp_path, ["6.1-6.12", "6.17-7.x"])
    want = (rf"no proc patch covers kernel {version} \(carried: 6\.1-6\.12, 6\.17-7\.x\); "
            r"add " + re.escape(f"{tmp_path}/patches/proc/<min>-<max>/"))
    with pytest.raises(PatchFailed, match=want):
        worktree.pick_series(patches, "proc", version)


def test_range_names_round_trip() -> None:
    low, high = worktree.parse_range("6.17-7.x")
    assert worktree.range_name(low, high) == "6.17-7.x"
    assert high >= KernelVersion(7, 998, 5)
    with pytest.raises(ValueError, match="not a version range"):
        worktree.parse_range("6.1")


def test_patched_files_from_diff() -> None:
    assert worktree.patched_files(PATCH) == ["kernel/kheaders.c"]


def test_first_failing_file_from_patch_dry_run() -> None:
    out = "checking file init/Kconfig\nchecking file kernel/kheaders.c\nHunk #1 FAILED at 30.\n"
    assert worktree.first_failing_file(out) == "kernel/kheaders.c"


def test_sync_patches_a_copy_never_the_original(tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    work = tmp_path / "work"
    series = worktree.pick_series(series_dir(tmp_path, ["6.1-6.12"]), "proc", KernelVersion(6, 12))
    worktree.sync(src, work, KernelVersion(6, 12), series)
    assert (work / "kernel/kheaders.c").read_text() == "line one\nproc\nline three\n"
    assert (src / "kernel/kheaders.c").read_text() == "line one\nsysfs\nline three\n"
    assert (src / "kernel/kheaders.c").stat().st_nlink == 1


def test_switching_back_restores_and_makes_the_file_newer(tmp_path: Path) -> None:
    """make compares mtimes: a restored file must look newer than objects built meanwhile."""
    src = make_tree(tmp_path)
    old = src / "kernel/kheaders.c"
    os.utime(old, (1_000_000, 1_000_000))
    before = old.stat().st_mtime
    work = tmp_path / "work"
    series = worktree.pick_series(series_dir(tmp_path, ["6.1-6.12"]), "proc", KernelVersion(6, 12))
    worktree.sync(src, work, KernelVersion(6, 12), series)
    worktree.sync(src, work, KernelVersion(6, 12), None)
    restored = work / "kernel/kheaders.c"
    assert restored.read_text() == "line one\nsysfs\nline three\n"
    assert restored.stat().st_mtime > before
    assert old.stat().st_mtime == before  # the original's metadata untouched


def test_patch_that_does_not_apply_names_patch_version_and_file(tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    (src / "kernel/kheaders.c").write_text("something else entirely\n")
    series = worktree.pick_series(series_dir(tmp_path, ["6.1-6.12"]), "proc", KernelVersion(6, 12))
    with pytest.raises(PatchFailed) as err:
        worktree.sync(src, tmp_path / "work", KernelVersion(6, 12), series)
    assert str(err.value) == ("carried patch proc/6.1-6.12/0001-proc.patch does not apply to "
                              "6.12.0: "
                              "first failing file kernel/kheaders.c")
    assert "\n" not in str(err.value)


def test_edit_file_is_private_and_undone_by_the_next_sync(tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    work = tmp_path / "work"
    worktree.sync(src, work, KernelVersion(6, 12), None)
    assert (work / "kernel/kheaders.c").stat().st_nlink == 2  # shared with the source
    worktree.edit_file(work, "kernel/kheaders.c", "line one\nSYSFS\nline three\n",
                       mtime_ns=2_000_000_000 * 10**9)
    assert (src / "kernel/kheaders.c").read_text() == "line one\nsysfs\nline three\n"
    assert (work / "kernel/kheaders.c").stat().st_mtime == 2_000_000_000
    worktree.sync(src, work, KernelVersion(6, 12), None)
    restored = work / "kernel/kheaders.c"
    assert restored.read_text() == "line one\nsysfs\nline three\n"
    assert restored.stat().st_mtime > (src / "kernel/kheaders.c").stat().st_mtime


def test_a_work_copy_from_elsewhere_keeps_the_mtimes_of_what_did_not_change(
        tmp_path: Path) -> None:
    """A work copy restored from another CI runner's cache, and a fresh checkout (every file
    new): by size and mtime every file would be replaced by a newer one and make would build
    everything again; by content only the changed file is."""
    src = make_tree(tmp_path)
    worktree.sync(src, tmp_path / "work", KernelVersion(6, 12), None)
    restored = tmp_path / "restored"
    shutil.copytree(tmp_path / "work", restored)  # own inodes, the mtimes kept
    (restored / ".kheaders-suite-synced-from").write_text("another runner's tree")
    old = 1_000_000_000 * 10**9
    for path in restored.rglob("*"):
        os.utime(path, ns=(old, old))
    for path in src.rglob("*"):
        os.utime(path)  # a fresh checkout
    (src / "kernel/kheaders.c").write_text("line one\nchanged\nline three\n")
    worktree.sync(src, restored, KernelVersion(6, 12), None)
    assert (restored / "Makefile").stat().st_mtime_ns == old
    assert (restored / "kernel/kheaders.c").read_text() == "line one\nchanged\nline three\n"
    assert (restored / "kernel/kheaders.c").stat().st_mtime_ns > old
    # Its unchanged files are older than the tree's: the next sync is by content too.
    assert not (restored / ".kheaders-suite-synced-from").exists()
    (src / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 13\n")
    worktree.sync(src, restored, KernelVersion(6, 12), None)
    assert (restored / "kernel/kheaders.c").stat().st_mtime_ns > old
    assert (restored / "Makefile").read_text() == "VERSION = 6\nPATCHLEVEL = 13\n"


def test_a_work_copy_synced_from_this_tree_is_compared_by_mtime(tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    worktree.sync(src, tmp_path / "work", KernelVersion(6, 12), None)
    assert (tmp_path / "work/.kheaders-suite-synced-from").read_text() == \
        worktree.origin_of(src)
    args = ("--delete", "--exclude=/.git")
    ends = (f"{src}/", f"{tmp_path}/w/")
    assert worktree.rsync_cmd(src, tmp_path / "w") == (
        "rsync", "-a", *args, f"--link-dest={src}", *ends)
    assert worktree.rsync_cmd(src, tmp_path / "w", by_content=True) == (
        "rsync", "-rlpgoD", "--checksum", *args, *ends)


def test_after_a_reboot_a_work_copy_of_hard_links_is_compared_by_mtime_again(
        tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    work = tmp_path / "work"
    worktree.sync(src, work, KernelVersion(6, 12), None)
    (work / ".kheaders-suite-synced-from").write_text(f"{src} before the reboot")
    worktree.sync(src, work, KernelVersion(6, 12), None)  # by content, once
    assert (work / ".kheaders-suite-synced-from").read_text() == worktree.origin_of(src)


def host_file(root: Path) -> Path:
    """A file outside every tree: what a symlink in a series or a clone may point at."""
    host = root / "host.txt"
    host.write_text("the host's\n")
    os.utime(host, ns=(10**18, 10**18))
    return host


@pytest.mark.parametrize("rel", ["kernel/kheaders.c", "linked/kheaders.c", "../host.txt"])
def test_edit_file_refuses_to_write_through_a_symlink_or_out_of_the_tree(
        tmp_path: Path, rel: str) -> None:
    host = host_file(tmp_path)
    src = make_tree(tmp_path)
    (src / "kernel/kheaders.c").unlink()
    (src / "kernel/kheaders.c").symlink_to(host)
    (src / "linked").symlink_to(tmp_path)  # a directory of the tree that is the host's
    (tmp_path / "kheaders.c").write_text("the host's too\n")
    work = tmp_path / "work"
    worktree.sync(src, work, KernelVersion(6, 12), None)
    with pytest.raises(UserError, match=re.escape(rel.split("/")[0])):
        worktree.edit_file(work, rel, "written through\n", mtime_ns=10**9)
    assert host.read_text() == "the host's\n"
    assert host.stat().st_mtime_ns == 10**18
    assert (tmp_path / "kheaders.c").read_text() == "the host's too\n"


def test_a_patched_file_that_became_a_symlink_is_touched_not_its_target(
        tmp_path: Path) -> None:
    """The next sync touches what a series patched; the tree now has a link there (to a host
    file): the link is unshared and touched, the host file and the tree's link are not."""
    host = host_file(tmp_path)
    src = make_tree(tmp_path)
    work = tmp_path / "work"
    series = worktree.pick_series(series_dir(tmp_path, ["6.1-6.12"]), "proc", KernelVersion(6, 12))
    worktree.sync(src, work, KernelVersion(6, 12), series)
    link = src / "kernel/kheaders.c"
    link.unlink()
    link.symlink_to(host)
    os.utime(link, ns=(10**18, 10**18), follow_symlinks=False)
    (work / "kernel/kheaders.c").unlink()  # shared with the tree's link, as a link-dest copy
    os.link(link, work / "kernel/kheaders.c", follow_symlinks=False)
    worktree.sync(src, work, KernelVersion(6, 12), None)
    assert (work / "kernel/kheaders.c").is_symlink()
    assert (work / "kernel/kheaders.c").lstat().st_mtime_ns > 10**18
    assert host.stat().st_mtime_ns == 10**18
    assert link.lstat().st_mtime_ns == 10**18
    assert link.lstat().st_nlink == 1


@pytest.mark.parametrize("name", [".kheaders-suite-patched.json",
                                  ".kheaders-suite-synced-from"])
def test_the_suites_own_files_in_a_work_copy_replace_a_link_from_the_tree(
        tmp_path: Path, name: str) -> None:
    """A tree may hold a link under the name of a file the suite keeps in the work copy (rsync
    copies it there): the suite's file replaces the link, never writes its target."""
    host = host_file(tmp_path)
    src = make_tree(tmp_path)
    (src / name).symlink_to(host)
    work = tmp_path / "work"
    series = worktree.pick_series(series_dir(tmp_path, ["6.1-6.12"]), "proc", KernelVersion(6, 12))
    worktree.sync(src, work, KernelVersion(6, 12), series)
    assert host.read_text() == "the host's\n"
    assert not (work / name).is_symlink()


def test_a_series_patching_a_symlink_names_it(tmp_path: Path) -> None:
    host = host_file(tmp_path)
    host.write_text("line one\nsysfs\nline three\n")
    src = make_tree(tmp_path)
    (src / "kernel/kheaders.c").unlink()
    (src / "kernel/kheaders.c").symlink_to(host)
    series = worktree.pick_series(series_dir(tmp_path, ["6.1-6.12"]), "proc", KernelVersion(6, 12))
    with pytest.raises(UserError, match=r"kernel/kheaders\.c is a symlink"):
        worktree.sync(src, tmp_path / "work", KernelVersion(6, 12), series)
    assert host.read_text() == "line one\nsysfs\nline three\n"
