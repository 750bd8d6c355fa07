"""Extracting an archive from a kernel under test: nothing lands outside the destination,
with tarfile's "data" filter (3.11.4+) and without it (Debian 12's 3.11.2)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from kheaders_suite.host.extract import UnsafeMember, extract_tree

BOTH = pytest.mark.parametrize("stdlib_filter", [False, True] if hasattr(tarfile, "data_filter")
                               else [False])


def _archive(path: Path, *members: tarfile.TarInfo, data: bytes = b"x\n") -> Path:
    with tarfile.open(path, "w:xz") as tar:
        for member in members:
            if member.isfile():
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
            else:
                tar.addfile(member)
    return path


def _file(name: str, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@BOTH
def test_a_tree_of_files_dirs_and_inner_links_is_extracted(tmp_path: Path,
                                                           stdlib_filter: bool) -> None:
    d = tarfile.TarInfo("include")
    d.type, d.mode = tarfile.DIRTYPE, 0o755
    archive = _archive(tmp_path / "a.tar.xz", d, _file("include/a.h", 0o4666),
                       _link("include/b.h", "a.h"), _link("include/c.h", "include/a.h",
                                                          tarfile.LNKTYPE))
    extract_tree(archive, tmp_path / "out", stdlib_filter=stdlib_filter)
    out = tmp_path / "out" / "include"
    assert (out / "a.h").read_bytes() == b"x\n"
    assert (out / "b.h").is_symlink()
    assert (out / "b.h").read_bytes() == b"x\n"
    assert (out / "c.h").read_bytes() == b"x\n"
    assert (out / "a.h").stat().st_mode & 0o7777 == 0o644  # no set-id, no group/other write


HOSTILE = {
    "absolute": _file("/etc/kheaders-test-absolute"),
    "dotdot": _file("./../../../../../../tmp/kheaders-test-dotdot"),
    "symlink out": _link("include/x.h", "../../../../etc/hostname"),
    "absolute symlink": _link("include/x.h", "/etc/hostname"),
    "hard link out": _link("include/x.h", "../../etc/hostname", tarfile.LNKTYPE),
    "device": _link("include/kmem", "", tarfile.CHRTYPE),
    "fifo": _link("include/fifo", "", tarfile.FIFOTYPE),
}


@BOTH
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_member_that_would_leave_the_tree_is_refused_before_anything_is_written(
        tmp_path: Path, case: str, stdlib_filter: bool) -> None:
    archive = _archive(tmp_path / "a.tar.xz", _file("first.h"), HOSTILE[case])
    with pytest.raises(UnsafeMember, match=r"^archive member .*nothing extracted$"):
        extract_tree(archive, tmp_path / "out", stdlib_filter=stdlib_filter)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_symlinked_directory_in_the_tree_cannot_carry_a_later_member_out(
        tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "include").symlink_to(outside)
    archive = _archive(tmp_path / "a.tar.xz", _file("include/evil.h"))
    with pytest.raises(UnsafeMember, match="resolves outside the tree"):
        extract_tree(archive, tmp_path / "out", stdlib_filter=False)
    assert list(outside.iterdir()) == []


def _zeros_archive(path: Path, sizes: list[int]) -> Path:
    with tarfile.open(path, "w:xz") as tar:
        for i, size in enumerate(sizes):
            info = _file(f"include/zero{i}.h")
            info.size = size
            tar.addfile(info, io.BytesIO(bytes(size)))
    return path


def test_an_xz_bomb_member_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """17 MiB of zeros compress to a few KB; no header is that big."""
    archive = _zeros_archive(tmp_path / "bomb.tar.xz", [17 << 20])
    assert archive.stat().st_size < 64 << 10
    with pytest.raises(UnsafeMember, match=r"is 17 MiB, over the 16 MiB a header may be"):
        extract_tree(archive, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize(("name", "value", "sizes", "message"), [
    ("MAX_MEMBERS", 3, [1, 1, 1, 1], "more than 3 members"),
    ("TAR_CEILING", 2 << 20, [1 << 20, 1 << 20, 1 << 20], "expands past 2 MiB"),
])
def test_member_count_and_total_size_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 name: str, value: int, sizes: list[int],
                                                 message: str) -> None:
    monkeypatch.setattr(f"kheaders_suite.host.extract.{name}", value)
    archive = _zeros_archive(tmp_path / "many.tar.xz", sizes)
    with pytest.raises(UnsafeMember, match=message):
        extract_tree(archive, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
