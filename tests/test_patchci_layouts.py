"""patchci.layouts: structure layouts that moved between two archives, measured by compiling
the layout probe (gcc -S) against tiny synthetic archives made from the fake tree
tests/data/verify/probe (tests/test_btf.py's, with its hand-worked offsets), each patched
side an edit of one of its headers. Then the same through compare_job, the JSON document and
the Markdown."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kheaders_suite.patchci import compare, docread, document, layouts, render
from kheaders_suite.patchci.layouts import LayoutDiff, MemberChange, Probe, StructChange
from kheaders_suite.verify.probe import probe_source
from tests.test_btf import COMPILERS, PROBE_ROOT, PROBE_STRUCTS
from tests.test_patchci_archive import write_tar_xz
from tests.test_patchci_compare import recorded
from tests.test_patchci_output import RUN, sections

PROBE = Probe(PROBE_STRUCTS, ("linux/sched.h", "net/sock.h"), timeout=60)
SCHED, SOCK, AUTOCONF = "include/linux/sched.h", "include/net/sock.h", \
    "include/generated/autoconf.h"
PID_BLOCK = "\tstruct {\n\t\tpid_t pid;"
Edit = Callable[[dict[str, str]], None]


def tree() -> dict[str, str]:
    """The fake tree as archive members: name -> text."""
    return {str(p.relative_to(PROBE_ROOT)): p.read_text()
            for p in sorted(PROBE_ROOT.rglob("*.h"))}


def sub(name: str, old: str, new: str) -> Edit:
    """An edit of one header; the test data must still hold ``old``."""
    def edit(files: dict[str, str]) -> None:
        assert old in files[name], f"{name} no longer holds {old!r}"
        files[name] = files[name].replace(old, new, 1)
    return edit


def archive(tmp_path: Path, label: str, *edits: Edit) -> Path:
    files = tree()
    for edit in edits:
        edit(files)
    return write_tar_xz(tmp_path / label / "kheaders_data.tar.xz", files)


def measure(tmp_path: Path, *edits: Edit, cc: str = "gcc", reverse: bool = False,
            probe: Probe = PROBE) -> LayoutDiff:
    """The fake tree as base, the edited tree as patched (``reverse``: the other way)."""
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} not installed")
    base, patched = archive(tmp_path, "base"), archive(tmp_path, "patched", *edits)
    if reverse:
        base, patched = patched, base
    return layouts.compare_archives(base, patched, cc, "x86", probe)


# --- comparisons ----------------------------------------------------------------------------

def test_unchanged_structs_give_no_diff(tmp_path: Path) -> None:
    """The archives differ (a comment), the layouts do not: nothing is reported."""
    diff = measure(tmp_path, sub(SCHED, "struct mm_struct;", "struct mm_struct; /* hi */"))
    assert diff == LayoutDiff("gcc", 3, (), ())
    assert not diff.moved


@pytest.mark.parametrize("cc", COMPILERS)
def test_a_field_inserted_moves_the_members_after_it(cc: str, tmp_path: Path) -> None:
    """u64 before the anonymous {pid, tgid}: every member from pid on moves by 8, the ones
    before it do not appear; sock is untouched and absent."""
    diff = measure(tmp_path, sub(SCHED, PID_BLOCK, "\tu64 inserted;\n" + PID_BLOCK), cc=cc)
    assert diff.notes == ()
    assert diff.changes == (StructChange("task_struct", 104, 112, (
        MemberChange("pid", 40, 48, 4, 4), MemberChange("tgid", 44, 52, 4, 4),
        MemberChange("extra", 48, 56, 24, 24), MemberChange("comm", 72, 80, 16, 16),
        MemberChange("tasks", 88, 96, 16, 16), MemberChange("tasks.prev", 96, 104, 8, 8))),)


def test_size_changes(tmp_path: Path) -> None:
    """comm grows (its size, and what follows it moves); sock grows at its end (its size
    only: no probed member moved)."""
    diff = measure(tmp_path, sub(SCHED, "char comm[16];", "char comm[24];"),
                   sub(SOCK, "\tu16 sk_type;\n", "\tu16 sk_type;\n\tu64 sk_cookie;\n"))
    assert diff.changes == (
        StructChange("task_struct", 104, 112, (
            MemberChange("comm", 72, 72, 16, 24), MemberChange("tasks", 88, 96, 16, 16),
            MemberChange("tasks.prev", 96, 104, 8, 8))),
        StructChange("sock", 40, 48, ()))


GONE = (sub(AUTOCONF, "#define CONFIG_SCHED_EXTRA 1\n", ""),  # task_struct.extra goes
        sub(SOCK, "struct sock {", "#ifdef CONFIG_NET\nstruct sock {"),
        sub(SOCK, "\tu16 sk_type;\n};\n", "\tu16 sk_type;\n};\n#endif\n"))


def test_member_and_struct_that_go_are_named_with_the_reason(tmp_path: Path) -> None:
    """The probe cannot compile them; their lines are dropped, the rest is measured."""
    diff = measure(tmp_path, *GONE)
    assert diff.notes == ()
    assert diff.structs == 2
    task, sock = diff.changes
    assert task == StructChange("task_struct", 104, 80, (
        MemberChange("extra", 48, None, 24, None,
                     "'struct task_struct' has no member named 'extra'"),
        MemberChange("comm", 72, 48, 16, 16), MemberChange("tasks", 88, 64, 16, 16),
        MemberChange("tasks.prev", 96, 72, 8, 8)))
    assert sock == StructChange("sock", 40, None, (),
                                "invalid application of 'sizeof' to incomplete type "
                                "'struct sock'")


def test_member_and_struct_that_appear(tmp_path: Path) -> None:
    diff = measure(tmp_path, *GONE, reverse=True)
    task, sock = diff.changes
    assert task.members[0] == MemberChange(
        "extra", None, 48, None, 24, "'struct task_struct' has no member named 'extra'")
    assert (task.base_size, task.patched_size) == (80, 104)
    assert (sock.name, sock.base_size, sock.patched_size) == ("sock", None, 40)


@pytest.mark.parametrize(("side", "edit", "says"), [
    ("patched", lambda f: f.pop(SOCK),
     "probe does not compile against the patched archive: probe.c:3:10: fatal error: "
     "net/sock.h: No such file or directory"),
    ("patched", sub(SCHED, "\tint prio;\n", "\tint prio\n"),
     "probe does not compile against the patched archive: patched/include/linux/sched.h:"),
    ("base", sub(SCHED, "\tint prio;\n", "\tint prio\n"),
     "probe does not compile against the base archive: base/include/linux/sched.h:"),
])
def test_a_probe_that_does_not_compile_is_a_note(tmp_path: Path, side: str, edit: Edit,
                                                  says: str) -> None:
    """A lost header or a broken one: no error line names a probe entry, so nothing is
    guessed; the first error line is the note and nothing is compared."""
    diff = measure(tmp_path, edit, reverse=side == "base")
    assert diff.changes == ()
    assert diff.structs == 0
    (note,) = diff.notes
    assert note.startswith(says), note


def test_a_missing_compiler_is_a_note(tmp_path: Path) -> None:
    base = archive(tmp_path, "base")
    diff = layouts.compare_archives(base, base, "kheaders-no-such-gcc", "x86", PROBE)
    assert diff == LayoutDiff("kheaders-no-such-gcc", notes=(
        "kheaders-no-such-gcc not found: structure layouts not measured",))


# --- the pure parts -------------------------------------------------------------------------

# gcc 12 (LC_ALL=C) on a probe with a missing member and a missing struct: the offsetof
# error is located in linux/stddef.h, the note after it names the probe line.
RECORDED_STDERR = """\
In file included from probe.c:4:
probe.c: In function 'kheaders_layout_probe':
base/include/linux/stddef.h:3:32: error: 'struct task_struct' has no member named 'nosuch'
probe.c:11:92: note: in expansion of macro 'offsetof'
probe.c:11:176: error: 'struct task_struct' has no member named 'nosuch'
probe.c:13:85: error: invalid application of 'sizeof' to incomplete type 'struct nostruct'
base/include/linux/stddef.h:3:32: error: invalid use of undefined type 'struct nostruct'
probe.c:14:84: note: in expansion of macro 'offsetof'
"""


def test_errors_are_attributed_to_probe_entries() -> None:
    source = probe_source([("task_struct", ["pid", "nosuch", "comm"]),
                                   ("nostruct", ["a"]), ("sock", ["sk_rcvbuf"])],
                                  ["linux/sched.h", "net/sock.h"])
    entries = layouts.entry_lines(source)
    assert (entries[11], entries[13], entries[14]) == ("task_struct.nosuch", "nostruct",
                                                       "nostruct.a")
    failed, unexplained = layouts.attribute(RECORDED_STDERR, entries)
    assert failed == {
        "task_struct.nosuch": "'struct task_struct' has no member named 'nosuch'",
        "nostruct": "invalid application of 'sizeof' to incomplete type 'struct nostruct'",
        "nostruct.a": "invalid use of undefined type 'struct nostruct'"}
    assert unexplained == ""
    lost = "<command-line>: fatal error: base/include/linux/kconfig.h: No such file\n"
    assert layouts.attribute(lost + RECORDED_STDERR, entries)[1] == lost.strip()
    assert layouts.without((("task_struct", ("pid", "nosuch")), ("nostruct", ("a",))),
                           failed) == (("task_struct", ("pid",)),)


def test_compile_command_and_toolchain() -> None:
    cmd = layouts.compile_command("aarch64-linux-gnu-gcc", "patched", "arm64",
                                  ("-fms-extensions",))
    assert cmd[:2] == ("aarch64-linux-gnu-gcc", "-fms-extensions")
    assert "-Ipatched/arch/arm64/include" in cmd
    assert cmd[-4:] == ("-S", "-o", "probe.s", "probe.c")
    assert layouts.toolchain("x86_64")[1] == "x86"
    assert layouts.toolchain("arm64")[1] == "arm64"
    assert layouts.toolchain("arm64")[0].endswith("gcc")


# --- through compare_job, the document and the Markdown --------------------------------------

def moved_job(tmp_path: Path, probe: Probe | None = PROBE) -> compare.JobReport:
    """The recorded x86_64-sysfs job (a regression) with the fake tree as its archives, a
    field inserted before pid on the patched side."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    base = replace(recorded(tmp_path, "base"), archive=archive(tmp_path, "b"))
    patched = replace(recorded(tmp_path, "patched"), archive=archive(
        tmp_path, "p", sub(SCHED, PID_BLOCK, "\tu64 inserted;\n" + PID_BLOCK)))
    return compare.compare_job(base, patched, layout_probe=probe)


