"""Check 7b: a small reader of raw BTF (the format of /sys/kernel/btf/vmlinux).

Layout (include/uapi/linux/btf.h): a header (magic 0xeb9f, version 1, flags, hdr_len, then
type_off/type_len and str_off/str_len, both relative to the end of the header), a type
section of variable-length records and a string section. Type ids count from 1 in section
order (0 is void). Every record starts with name_off, info (vlen in bits 0-15, kind in bits
24-28, kind_flag in bit 31) and size-or-type; kind-specific data follows.

Structs and unions list members as (name_off, type, offset). With kind_flag set the offset
holds the bitfield size in its top 8 bits and the bit offset in the low 24; without it the
offset is in bits and a bitfield shows as an INT whose encoding has fewer bits than its size
(the older encoding). Only vmlinux BTF is read: split BTF of modules needs its base.

``parse_btf`` returns every struct and union as a ``StructLayout`` keyed by name; anonymous
ones (and later definitions of a name already taken) are keyed "#<type id>", so that dotted
paths through them resolve. Anonymous members are flattened into their parent, as C does.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from kheaders_suite.verify.layout import Field, StructLayout

MAGIC = 0xEB9F
(INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC,
 FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64) = range(1, 20)
# Bytes of kind-specific data after the 12-byte common record: fixed, and per vlen item.
_EXTRA = {INT: (4, 0), ARRAY: (12, 0), STRUCT: (0, 12), UNION: (0, 12), ENUM: (0, 8),
          FUNC_PROTO: (0, 8), VAR: (4, 0), DATASEC: (0, 12), DECL_TAG: (4, 0),
          ENUM64: (0, 12)}
_MODIFIERS = (TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG)
_SIZED = (INT, STRUCT, UNION, ENUM, ENUM64, FLOAT, DATASEC)


class BtfError(ValueError):
    """The blob is not BTF this reader understands."""


@dataclass(frozen=True)
class BtfType:
    kind: int
    name: str
    kflag: bool
    vlen: int
    size_or_type: int
    extra: bytes


def _header(data: bytes) -> tuple[str, int, int, int, int]:
    if len(data) < 24:
        raise BtfError(f"{len(data)} bytes: too short for a BTF header")
    for endian in ("<", ">"):
        magic, version, _flags, hdr_len = struct.unpack_from(endian + "HBBI", data)
        if magic == MAGIC:
            break
    else:
        raise BtfError(f"bad magic {data[:2].hex()} (want 9feb or eb9f)")
    if version != 1:
        raise BtfError(f"BTF version {version}, only 1 is known")
    type_off, type_len, str_off, str_len = struct.unpack_from(endian + "4I", data, 8)
    end = max(hdr_len + type_off + type_len, hdr_len + str_off + str_len)
    if end > len(data):
        raise BtfError(f"sections end at {end}, blob has {len(data)} bytes")
    return endian, hdr_len + type_off, type_len, hdr_len + str_off, str_len


class RawBtf:
    """The decoded sections: ``types[id]`` in id order (index 0 stands for void)."""

    def __init__(self, data: bytes) -> None:
        self.endian, t_start, t_len, s_start, s_len = _header(data)
        self.strings = data[s_start : s_start + s_len]
        self.types = [BtfType(0, "", False, 0, 0, b"")]
        pos, end = t_start, t_start + t_len
        while pos < end:
            name_off, info, size_or_type = struct.unpack_from(self.endian + "3I", data, pos)
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            if kind == 0 or kind > ENUM64:
                raise BtfError(f"type {len(self.types)} at {pos}: unknown kind {kind}")
            fixed, per_item = _EXTRA.get(kind, (0, 0))
            n_extra = fixed + per_item * vlen
            extra = data[pos + 12 : pos + 12 + n_extra]
            self.types.append(BtfType(kind, self.name_at(name_off), bool(info >> 31), vlen,
                                      size_or_type, extra))
            pos += 12 + n_extra
        if pos != end:
            raise BtfError(f"type section overruns its length by {pos - end} bytes")
        self._sizes: dict[int, int | None] = {}
        self.pointer_size = self._long_size()

    def name_at(self, off: int) -> str:
        end = self.strings.find(b"\0", off)
        return self.strings[off : end if end >= 0 else len(self.strings)].decode(
            errors="replace")

    def u32s(self, raw: bytes) -> tuple[int, ...]:
        return struct.unpack(f"{self.endian}{len(raw) // 4}I", raw)

    def _long_size(self) -> int:
        for t in self.types:
            if t.kind == INT and t.name in ("long int", "long unsigned int"):
                return t.size_or_type
        return 8

    def strip(self, tid: int) -> int:
        """Follow typedefs and qualifiers to the underlying type id."""
        seen = 0
        while 0 < tid < len(self.types) and self.types[tid].kind in _MODIFIERS:
            tid = self.types[tid].size_or_type
            seen += 1
            if seen > 64:
                raise BtfError(f"type {tid}: modifier chain loops")
        return tid

    def size_of(self, tid: int) -> int | None:
        """Bytes of a type: pointers by the arch's long, arrays by element count."""
        if tid in self._sizes:
            return self._sizes[tid]
        self._sizes[tid] = None  # guards against loops through malformed data
        size: int | None = None
        t = self.types[tid] if 0 < tid < len(self.types) else None
        if t is None or t.kind in (FWD, FUNC, FUNC_PROTO, VAR, DECL_TAG):
            size = None
        elif t.kind == PTR:
            size = self.pointer_size
        elif t.kind in _SIZED:
            size = t.size_or_type
        elif t.kind == ARRAY:
            elem, _index, nelems = self.u32s(t.extra)
            elem_size = self.size_of(elem)
            size = None if elem_size is None else elem_size * nelems
        else:
            size = self.size_of(t.size_or_type)
        self._sizes[tid] = size
        return size


