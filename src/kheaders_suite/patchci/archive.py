"""What a series did to the in-kernel headers archive and to the .config it was built with.

Members are compared by content hash (a symlink by its target), not by metadata: mode, owner
and mtime are fixed by gen_kheaders.sh and checked by the metadata verify check; here the
question is which headers a userspace build would see differently. The diff of changed text
headers is capped (DIFF_LINES per header, DIFF_HEADERS headers) so a series that touches a
thousand headers still gives a reply that fits in a mail; the rest are named only.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from pathlib import Path

from kheaders_suite.build.kconfig import parse_config
from kheaders_suite.verify.archive import Archive, ArchiveError, Member, read_archive
from kheaders_suite.verify.generated import UTSRELEASE, uts_release
from kheaders_suite.verify.members import UTSVERSION

DIFF_LINES = 40  # per header: a hunk or two, enough to see what moved
DIFF_HEADERS = 5  # headers shown with a diff; later ones are only named
# Members whose presence says how the object tree was used, not what the series did: before
# 6.14 (commit 41e86fe7ebe9) utsversion.h is packed only when an earlier link in the same
# object tree left it there, so a base built in a fresh tree (a cache hit, another runner's
# build) and a patched side built incrementally on it differ by it for every series. Present
# on both sides, a change of its content is still reported.
BUILD_ORDER_MEMBERS = frozenset({UTSVERSION})


@dataclass(frozen=True)
class HeaderDiff:
    name: str
    lines: tuple[str, ...]  # unified diff, at most DIFF_LINES
    omitted: int  # diff lines cut off past DIFF_LINES


@dataclass(frozen=True)
class ArchiveDiff:
    base_bytes: int  # size of the tar.xz
    patched_bytes: int
    base_members: int  # files and links (directories not counted)
    patched_members: int
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    diffs: tuple[HeaderDiff, ...]  # the first DIFF_HEADERS changed text headers
    base_release: str | None  # UTS_RELEASE from include/generated/utsrelease.h
    patched_release: str | None

    @property
    def unchanged(self) -> bool:
        return not (self.added or self.removed or self.changed) and \
            self.base_release == self.patched_release


@dataclass(frozen=True)
class ConfigChange:
    symbol: str
    base: str | None  # None: not in that .config at all; "n": "# ... is not set"
    patched: str | None


def _digest(member: Member) -> str:
    content = member.data if member.kind == "file" else member.linkname.encode()
    return f"{member.kind}:{hashlib.sha256(content).hexdigest()}"


def _release(archive: Archive) -> str | None:
    member = archive.get(UTSRELEASE)
    return uts_release(member.data) if member is not None else None


def _text(data: bytes) -> list[str] | None:
    """The lines of a text file, None for binary content (no diff is shown for it)."""
    if b"\0" in data:
        return None
    try:
        return data.decode().splitlines()
    except UnicodeDecodeError:
        return None


def header_diff(name: str, base: bytes, patched: bytes, limit: int = DIFF_LINES) -> HeaderDiff:
    """A unified diff of one member, cut to ``limit`` lines; an empty one for binary data."""
    old, new = _text(base), _text(patched)
    if old is None or new is None:
        return HeaderDiff(name, (f"(binary: {len(base)} -> {len(patched)} bytes)",), 0)
    lines = list(difflib.unified_diff(old, new, f"base/{name}", f"patched/{name}", n=2,
                                      lineterm=""))
    if not lines:  # same lines: the difference is a line ending or the final newline
        lines = [f"(line endings or final newline only: {len(base)} -> {len(patched)} bytes)"]
    return HeaderDiff(name, tuple(lines[:limit]), max(0, len(lines) - limit))


def diff_archives(base: Archive, patched: Archive) -> ArchiveDiff:
    """Members added, removed and changed (by content hash), with short diffs of the first
    changed headers, and the UTS_RELEASE of each side."""
    old, new = base.entries, patched.entries
    changed = sorted(n for n in old.keys() & new.keys() if _digest(old[n]) != _digest(new[n]))
    headers = [n for n in changed if n.endswith(".h")][:DIFF_HEADERS]
    return ArchiveDiff(
        base.compressed_size, patched.compressed_size, len(old), len(new),
        tuple(sorted(new.keys() - old.keys() - BUILD_ORDER_MEMBERS)),
        tuple(sorted(old.keys() - new.keys() - BUILD_ORDER_MEMBERS)),
        tuple(changed),
        tuple(header_diff(n, _body(old[n]), _body(new[n])) for n in headers),
        _release(base), _release(patched))


def _body(member: Member) -> bytes:
    return member.data if member.kind == "file" else f"-> {member.linkname}\n".encode()


def read_archive_file(path: Path) -> Archive:
    """The archive at ``path``; ArchiveError (with the path) for anything unreadable."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArchiveError(f"{path}: {exc.strerror or exc}") from None
    try:
        return read_archive(data)
    except ArchiveError as exc:
        raise ArchiveError(f"{path}: {exc}") from None


def diff_configs(base: str, patched: str) -> list[ConfigChange]:
    """Every CONFIG_ symbol whose value differs between two .config texts, by name."""
    old, new = parse_config(base), parse_config(patched)
    return [ConfigChange(s, old.get(s), new.get(s)) for s in sorted(old.keys() | new.keys())
            if old.get(s) != new.get(s)]
