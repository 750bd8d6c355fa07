"""patchci.archive: what a series did to the headers archive and the .config, on tiny synthetic
tar.xz archives laid out as gen_kheaders.sh lays them out ("./" names, directory entries)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from kheaders_suite.patchci import archive
from kheaders_suite.patchci.archive import ConfigChange
from kheaders_suite.verify.archive import Archive, ArchiveError, read_archive

SCHED_BASE = "#ifndef _LINUX_SCHED_H\n#define _LINUX_SCHED_H\nstruct task_struct {\n" \
             "\tint pid;\n};\n#endif\n"
SCHED_PATCHED = SCHED_BASE.replace("\tint pid;\n", "\tint pid;\n\tint tgid;\n")
BASE_FILES = {
    "include/linux/sched.h": SCHED_BASE,
    "include/linux/types.h": "typedef int pid_t;\n",
    "arch/x86/include/asm/page.h": "#define PAGE_SHIFT 12\n",
    "include/generated/utsrelease.h": '#define UTS_RELEASE "6.12.117"\n',
}
PATCHED_FILES = {
    "include/linux/sched.h": SCHED_PATCHED,
    "include/linux/types.h": "typedef int pid_t;\n",
    "include/linux/pidfd.h": "#define PIDFD_NONBLOCK 1\n",
    "include/generated/utsrelease.h": '#define UTS_RELEASE "6.12.117-dirty"\n',
}
BASE_CONFIG = "# comment\nCONFIG_IKHEADERS=y\n# CONFIG_DEBUG_INFO_BTF is not set\n" \
              "CONFIG_MODULES=y\nCONFIG_LOCALVERSION=\"\"\n"
PATCHED_CONFIG = "CONFIG_IKHEADERS=m\nCONFIG_DEBUG_INFO_BTF=y\nCONFIG_LOCALVERSION=\"\"\n"


def tar_xz(files: Mapping[str, str | bytes]) -> bytes:
    """A kheaders-like tar.xz: "./"-prefixed names, directories first, 0:0, one mtime."""
    dirs = sorted({"/".join(name.split("/")[:i]) for name in files
                   for i in range(1, name.count("/") + 1)})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as tar:
        for d in dirs:
            info = tarfile.TarInfo(f"./{d}")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1556236800
            tar.addfile(info)
        for name, content in sorted(files.items()):
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(f"./{name}")
            info.size, info.mode, info.mtime = len(data), 0o644, 1556236800
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_tar_xz(path: Path, files: Mapping[str, str | bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tar_xz(files))
    return path


def parsed(files: Mapping[str, str | bytes]) -> Archive:
    return read_archive(tar_xz(files))


def test_members_added_removed_changed_and_release() -> None:
    base, patched = parsed(BASE_FILES), parsed(PATCHED_FILES)
    diff = archive.diff_archives(base, patched)
    assert diff.removed == ("arch/x86/include/asm/page.h",)
    assert diff.added == ("include/linux/pidfd.h",)
    assert diff.changed == ("include/generated/utsrelease.h", "include/linux/sched.h")
    assert (diff.base_members, diff.patched_members) == (4, 4)  # directories not counted
    assert (diff.base_release, diff.patched_release) == ("6.12.117", "6.12.117-dirty")
    assert (diff.base_bytes, diff.patched_bytes) == (base.compressed_size,
                                                      patched.compressed_size)
    assert not diff.unchanged


def test_changed_header_shows_a_unified_diff() -> None:
    diff = archive.diff_archives(parsed(BASE_FILES), parsed(PATCHED_FILES))
    sched = next(d for d in diff.diffs if d.name == "include/linux/sched.h")
    assert sched.lines[:2] == ("--- base/include/linux/sched.h",
                               "+++ patched/include/linux/sched.h")
    assert "+\tint tgid;" in sched.lines
    assert not [line for line in sched.lines if line.startswith("-") and
                not line.startswith("---")]  # only a line added
    assert sched.omitted == 0


def test_same_content_is_unchanged_whatever_the_tar_metadata() -> None:
    again = dict(BASE_FILES)
    diff = archive.diff_archives(parsed(BASE_FILES), parsed(again))
    assert diff.unchanged
    assert (diff.added, diff.removed, diff.changed, diff.diffs) == ((), (), (), ())


def test_diffs_are_capped_per_header_and_in_number() -> None:
    many = {f"include/linux/h{i}.h": "".join(f"line {n}\n" for n in range(200))
            for i in range(archive.DIFF_HEADERS + 2)}
    moved = {name: text.replace("line", "LINE") for name, text in many.items()}
    diff = archive.diff_archives(parsed(many), parsed(moved))
    assert len(diff.changed) == archive.DIFF_HEADERS + 2
    assert len(diff.diffs) == archive.DIFF_HEADERS
    for header in diff.diffs:
        assert len(header.lines) == archive.DIFF_LINES
        assert header.omitted == 2 + 2 * 200 + 1 - archive.DIFF_LINES  # ---/+++, -/+, @@


def test_binary_member_is_named_not_diffed() -> None:
    diff = archive.header_diff("x.h", b"\0\1\2", b"\0\1\3")
    assert diff.lines == ("(binary: 3 -> 3 bytes)",)


def test_final_newline_only_change_is_explained() -> None:
    diff = archive.header_diff("x.h", b"a\nb\n", b"a\nb")
    assert diff.lines[0].startswith("(line endings or final newline only")


def test_config_changes_name_every_symbol() -> None:
    assert archive.diff_configs(BASE_CONFIG, PATCHED_CONFIG) == [
        ConfigChange("CONFIG_DEBUG_INFO_BTF", "n", "y"),
        ConfigChange("CONFIG_IKHEADERS", "y", "m"),
        ConfigChange("CONFIG_MODULES", "y", None),
    ]
    assert archive.diff_configs(BASE_CONFIG, BASE_CONFIG) == []


def test_unreadable_archive_file_names_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "kheaders_data.tar.xz"
    bad.write_bytes(b"not xz at all")
    with pytest.raises(ArchiveError, match=r"kheaders_data\.tar\.xz: not an xz stream"):
        archive.read_archive_file(bad)
    with pytest.raises(ArchiveError, match=r"missing\.tar\.xz"):
        archive.read_archive_file(tmp_path / "missing.tar.xz")


def test_a_member_whose_presence_depends_on_build_order_is_no_change() -> None:
    """Before 6.14 utsversion.h is packed only when an earlier link in the same object tree left
    it there: a base served from a build in a fresh object tree (another runner's, a cache
    hit) and a patched side built incrementally differ by it for every series."""
    uts = {"include/generated/utsversion.h": '#define UTS_VERSION "#1 SMP"\n'}
    diff = archive.diff_archives(parsed(BASE_FILES), parsed({**BASE_FILES, **uts}))
    assert (diff.added, diff.removed) == ((), ())
    assert diff.unchanged
    back = archive.diff_archives(parsed({**BASE_FILES, **uts}), parsed(BASE_FILES))
    assert back.unchanged
    changed = archive.diff_archives(parsed({**BASE_FILES, **uts}), parsed(
        {**BASE_FILES, "include/generated/utsversion.h": '#define UTS_VERSION "#2 SMP"\n'}))
    assert changed.changed == ("include/generated/utsversion.h",)