def test_compare_job_carries_layouts_without_changing_the_verdict(tmp_path: Path) -> None:
    job = moved_job(tmp_path)
    assert job.layouts is not None
    assert [c.name for c in job.layouts.changes] == ["task_struct"]
    unmeasured = moved_job(tmp_path / "none", probe=None)
    assert unmeasured.layouts is None
    assert job.verdict == unmeasured.verdict == compare.CiVerdict.REGRESSION
    assert job.regressions == unmeasured.regressions
    same = recorded(tmp_path / "same", "base")
    assert compare.compare_job(same, same, layout_probe=PROBE).layouts is None  # same headers


def test_document_key_and_markdown_section(tmp_path: Path) -> None:
    doc = document.job_report(moved_job(tmp_path), RUN)
    again = docread.check_report(json.loads(json.dumps(doc)))
    assert again == doc
    got = again["jobs"][0]["layouts"]
    assert got is not None
    assert (got["cc"], got["structs"], got["notes"]) == ("gcc", 3, [])
    assert got["changes"][0]["members"][0] == {
        "path": "pid", "base_offset": 40, "patched_offset": 48, "base_size": 4,
        "patched_size": 4, "why": ""}
    md = sections(render.markdown(doc))
    assert list(md).index("Structure layouts") == list(md).index("Archive changes") + 1
    text = md["Structure layouts"]
    assert "**x86_64-sysfs**" in text
    assert "- `struct task_struct`: 104 -> 112 bytes (+8)\n  - `pid`: offset 40 -> 48\n" \
           "  - `tgid`: offset 44 -> 52\n" in text
    assert "`prio`" not in text  # before the inserted field: did not move
    assert "`struct sock`" not in text


