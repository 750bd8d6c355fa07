"""Extracting a tar archive that came from a kernel under test: nothing may land outside the
destination, on every supported Python.

tarfile's extraction filters (``filter="data"``) arrived in 3.11.4; Debian 12's own Python is
3.11.2. Every member is therefore checked here first, whichever Python runs: a regular file,
a directory, or a link whose target stays inside the tree; a name that is relative, has no
``..`` and stays inside ``dest`` once resolved. Then the stdlib's filter runs where it exists;
elsewhere each member is extracted with the same normalisation the "data" filter applies
(no set-id bits, no group or other write, no owner from the archive).

Sizes are bounded as ``verify.archive`` bounds a served archive (its MAX_MEMBERS,
MAX_MEMBER_BYTES and TAR_CEILING): members are counted as the tar is read, so an xz bomb
is refused before anything is written.
"""

from __future__ import annotations

import copy
import os
import posixpath
import tarfile
from pathlib import Path

from kheaders_suite.verify.archive import MAX_MEMBER_BYTES, MAX_MEMBERS, MIB, TAR_CEILING

_SAFE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE,
               tarfile.LNKTYPE)


class UnsafeMember(tarfile.TarError):
    """A member that would write outside the destination, or is not a file, dir or link."""


def member_problem(member: tarfile.TarInfo) -> str | None:
    """Why ``member`` may not be extracted, or None. Pure: names only, no file system."""
    name = member.name
    if name.startswith("/") or posixpath.isabs(name):
        return "an absolute name"
    if ".." in posixpath.normpath(name).split("/"):
        return "a name that leaves the tree (..)"
    if member.type not in _SAFE_TYPES:
        return "not a regular file, directory or link"
    if member.issym():
        target = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
        if member.linkname.startswith("/") or target.split("/")[0] == "..":
            return f"a symlink out of the tree ({member.linkname})"
    if member.islnk() and (member.linkname.startswith("/")
                           or ".." in posixpath.normpath(member.linkname).split("/")):
        return f"a hard link out of the tree ({member.linkname})"
    return None


def checked_members(tar: tarfile.TarFile, dest: Path) -> list[tarfile.TarInfo]:
    """Every member, each checked; UnsafeMember names the first that fails."""
    root, members, total = dest.resolve(), [], 0
    for member in tar:
        members.append(member)
        total += member.size
        _within_limits(member, len(members), total)
        why = member_problem(member)
        if why is None and not (root / member.name).resolve().is_relative_to(root):
            why = "a name that resolves outside the tree"
        if why is not None:
            raise UnsafeMember(f"archive member {member.name!r}: {why}; nothing extracted")
    return members


def _within_limits(member: tarfile.TarInfo, count: int, total: int) -> None:
    if count > MAX_MEMBERS:
        raise UnsafeMember(f"archive has more than {MAX_MEMBERS} members; nothing extracted")
    if member.size > MAX_MEMBER_BYTES:
        raise UnsafeMember(f"archive member {member.name!r} is {member.size // MIB} MiB, over "
                           f"the {MAX_MEMBER_BYTES // MIB} MiB a header may be; nothing extracted")
    if total > TAR_CEILING:
        raise UnsafeMember(f"archive expands past {TAR_CEILING // MIB} MiB; nothing extracted")


def _normalised(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """What the stdlib's "data" filter does to a member it accepts (TarInfo.replace is 3.12)."""
    out = copy.copy(member)
    if member.isfile() or member.isdir():
        out.mode = member.mode & 0o755
    if member.isfile() and not member.mode & 0o100:
        out.mode &= ~0o111
    out.uid, out.gid, out.uname, out.gname = os.getuid(), os.getgid(), "", ""
    return out


def extract_tree(archive: Path, dest: Path, stdlib_filter: bool | None = None) -> None:
    """The tree of the xz-compressed ``archive`` at ``dest`` (made if missing).
    ``stdlib_filter``: None uses tarfile's "data" filter where this Python has one."""
    use_filter = hasattr(tarfile, "data_filter") if stdlib_filter is None else stdlib_filter
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:xz") as tar:
        members = checked_members(tar, dest)
        if use_filter:
            tar.extractall(dest, members=members, filter="data")
            return
        for member in members:
            tar.extract(_normalised(member), dest, set_attrs=not member.issym())
