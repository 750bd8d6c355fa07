"""Reading a kheaders archive (xz-compressed tar) with the stdlib only: lzma + tarfile.

Names are normalized the way every check wants them: gen_kheaders.sh runs
``tar -C $tmpdir .``, so GNU tar writes "./" first, then "./arch", ... with a leading "./"
and a directory entry for every directory. ``Member.name`` drops the "./" (and a trailing
"/"); the entry for "." itself has the name "". ``Member.raw_name`` keeps the original.

A stream that is not xz, is cut short, or holds no valid tar raises ``ArchiveError``;
``load`` turns that into a failed ``CheckResult`` so no check ever raises on bad input.
"""

from __future__ import annotations

import io
import lzma
import tarfile
from dataclasses import dataclass
from functools import cached_property

from kheaders_suite.verify.result import CheckResult, failed

XZ_MAGIC = b"\xfd7zXZ\x00"


class ArchiveError(ValueError):
    """The bytes are not a readable tar.xz; the message says what is wrong with them."""


@dataclass(frozen=True)
class Member:
    name: str  # normalized: no leading "./", no trailing "/"; "" for the top directory
    raw_name: str
    kind: str  # "file", "dir", "symlink", "hardlink" or "other"
    mode: int  # permission bits only
    uid: int
    gid: int
    uname: str
    gname: str
    mtime: int
    data: bytes = b""  # regular files only
    linkname: str = ""  # symlinks and hard links


@dataclass(frozen=True)
class Archive:
    members: tuple[Member, ...]
    compressed_size: int = 0
    tar_size: int = 0

    @cached_property
    def entries(self) -> dict[str, Member]:
        """Every non-directory member by normalized name (the last one wins, as in tar -x)."""
        return {m.name: m for m in self.members if m.kind != "dir"}

    def names(self) -> set[str]:
        return set(self.entries)

    def get(self, name: str) -> Member | None:
        return self.entries.get(name)


def normalize_name(raw: str) -> str:
    name = raw
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/")
    return "" if name == "." else name


def _kind(info: tarfile.TarInfo) -> str:
    if info.isreg():
        return "file"
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hardlink"
    return "other"


def read_archive(data: bytes) -> Archive:
    """Decode a kheaders tar.xz; ArchiveError (never lzma/tarfile exceptions) on bad input."""
    if not data.startswith(XZ_MAGIC):
        raise ArchiveError(f"not an xz stream: first bytes {data[:6].hex(' ')!s} "
                           f"(xz starts with {XZ_MAGIC.hex(' ')}); {len(data)} bytes")
    raw = _unxz(data)
    members: list[Member] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for info in tar:
                members.append(_member(tar, info))
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(f"xz decodes to {len(raw)} bytes that are not a valid tar: "
                           f"{exc}") from None
    return Archive(tuple(members), len(data), len(raw))


def _unxz(data: bytes) -> bytes:
    """Exactly one xz stream: lzma.decompress would silently drop trailing garbage."""
    decoder = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    try:
        raw = decoder.decompress(data)
    except lzma.LZMAError as exc:
        raise ArchiveError(f"xz stream of {len(data)} bytes does not decode: {exc}") from None
    if not decoder.eof:
        raise ArchiveError(f"xz stream of {len(data)} bytes does not decode: it ends before "
                           "the end-of-stream marker (truncated)")
    if decoder.unused_data.strip(b"\0"):
        raise ArchiveError(f"{len(decoder.unused_data)} bytes of trailing data after the xz "
                           f"stream (which ends at {len(data) - len(decoder.unused_data)})")
    return raw


def _member(tar: tarfile.TarFile, info: tarfile.TarInfo) -> Member:
    content = b""
    if info.isreg():
        handle = tar.extractfile(info)
        content = handle.read() if handle is not None else b""
        if len(content) != info.size:
            raise tarfile.ReadError(f"{info.name}: {len(content)} of {info.size} bytes")
    return Member(normalize_name(info.name), info.name, _kind(info), info.mode & 0o7777,
                  info.uid, info.gid, info.uname, info.gname, int(info.mtime), content,
                  info.linkname)


ArchiveInput = bytes | Archive


def load(check: str, archive: ArchiveInput) -> Archive | CheckResult:
    """The parsed archive, or a failed result for ``check`` saying why it could not be read."""
    if isinstance(archive, Archive):
        return archive
    try:
        return read_archive(archive)
    except ArchiveError as exc:
        return failed(check, f"archive unreadable: {exc}")
