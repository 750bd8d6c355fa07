"""Check 3: every member equals its tree file after the kernel's comment stripping.

Which tree file: the object tree's copy wins over the source tree's of the same name, because
gen_kheaders.sh copies the source tree first and the object tree over it (``cpio -pdu`` since
commit 1e8ca62b79de; ``tar -x`` after commit 82a1978d0fdc; explicit file lists since commit
626c54af3576). The bug that commit 1e8ca62b79de fixed is checked by name: when a member
differs from the object tree's file but equals the source tree's, the archive kept a stale
source-tree header that shadows the generated one.

Symlinks (include/dt-bindings has some) are packed as symlinks, so they compare by target.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from kheaders_suite.verify.archive import ArchiveInput, Member, load
from kheaders_suite.verify.result import CheckResult, failed, passed
from kheaders_suite.verify.strip import strip_comments

NAME = "content"
DIFF_LINES = 8  # per member: enough to see what changed, short enough to read many


def short_diff(expected: bytes, actual: bytes, name: str, limit: int = DIFF_LINES) -> list[str]:
    """A few lines of unified diff, tree (expected) against archive (actual)."""
    diff = difflib.unified_diff(
        expected.decode(errors="replace").splitlines(),
        actual.decode(errors="replace").splitlines(),
        f"tree/{name} (comments stripped)", f"archive/{name}", n=1, lineterm="")
    lines = list(diff)
    if not lines:  # same lines, so the difference is in line endings or a final newline
        return [f"  (differs only in line endings: {len(expected)} vs {len(actual)} bytes)"]
    shown = ["  " + line for line in lines[:limit]]
    if len(lines) > limit:
        shown.append(f"  ... {len(lines) - limit} more diff lines")
    return shown


def tree_file(name: str, source_dir: Path, objtree_headers: Path) -> Path | None:
    """The file gen_kheaders.sh would have packed for ``name``: the object tree's wins."""
    for top in (objtree_headers, source_dir):
        path = top / name
        if os.path.lexists(path):
            return path
    return None


def _compare(member: Member, path: Path) -> str | None:
    """None when equal, else a one-line reason."""
    if member.kind == "symlink" or path.is_symlink():
        want = os.readlink(path) if path.is_symlink() else "(a regular file)"
        got = member.linkname if member.kind == "symlink" else f"(a {member.kind})"
        return None if want == got else f"symlink target: tree {want}, archive {got}"
    if member.kind != "file":
        return f"archive has a {member.kind}, tree a regular file"
    if member.data == strip_comments(path.read_bytes()):
        return None
    return "content differs"


def _stale_source(member: Member, name: str, source_dir: Path, path: Path) -> bool:
    src = source_dir / name
    return (path != src and src.is_file() and not src.is_symlink()
            and member.data == strip_comments(src.read_bytes()))


def _shadow_notes(names: list[str], source_dir: Path, objtree_headers: Path) -> list[str]:
    notes = []
    for name in names:
        src, obj = source_dir / name, objtree_headers / name
        if src.is_file() and obj.is_file() and src.read_bytes() != obj.read_bytes():
            notes.append(f"note: {name}: stale source-tree copy differs from the object "
                         "tree's (the archive has the object tree's)")
    return notes


def content(archive: ArchiveInput, source_dir: Path, objtree_headers: Path) -> CheckResult:
    """Compare every member with its (stripped) tree file; show a short diff per mismatch."""
    parsed = load(NAME, archive)
    if isinstance(parsed, CheckResult):
        return parsed
    bad: list[str] = []
    details: list[str] = []
    untracked = 0
    for name, member in sorted(parsed.entries.items()):
        path = tree_file(name, source_dir, objtree_headers) if name else None
        if path is None:
            untracked += 1  # member_list reports it as extra
            continue
        reason = _compare(member, path)
        if reason is None:
            continue
        bad.append(name)
        if member.kind == "file" and _stale_source(member, name, source_dir, path):
            reason = ("stale source-tree header shadows the object tree's: the archive "
                      "has the source tree's copy")
        details.append(f"{name}: {reason}")
        if member.kind == "file" and path.is_file() and not path.is_symlink():
            details.extend(short_diff(strip_comments(path.read_bytes()), member.data, name))
    checked = len(parsed.entries) - untracked
    if bad:
        return failed(NAME, f"{len(bad)} of {checked} members differ from the tree: "
                      + ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else ""), details)
    notes = _shadow_notes(sorted(parsed.entries), source_dir, objtree_headers)
    return passed(NAME, f"{checked} members equal their stripped tree files"
                  + (f" ({untracked} not in the trees)" if untracked else ""), notes)
