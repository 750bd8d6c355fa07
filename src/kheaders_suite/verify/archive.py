"""Reading a kheaders archive (xz-compressed tar) with the stdlib only: lzma + tarfile.

Names are normalized the way every check wants them: gen_kheaders.sh runs
``tar -C $tmpdir .``, so GNU tar writes "./" first, then "./arch", ... with a leading "./"
and a directory entry for every directory. ``Member.name`` drops the "./" (and a trailing
"/"); the entry for "." itself has the name "". ``Member.raw_name`` keeps the original.

A stream that is not xz, is cut short, or holds no valid tar raises ``ArchiveError``;
``load`` turns that into a failed ``CheckResult`` so no check ever raises on bad input.

Every byte comes from the kernel under test, so reading is bounded (``Limits``): xz is decoded
in chunks up to a cap on the tar's size (4 x the build's own, see ``Limits.from_build``), and
the tar may hold only so many members of so many bytes each. 20 MiB of zeros fit in 3 KiB of
xz; without the cap the host would hold whatever the stream expands to.
"""

from __future__ import annotations

import io
import lzma
import tarfile
from dataclasses import dataclass
from functools import cached_property

from kheaders_suite.verify.result import CheckResult, failed

XZ_MAGIC = b"\xfd7zXZ\x00"
MIB = 1 << 20
# A 6.12 archive: 4.3 MB of xz, 34 MB of tar, 7,028 members, the largest 0.46 MB.
TAR_FLOOR = 64 * MIB  # the cap when the build's size is unknown, and the least one
TAR_CEILING = 1024 * MIB  # the most, whatever the build's own archive claims
TAR_FACTOR = 4  # a patch may grow the headers, not by this much
MAX_MEMBERS = 100_000
MAX_MEMBER_BYTES = 16 * MIB
XZ_MEMLIMIT = 256 * MIB  # the decoder's own memory (dictionary): xz -9 needs 65 MiB
CHUNK = 4 * MIB


class ArchiveError(ValueError):
    """The bytes are not a readable tar.xz; the message says what is wrong with them."""


@dataclass(frozen=True)
class Member:
    name: str  # normalized: no leading "./", no trailing "/"; "" for the top directory
    raw_name: str
    kind: str  # "file", "dir", "symlink", "hardlink", SPECIAL_KINDS or "other"
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


@dataclass(frozen=True)
class Limits:
    """How far reading a served archive may go before it is refused."""

    tar_bytes: int = TAR_FLOOR
    members: int = MAX_MEMBERS
    member_bytes: int = MAX_MEMBER_BYTES
    build_tar_bytes: int | None = None  # the build's own archive, which tar_bytes follows

    @classmethod
    def from_build(cls, build_tar_bytes: int | None) -> Limits:
        """TAR_FACTOR x the build's tar size, within [TAR_FLOOR, TAR_CEILING]."""
        if build_tar_bytes is None:
            return cls()
        cap = min(max(TAR_FACTOR * build_tar_bytes, TAR_FLOOR), TAR_CEILING)
        return cls(tar_bytes=cap, build_tar_bytes=build_tar_bytes)

    def too_large(self) -> str:
        """Why decoding stopped, for the ArchiveError."""
        build = (f"the build's is {self.build_tar_bytes / MIB:.1f} MiB"
                 if self.build_tar_bytes is not None else "the build's size is unknown")
        return f"the served archive expands past {self.tar_bytes // MIB} MiB ({build})"


SPECIAL_KINDS = {tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device",
                 tarfile.FIFOTYPE: "fifo"}


def normalize_name(raw: str) -> str:
    name = raw
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/")
    return "" if name == "." else name


def _kind(info: tarfile.TarInfo) -> str:
    if info.issparse():  # isreg() too, but its holes would expand on reading
        return "sparse file"
    if info.type in SPECIAL_KINDS:
        return SPECIAL_KINDS[info.type]
    if info.isreg():
        return "file"
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hardlink"
    return "other"


def read_archive(data: bytes, limits: Limits = Limits()) -> Archive:
    """Decode a kheaders tar.xz; ArchiveError (never lzma/tarfile exceptions) on bad input,
    or on input past ``limits``."""
    if not data.startswith(XZ_MAGIC):
        raise ArchiveError(f"not an xz stream: first bytes {data[:6].hex(' ')!s} "
                           f"(xz starts with {XZ_MAGIC.hex(' ')}); {len(data)} bytes")
    raw = _unxz(data, limits)
    members: list[Member] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for info in tar:
                _within(info, len(members), limits)
                members.append(_member(tar, info))
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(f"xz decodes to {len(raw)} bytes that are not a valid tar: "
                           f"{exc}") from None
    return Archive(tuple(members), len(data), len(raw))


def _within(info: tarfile.TarInfo, count: int, limits: Limits) -> None:
    if count >= limits.members:
        raise ArchiveError(f"more than {limits.members} members (the build's archive has "
                           "about 7,000); stopped reading")
    if info.size > limits.member_bytes:
        raise ArchiveError(f"member {info.name!r} claims {info.size} bytes, more than the "
                           f"{limits.member_bytes // MIB} MiB a header may have")


def _decode(decoder: lzma.LZMADecompressor, data: bytes, limits: Limits) -> bytes:
    """At most limits.tar_bytes + 1 bytes of output, CHUNK at a time."""
    out = bytearray()
    pending = data
    while not decoder.eof and len(out) <= limits.tar_bytes:
        room = limits.tar_bytes + 1 - len(out)
        out += decoder.decompress(pending, max_length=min(CHUNK, room))
        pending = b""
        if decoder.needs_input:  # all input consumed and no output held back
            break
    if len(out) > limits.tar_bytes:
        raise ArchiveError(f"{limits.too_large()}: stopped decoding after {limits.tar_bytes} "
                           f"bytes of tar from {len(data)} bytes of xz")
    return bytes(out)


def _unxz(data: bytes, limits: Limits) -> bytes:
    """Exactly one xz stream: lzma.decompress would silently drop trailing garbage."""
    decoder = lzma.LZMADecompressor(format=lzma.FORMAT_XZ, memlimit=XZ_MEMLIMIT)
    try:
        raw = _decode(decoder, data, limits)
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


def xz_size(data: bytes) -> int | None:
    """The uncompressed size a single xz stream's index records; None if it has none."""
    data = data.rstrip(b"\0")  # stream padding
    if len(data) < 24 or not data.endswith(b"YZ"):
        return None
    start = len(data) - 12 - (int.from_bytes(data[-8:-4], "little") + 1) * 4
    if start < 12 or data[start] != 0:
        return None
    numbers = _varints(data, start + 1, len(data) - 12)
    if not numbers or numbers[0] * 2 > len(numbers) - 1:
        return None
    return sum(numbers[2 : 2 + 2 * numbers[0] : 2])


def _varints(data: bytes, pos: int, end: int) -> list[int]:
    """xz's multibyte integers from ``pos`` (7 bits a byte, low first) up to ``end``."""
    out: list[int] = []
    value = shift = 0
    while pos < end and shift < 63:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            out.append(value)
            value = shift = 0
    return out


def load(check: str, archive: ArchiveInput) -> Archive | CheckResult:
    """The parsed archive, or a failed result for ``check`` saying why it could not be read."""
    if isinstance(archive, Archive):
        return archive
    try:
        return read_archive(archive)
    except ArchiveError as exc:
        return failed(check, f"archive unreadable: {exc}")
