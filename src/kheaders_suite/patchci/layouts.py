"""Structure layouts that moved between the base and the patched archive.

Each archive is extracted to a scratch directory and the verify layout probe (probe.py) is
compiled against it on the host with the arch's gcc (``{cross_prefix}gcc``): ``gcc -S`` only,
nothing is linked or run, so aarch64-linux-gnu-gcc measures arm64 on an x86_64 host. Each
side is compiled with its own archive's C dialect (cflags.of_tree), since a series may change
it. The result is information, like the archive diff: it changes no verdict.

The probe names a fixed list of structs and members, and C has no "has member" test, so a
series that removes a probed member (or a whole struct) makes the probe fail to compile. The
compiler's errors say which line failed; each line of the probe measures one struct or member
(probe._emit), so the entries those errors point at are dropped and the probe is compiled once
more without them. They are reported as gone, with gcc's reason. An error no entry explains
(a header the patched archive lost, a syntax error in a header) is not guessed at: the side
is not measured and a note carries the first error line. So is a missing compiler.
"""

from __future__ import annotations

import lzma
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kheaders_suite.catalog import arches
from kheaders_suite.host.extract import extract_tree
from kheaders_suite.text import first_line
from kheaders_suite.verify import cflags
from kheaders_suite.verify.layout import Field, StructLayout
from kheaders_suite.verify.probe import (
    DEFAULT_HEADERS,
    DEFAULT_STRUCTS,
    TAG,
    parse_probe,
    probe_command,
    probe_source,
)

# Seconds per compile. The real probe (sched.h, fs.h, skbuff.h, sock.h at -O2) takes a few
# seconds; the bound is for a compiler that hangs, not a measurement.
COMPILE_TIMEOUT = 120.0
SOURCE, OUTPUT = "probe.c", "probe.s"  # in the scratch directory, the compile's cwd
# gcc's messages in ASCII quotes and English, so the notes read the same on every host.
_C_LOCALE = {"LC_ALL": "C"}
_ENTRY = re.compile(TAG + r" (?:struct|member) (\S+) ")
_DIAG = re.compile(r"^(?P<file>[^:\s][^:]*):(?P<line>\d+):(?:\d+:)? "
                   r"(?P<kind>fatal error|error|note): (?P<text>.*)$")

Structs = tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True)
class Probe:
    """What is measured: (struct, members) and the headers that define them."""

    structs: Structs = DEFAULT_STRUCTS
    headers: tuple[str, ...] = DEFAULT_HEADERS
    timeout: float = COMPILE_TIMEOUT


PROBE = Probe()


@dataclass(frozen=True)
class MemberChange:
    path: str  # dotted, as the probe names it: "__sk_common.skc_family"
    base_offset: int | None  # bytes; None: not measured on that side (gone or new)
    patched_offset: int | None
    base_size: int | None
    patched_size: int | None
    why: str = ""  # the compiler's error where a side could not measure it


@dataclass(frozen=True)
class StructChange:
    name: str
    base_size: int | None  # bytes; None: not measured on that side (appeared or gone)
    patched_size: int | None
    members: tuple[MemberChange, ...] = ()  # moved, resized, gone or new, in probe order
    why: str = ""  # the compiler's error where a side could not measure the struct


@dataclass(frozen=True)
class LayoutDiff:
    cc: str  # the compiler that measured both sides
    structs: int = 0  # structs measured on both sides
    changes: tuple[StructChange, ...] = ()
    notes: tuple[str, ...] = ()  # why something was not measured

    @property
    def moved(self) -> bool:
        return bool(self.changes)


@dataclass(frozen=True)
class Measured:
    """One side: the layouts the probe read, and each entry it could not measure
    ("task_struct" or "task_struct.pid") with the compiler's reason."""

    layouts: Mapping[str, StructLayout]
    missing: Mapping[str, str] = field(default_factory=dict)


def toolchain(arch: str) -> tuple[str, str]:
    """(gcc, SRCARCH) for one of the suite's arches; UserError names the valid ones."""
    spec = arches.get(arch)
    return f"{spec.cross_prefix()}gcc", spec.srcarch


def compile_command(cc: str, root: str, srcarch: str,
                    dialect: tuple[str, ...]) -> tuple[str, ...]:
    """The probe's compile against the archive extracted at ``root`` (relative to the cwd,
    so gcc's messages name "patched/include/..." rather than a scratch path)."""
    return probe_command(cc, root, srcarch, SOURCE, OUTPUT, dialect)


def entry_lines(source: str) -> dict[int, str]:
    """Line number (1-based) -> the entry that line of the probe measures."""
    return {number: match.group(1) for number, line in enumerate(source.splitlines(), 1)
            if (match := _ENTRY.search(line))}


def _error_groups(stderr: str) -> list[list[str]]:
    """Each error with the notes that follow it ("in expansion of macro 'offsetof'")."""
    groups: list[list[str]] = []
    for line in stderr.splitlines():
        match = _DIAG.match(line)
        if match and match.group("kind") == "note":
            if groups:
                groups[-1].append(line)
        elif match or "error:" in line:  # "<command-line>: fatal error: ..." has no line
            groups.append([line])
    return groups


def attribute(stderr: str, entries: Mapping[int, str]) -> tuple[dict[str, str], str]:
    """(entry -> its first error's text, the first error line no entry explains or "").

    An error inside the offsetof macro is located in linux/stddef.h; the note after it
    names the probe line that expanded it, so every location of the group counts."""
    failed: dict[str, str] = {}
    unexplained = ""
    for group in _error_groups(stderr):
        spots = [m for line in group if (m := _DIAG.match(line))]
        hits = [entries[int(m.group("line"))] for m in spots
                if m.group("file") == SOURCE and int(m.group("line")) in entries]
        if hits:
            failed.setdefault(hits[0], spots[0].group("text"))
        elif not unexplained:
            unexplained = group[0]
    return failed, unexplained


