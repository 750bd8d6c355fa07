"""The archive is regenerated when what it packs changed, and kept after a .c edit (a fake
work copy and object tree: the headers, .config and gen_kheaders.sh the digest reads)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kheaders_suite.build import archive_inputs

STAMP = "2019-04-26 00:00:00 UTC"


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path]:
    src, obj = tmp_path / "src", tmp_path / "obj"
    for rel, text in {"include/linux/a.h": "#define A 1\n",
                      "arch/x86/include/asm/b.h": "#define B 1\n",
                      "kernel/gen_kheaders.sh": "#!/bin/sh\n",
                      "kernel/sys.c": "int x;\n"}.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    (obj / "include/generated").mkdir(parents=True)
    (obj / "include/generated/autoconf.h").write_text("#define CONFIG_X 1\n")
    (obj / "kernel").mkdir()
    (obj / ".config").write_text("CONFIG_X=y\n")
    return src, obj


def digest(src: Path, obj: Path, timestamp: str = STAMP) -> dict[str, str]:
    return archive_inputs.inputs(src, obj, "x86", timestamp)


def edit_keeping_size_and_mtime(path: Path, old: str, new: str) -> None:
    """What `ls -l` cannot see: the same size, the same mtime."""
    st = path.stat()
    text = path.read_text()
    assert len(old) == len(new)
    path.write_text(text.replace(old, new))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("change", ["same-size header edit", "new object-tree header", "config",
                                    "gen_kheaders.sh", "arch header", "timestamp"])
def test_what_the_archive_packs_changes_the_digest(trees: tuple[Path, Path],
                                                   change: str) -> None:
    src, obj = trees
    before = digest(src, obj)
    timestamp = STAMP
    if change == "same-size header edit":
        edit_keeping_size_and_mtime(src / "include/linux/a.h", "A 1", "A 2")
    elif change == "new object-tree header":
        (obj / "include/generated/new.h").write_text("\n")
    elif change == "config":
        (obj / ".config").write_text("CONFIG_X=m\n")
    elif change == "gen_kheaders.sh":
        (src / "kernel/gen_kheaders.sh").write_text("#!/bin/sh\n# new\n")
    elif change == "arch header":
        (src / "arch/x86/include/asm/b.h").write_text("#define B 2\n")
    else:
        timestamp = "2020-01-01 00:00:00 UTC"
    assert digest(src, obj, timestamp) != before


def test_a_c_edit_or_a_touch_keeps_it(trees: tuple[Path, Path]) -> None:
    src, obj = trees
    before = digest(src, obj)
    (src / "kernel/sys.c").write_text("int y;\n")
    os.utime(src / "include/linux/a.h", (0, 0))
    (src / "include/linux/Kbuild").write_text("not a header\n")
    assert digest(src, obj) == before


def test_regenerated_unless_the_recorded_inputs_match(trees: tuple[Path, Path]) -> None:
    src, obj = trees
    md5 = obj / archive_inputs.MD5

    def before_make() -> str:
        md5.write_text("kbuild's own\n")
        return archive_inputs.regenerate_if_changed(src, obj, "x86", STAMP)

    assert before_make()  # nothing recorded: regenerate
    assert not md5.exists()
    archive_inputs.record(obj)
    assert not before_make()  # a .c edit's build: kbuild keeps it
    assert md5.exists()
    assert before_make()  # the last make did not record (it failed): regenerate
    archive_inputs.record(obj)
    edit_keeping_size_and_mtime(src / "include/linux/a.h", "A 1", "A 3")
    assert before_make() == "src/include/linux/a.h changed"
    assert not md5.exists()
    archive_inputs.record(obj)
    archive_inputs.forget(obj)  # upstream's logic ran in between: it may have kept it stale
    assert before_make()


def test_what_make_itself_rewrites_regenerates_nothing(trees: tuple[Path, Path]) -> None:
    """make's syncconfig rewrites .config (under the suite's ccache one compiler probe
    answers otherwise than configure's gcc): the record is the state make started from,
    which the next configure gives again."""
    src, obj = trees
    archive_inputs.regenerate_if_changed(src, obj, "x86", STAMP)
    (obj / ".config").write_text("CONFIG_X=y\n# CONFIG_CC_HAS_INT128 is not set\n")
    archive_inputs.record(obj)
    (obj / ".config").write_text("CONFIG_X=y\n")  # the next build's configure
    assert archive_inputs.regenerate_if_changed(src, obj, "x86", STAMP) == ""