def layouts_section(tmp_path: Path, diff: LayoutDiff | None) -> str | None:
    """The Markdown section of the recorded job given ``diff`` (nothing compiled)."""
    job = compare.compare_job(recorded(tmp_path, "base"), recorded(tmp_path, "patched"),
                              layout_probe=None)
    doc = document.job_report(replace(job, layouts=diff), RUN)
    return sections(render.markdown(doc)).get("Structure layouts")


def test_markdown_names_gone_members_and_notes(tmp_path: Path) -> None:
    diff = LayoutDiff("gcc", 1, (
        StructChange("task_struct", 104, 104, (
            MemberChange("extra", 48, None, 24, None, "no member named 'extra'"),
            MemberChange("comm", 72, 72, 16, 24))),
        StructChange("sock", None, 40, (), "incomplete type 'struct sock'")),
        ("a note",))
    text = layouts_section(tmp_path, diff)
    assert text is not None
    assert "\n".join([
        "- `struct task_struct`: 104 bytes",
        "  - `extra`: gone from patched (was offset 48, size 24) (no member named 'extra')",
        "  - `comm`: size 16 -> 24",
        "- `struct sock`: new in patched, 40 bytes (incomplete type 'struct sock')",
        "- note: a note", ""]) in text
    # nothing moved and no note, or not measured: no section
    assert layouts_section(tmp_path / "empty", LayoutDiff("gcc", 3)) is None
    assert layouts_section(tmp_path / "none", None) is None


def test_check_report_reads_documents_with_and_without_layouts(tmp_path: Path) -> None:
    doc: Any = json.loads(json.dumps(document.job_report(moved_job(tmp_path, None), RUN)))
    assert doc["jobs"][0]["layouts"] is None
    del doc["jobs"][0]["layouts"]  # written before the key existed
    md = render.markdown(docread.check_report(doc))
    assert "### Structure layouts" not in md
    doc["jobs"][0]["layouts"] = {"cc": "gcc", "structs": 0, "notes": []}
    with pytest.raises(ValueError, match=r"jobs\[0\].layouts: missing changes"):
        docread.check_report(doc)
