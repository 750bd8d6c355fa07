"""Check 2: the archive holds exactly the files gen_kheaders.sh would have packed.

The expected list is computed from the trees, independently of the archive, following the
script of the kernel version at hand:

- 5.2: every file under include/ and arch/$SRCARCH/include/ except "*.cmd" and dot files,
  plus kernel/gen_kheaders.sh itself. From 5.3 on (commit 7199ff7d7400) only "*.h".
- Source tree and, for the O= builds this suite makes, the object tree; until 6.17 both whole
  include/ dirs, since the 6.17 rewrite (commit 626c54af3576) the source tree without its
  include/generated dirs and the object tree's generated dirs only.
- include/generated/utsversion.h: left out since commit 41e86fe7ebe9 (6.14); before that it
  was in the archive or not depending on build order, so it is optional there.

``objtree_headers`` is the build's copy of the object tree's *.h (KernelBuild): for 5.2 the
object tree's non-headers (include/config/auto.conf...) are not in that copy, so they show up
as "extra"; the suite builds >= 6.1.

Member names come from the kernel under test, so they meet a host path only through
``safe_member``: "/proc/kcore", "../../etc/hostname" or a name that reaches a host-side
symlink out of the tree must never make the host read (and a diff quote) that file.
``member_problem`` says what a member's own kind forbids: the build's archive holds regular
files, directories and a few symlinks inside the tree (include/dt-bindings has four in 6.12),
never hard links, devices, fifos or sparse files.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from pathlib import Path

from kheaders_suite.source.tree import KernelVersion
from kheaders_suite.verify.archive import ArchiveInput, Member, load
from kheaders_suite.verify.result import CheckResult, failed, passed

NAME = "member_list"
UTSVERSION = "include/generated/utsversion.h"
ONLY_HEADERS_SINCE = KernelVersion(5, 3)  # commit 7199ff7d7400
NO_UTSVERSION_SINCE = KernelVersion(6, 14)  # commit 41e86fe7ebe9
FILE_LISTS_SINCE = KernelVersion(6, 17)  # commit 626c54af3576: kheaders-srclist/-objlist


class UnsafeMember(ValueError):
    """A member whose name or kind may not meet the host's trees; the message names it."""


def name_problem(name: str) -> str | None:
    """Why ``name`` may not be joined onto a host directory, or None. Names only."""
    if "\0" in name:
        return "it holds a NUL byte"
    if name.startswith("/"):
        return "it is absolute"
    if ".." in name.split("/"):
        return "it has a '..' component"
    return None


def member_problem(member: Member) -> str | None:
    """Why the checks refuse ``member`` before looking at the host: its name or its kind."""
    why = name_problem(member.name)
    if why is not None:
        return f"archive member {member.raw_name!r} escapes the tree: {why}"
    if member.kind == "symlink":
        target = posixpath.normpath(posixpath.join(posixpath.dirname(member.name),
                                                   member.linkname))
        if member.linkname.startswith("/") or target.split("/")[0] == "..":
            return (f"archive member {member.raw_name!r} is a symlink out of the tree "
                    f"(to {member.linkname!r})")
    elif member.kind not in ("file", "dir"):
        link = f" (to {member.linkname!r})" if member.kind == "hardlink" else ""
        return (f"archive member {member.raw_name!r} is a {member.kind}{link}: the build's "
                "archive holds only regular files, directories and symlinks")
    return None


def safe_member(top: Path, name: str) -> Path | None:
    """``top / name`` when it is safe to read: inside ``top`` once the host's symlinks are
    resolved, and a regular file (or a symlink, compared by target). None when ``top`` has
    no such entry. UnsafeMember otherwise; the host file is never opened here."""
    why = name_problem(name)
    if why is not None:
        raise UnsafeMember(f"archive member {name!r} escapes the tree: {why}")
    path = top / name
    if not os.path.lexists(path):
        return None
    try:
        real, root = path.resolve(), top.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop: RuntimeError before 3.13
        raise UnsafeMember(f"archive member {name!r}: {path} does not resolve on the host: "
                           f"{exc}") from None
    if not real.is_relative_to(root):
        raise UnsafeMember(f"archive member {name!r} escapes the tree: on the host it "
                           f"resolves to {real}, outside {root}")
    if not path.is_symlink() and not real.is_file():
        raise UnsafeMember(f"archive member {name!r}: the host's {path} is not a regular "
                           "file")
    return path


def header_dirs(srcarch: str) -> tuple[str, str]:
    """The two directories gen_kheaders.sh packs (its dir_list)."""
    return ("include", f"arch/{srcarch}/include")


def _walk(top: Path, sub: str, only_h: bool, prune_generated: bool) -> Iterator[str]:
    """Relative names of what ``find <sub> -name "*.h"`` lists (files and symlinks)."""
    base = top / sub
    for root, dirs, files in os.walk(base):
        rel_root = Path(root).relative_to(top).as_posix()
        if prune_generated and rel_root == sub:
            dirs[:] = [d for d in dirs if d != "generated"]
        # os.walk lists symlinks to directories in dirs; find (no -L) treats them as entries.
        entries = files + [d for d in dirs if os.path.islink(os.path.join(root, d))]
        for name in entries:
            if only_h and not name.endswith(".h"):
                continue
            if not only_h and (name.endswith(".cmd") or name.startswith(".")):
                continue
            yield f"{rel_root}/{name}"


def expected_members(source_dir: Path, objtree_headers: Path, srcarch: str,
                     version: KernelVersion) -> set[str]:
    """The names (like include/linux/sched.h) the archive must hold; see the module doc."""
    only_h = version >= ONLY_HEADERS_SINCE
    lists = version >= FILE_LISTS_SINCE
    names: set[str] = set()
    for sub in header_dirs(srcarch):
        names.update(_walk(source_dir, sub, only_h, prune_generated=lists))
        obj_sub = f"{sub}/generated" if lists else sub
        names.update(_walk(objtree_headers, obj_sub, only_h, prune_generated=False))
    if not only_h:
        names.add("kernel/gen_kheaders.sh")
    if version >= NO_UTSVERSION_SINCE:
        names.discard(UTSVERSION)
    return names


def optional_members(version: KernelVersion) -> set[str]:
    """Names that may be present or not: utsversion.h before 6.14 (commit 41e86fe7ebe9)."""
    return {UTSVERSION} if version < NO_UTSVERSION_SINCE else set()


def member_list(archive: ArchiveInput, expected: set[str],
                optional: frozenset[str] | set[str] = frozenset()) -> CheckResult:
    """Missing and extra names (directories are ignored: tar adds one per path prefix)."""
    parsed = load(NAME, archive)
    if isinstance(parsed, CheckResult):
        return parsed
    actual = parsed.names() - {""}
    optional = set(optional)
    missing = sorted(expected - actual - optional)
    extra = sorted(actual - expected - optional)
    present = sorted(optional & actual)
    counts = (f"{len(actual)} members, {len(expected - optional)} required"
              + (f", optional present: {', '.join(present)}" if present else "")
              + (f", optional absent: {len(optional - actual)}" if optional - actual else ""))
    if not missing and not extra:
        return passed(NAME, f"{counts}: lists agree")
    details = [f"missing: {n}" for n in missing] + [f"extra:   {n}" for n in extra]
    return failed(NAME, f"{counts}: {len(missing)} missing, {len(extra)} extra", details)