def without(structs: Structs, failed: Iterable[str]) -> Structs:
    """The probe list minus failed entries (a failed struct takes its members along)."""
    gone = set(failed)
    return tuple((name, tuple(m for m in members if f"{name}.{m}" not in gone))
                 for name, members in structs if name not in gone)


def extract(archive: Path, dest: Path) -> None:
    """The archive's tree at ``dest``; a member that would land outside it is refused
    (host/extract.py)."""
    extract_tree(archive, dest)


def _compile(cc: str, root: str, srcarch: str, source: str, scratch: Path,
             timeout: float) -> subprocess.CompletedProcess[str]:
    (scratch / SOURCE).write_text(source)
    dialect = cflags.of_tree(scratch / root)
    return subprocess.run(compile_command(cc, root, srcarch, dialect), cwd=scratch,
                          env={**os.environ, **_C_LOCALE}, capture_output=True, text=True,
                          timeout=timeout, check=False)


def measure(cc: str, side: str, srcarch: str, probe: Probe, scratch: Path) -> Measured | str:
    """The probe against the archive extracted at ``scratch/side``: its layouts, or a note
    saying why not. At most two compiles: the second without the entries the first's errors
    pointed at."""
    structs = probe.structs
    missing: dict[str, str] = {}
    for attempt in range(2):
        source = probe_source(structs, probe.headers)
        try:
            done = _compile(cc, side, srcarch, source, scratch, probe.timeout)
        except subprocess.TimeoutExpired:
            return f"probe against the {side} archive: {cc} timed out after {probe.timeout:g} s"
        except OSError as exc:
            return f"probe against the {side} archive: {cc} did not run: {exc.strerror or exc}"
        if done.returncode == 0:
            return Measured(parse_probe((scratch / OUTPUT).read_text()), missing)
        failed, unexplained = attribute(done.stderr, entry_lines(source))
        if unexplained or not failed or attempt:
            first = (unexplained or first_line(done.stderr)
                     or f"{cc} exited {done.returncode}")
            return f"probe does not compile against the {side} archive: {first}"
        missing.update(failed)
        structs = without(structs, failed)
    raise AssertionError("unreachable: the second attempt returns")


def _member_changes(name: str, listed: Iterable[str], old: StructLayout, new: StructLayout,
                    base: Measured, patched: Measured) -> list[MemberChange]:
    out = []
    for path in dict.fromkeys([*listed, *old.members, *new.members]):
        a, b = old.members.get(path), new.members.get(path)
        if a == b:
            continue
        why = (base.missing if a is None else patched.missing if b is None else {})
        out.append(MemberChange(path, _offset(a), _offset(b), a.size if a else None,
                                b.size if b else None, why.get(f"{name}.{path}", "")))
    return out


def _offset(f: Field | None) -> int | None:
    return None if f is None else f.bit_offset // 8


def diff_layouts(base: Measured, patched: Measured,
                 order: Structs = ()) -> tuple[StructChange, ...]:
    """Structs whose size changed, or with a member that moved, changed size, appeared or
    went; structs that appeared or went. Structs and members in ``order`` (the probe's
    list), then any others by name."""
    listed = dict(order)
    names = dict.fromkeys([*listed, *sorted(base.layouts.keys() | patched.layouts.keys())])
    changes = []
    for name in names:
        old, new = base.layouts.get(name), patched.layouts.get(name)
        if old is None and new is None:
            continue
        if old is None or new is None:
            why = (base.missing if old is None else patched.missing).get(name, "")
            changes.append(StructChange(name, old.size if old else None,
                                        new.size if new else None, (), why))
            continue
        members = _member_changes(name, listed.get(name, ()), old, new, base, patched)
        if members or old.size != new.size:
            changes.append(StructChange(name, old.size, new.size, tuple(members)))
    return tuple(changes)


def _extract_side(side: str, archive: Path, scratch: Path) -> str:
    """"" once extracted, else a note (compare read both archives already, so rare)."""
    try:
        extract(archive, scratch / side)
    except (tarfile.TarError, lzma.LZMAError, EOFError, OSError) as exc:
        return f"{side} archive {archive} not extracted: {exc}"
    return ""


def compare_archives(base: Path, patched: Path, cc: str, srcarch: str,
                     probe: Probe = PROBE) -> LayoutDiff:
    """The probe's layouts of the two archives, compared. Never raises for a missing
    compiler, an archive that does not extract or a probe that does not compile: each is a
    note, and what could not be measured is not compared."""
    if shutil.which(cc) is None:
        return LayoutDiff(cc, notes=(f"{cc} not found: structure layouts not measured",))
    measured: list[Measured] = []
    with tempfile.TemporaryDirectory(prefix="kheaders-layouts-") as tmp:
        scratch = Path(tmp)
        for side, archive in (("base", base), ("patched", patched)):
            got: Measured | str = _extract_side(side, archive, scratch)
            if not got:
                got = measure(cc, side, srcarch, probe, scratch)
            if isinstance(got, str):
                return LayoutDiff(cc, notes=(got,))
            measured.append(got)
    old, new = measured
    both = len(old.layouts.keys() & new.layouts.keys())
    return LayoutDiff(cc, both, diff_layouts(old, new, probe.structs))