def _keys(raw: RawBtf) -> dict[int, str]:
    """Layout key of every struct/union id: its name the first time, else "#<id>"."""
    keys: dict[int, str] = {}
    taken: set[str] = set()
    for tid, t in enumerate(raw.types):
        if t.kind not in (STRUCT, UNION):
            continue
        if t.name and t.name not in taken:
            keys[tid] = t.name
            taken.add(t.name)
        else:
            keys[tid] = f"#{tid}"
    return keys


def _bitfield(raw: RawBtf, t: BtfType, tid: int, offset: int) -> tuple[int, int]:
    """(bit offset, bitfield size) of one member, from either bitfield encoding."""
    if t.kflag:
        return offset & 0xFFFFFF, offset >> 24
    base = raw.types[raw.strip(tid)] if raw.strip(tid) else None
    if base is not None and base.kind == INT:
        (enc,) = raw.u32s(base.extra)
        bits, bit_off = enc & 0xFF, (enc >> 16) & 0xFF
        if bits != base.size_or_type * 8 or bit_off:
            return offset + bit_off, bits
    return offset, 0


def _members(raw: RawBtf, tid: int, keys: dict[int, str], base: int) -> dict[str, Field]:
    t = raw.types[tid]
    out: dict[str, Field] = {}
    for i in range(t.vlen):
        name_off, mtype, moff = raw.u32s(t.extra[12 * i : 12 * i + 12])
        bit_offset, bits = _bitfield(raw, t, mtype, moff)
        under = raw.strip(mtype)
        is_aggregate = raw.types[under].kind in (STRUCT, UNION) if under else False
        name = raw.name_at(name_off)
        if not name and is_aggregate:  # anonymous struct/union: C flattens it
            for sub, f in _members(raw, under, keys, base + bit_offset).items():
                out.setdefault(sub, f)
            continue
        out[name] = Field(base + bit_offset, None if bits else raw.size_of(mtype), bits,
                          keys.get(under) if is_aggregate else None)
    return out


def parse_btf(data: bytes) -> dict[str, StructLayout]:
    """Every struct and union of a raw BTF blob; BtfError when the blob is malformed."""
    raw = RawBtf(data)
    keys = _keys(raw)
    out: dict[str, StructLayout] = {}
    for tid, key in keys.items():
        t = raw.types[tid]
        kind = "struct" if t.kind == STRUCT else "union"
        out[key] = StructLayout(t.name or key, t.size_or_type, _members(raw, tid, keys, 0), kind)
    return out
