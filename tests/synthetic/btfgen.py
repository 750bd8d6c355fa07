"""Writing raw BTF, for synthetic kernels: the inverse of kheaders_suite.verify.btf, just enough.

Used by probe.py (the fake kernel's /sys/kernel/btf/vmlinux) and by the BTF tests, which
build blobs with edge cases real data may not have at hand: big-endian, both bitfield
encodings, anonymous unions, typedef and qualifier chains.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from kheaders_suite.verify.btf import (
    ARRAY,
    CONST,
    INT,
    MAGIC,
    PTR,
    STRUCT,
    TYPEDEF,
    UNION,
    VOLATILE,
)


@dataclass(frozen=True)
class BtfMember:
    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int = 0


@dataclass
class BtfBuilder:
    """Appends types (ids from 1 in call order) and encodes header + types + strings."""

    records: list[bytes] = field(default_factory=list)
    strings: bytearray = field(default_factory=lambda: bytearray(b"\0"))
    endian: str = "<"

    def _name(self, name: str) -> int:
        if not name:
            return 0
        off = len(self.strings)
        self.strings += name.encode() + b"\0"
        return off

    def _add(self, name: str, kind: int, vlen: int, size_or_type: int, extra: bytes = b"",
             kflag: bool = False) -> int:
        info = (kind << 24) | vlen | (1 << 31 if kflag else 0)
        self.records.append(struct.pack(self.endian + "3I", self._name(name), info,
                                        size_or_type) + extra)
        return len(self.records)

    def int_(self, name: str, size: int, signed: bool = True, bits: int | None = None,
             bit_offset: int = 0) -> int:
        enc = (1 << 24 if signed else 0) | (bit_offset << 16) | (bits or size * 8)
        return self._add(name, INT, 0, size, struct.pack(self.endian + "I", enc))

    def ptr(self, target: int) -> int:
        return self._add("", PTR, 0, target)

    def array(self, elem: int, index: int, nelems: int) -> int:
        return self._add("", ARRAY, 0, 0, struct.pack(self.endian + "3I", elem, index, nelems))

    def modifier(self, kind: int, target: int, name: str = "") -> int:
        assert kind in (TYPEDEF, CONST, VOLATILE)
        return self._add(name, kind, 0, target)

    def struct(self, name: str, size: int, members: Sequence[BtfMember],
               union: bool = False, kflag: bool = True) -> int:
        extra = b"".join(
            struct.pack(self.endian + "3I", self._name(m.name), m.type_id,
                        (m.bitfield_size << 24 | m.bit_offset) if kflag else m.bit_offset)
            for m in members)
        return self._add(name, UNION if union else STRUCT, len(members), size, extra, kflag)

    def encode(self) -> bytes:
        types = b"".join(self.records)
        header = struct.pack(self.endian + "HBBI4I", MAGIC, 1, 0, 24, 0, len(types),
                             len(types), len(self.strings))
        return header + types + bytes(self.strings)
