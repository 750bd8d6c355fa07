"""Check 3: every member equals its tree file after the kernel's comment stripping.

Which tree file: the object tree's copy wins over the source tree's of the same name, because
gen_kheaders.sh copies the source tree first and the object tree over it (``cpio -pdu`` since
commit 1e8ca62b79de; ``tar -x`` after commit 82a1978d0fdc; explicit file lists since commit
626c54af3576). The bug that commit 1e8ca62b79de fixed is checked by name: when a member
differs from the object tree's file but equals the source tree's, the archive kept a stale
source-tree header that shadows the generated one.

Symlinks (include/dt-bindings has some) are packed as symlinks, so they compare by target.
Every member name reaches the trees through members.safe_member: a name or a host-side
symlink that leads out of the trees fails the check by name, and the host file is not read.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from kheaders_suite.verify.archive import ArchiveInput, Member, load
from kheaders_suite.verify.members import UnsafeMember, member_problem, safe_member
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
    """The file gen_kheaders.sh would have packed for ``name``: the object tree's wins.
    UnsafeMember when ``name`` leads out of a tree or to a host file that is not one."""
    for top in (objtree_headers, source_dir):
        path = safe_member(top, name)
        if path is not None:
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
    src = safe_member(source_dir, name)
    return (src is not None and path != src and not src.is_symlink()
            and member.data == strip_comments(src.read_bytes()))


def _shadow_notes(names: list[str], source_dir: Path, objtree_headers: Path) -> list[str]:
    """Only for a passing check, so every name was safe in both trees already."""
    notes = []
    for name in names:
        src, obj = safe_member(source_dir, name), safe_member(objtree_headers, name)
        if src is None or obj is None:
            continue
        if src.is_file() and obj.is_file() and src.read_bytes() != obj.read_bytes():
            notes.append(f"note: {name}: stale source-tree copy differs from the object "
                         "tree's (the archive has the object tree's)")
    return notes


def _member_details(member: Member, source_dir: Path, objtree_headers: Path) -> list[str] | None:
    """What is wrong with one member ([] nothing), None when the trees lack it; UnsafeMember
    when its name or kind is refused before any host file is looked at."""
    problem = member_problem(member)
    if problem is not None:
        raise UnsafeMember(problem)
    name = member.name
    path = tree_file(name, source_dir, objtree_headers)
    if path is None:
        return None
    reason = _compare(member, path)
    if reason is None:
        return []
    if member.kind == "file" and _stale_source(member, name, source_dir, path):
        reason = ("stale source-tree header shadows the object tree's: the archive "
                  "has the source tree's copy")
    details = [f"{name}: {reason}"]
    if member.kind == "file" and path.is_file() and not path.is_symlink():
        details += short_diff(strip_comments(path.read_bytes()), member.data, name)
    return details


def _summary(bad: list[str], refused: list[str], checked: int) -> str:
    """The first refusal in full (it names the member and why), then the differing count."""
    parts = [refused[0] + (f" (and {len(refused) - 1} more refused)" if len(refused) > 1
                           else "")] if refused else []
    if bad:
        parts.append(f"{len(bad)} of {checked} members differ from the tree: "
                     + ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else ""))
    return "; ".join(parts)


def content(archive: ArchiveInput, source_dir: Path, objtree_headers: Path) -> CheckResult:
    """Compare every member with its (stripped) tree file; show a short diff per mismatch."""
    parsed = load(NAME, archive)
    if isinstance(parsed, CheckResult):
        return parsed
    bad: list[str] = []
    refused: list[str] = []
    details: list[str] = []
    untracked = 0
    for name, member in sorted(parsed.entries.items()):
        try:
            found = _member_details(member, source_dir, objtree_headers) if name else None
        except UnsafeMember as exc:
            refused.append(str(exc))
            continue
        if found is None:
            untracked += 1  # member_list reports it as extra
        elif found:
            bad.append(name)
            details += found
    details = refused + details
    checked = len(parsed.entries) - untracked
    if bad or refused:
        return failed(NAME, _summary(bad, refused, checked), details)
    notes = _shadow_notes(sorted(parsed.entries), source_dir, objtree_headers)
    return passed(NAME, f"{checked} members equal their stripped tree files"
                  + (f" ({untracked} not in the trees)" if untracked else ""), notes)
