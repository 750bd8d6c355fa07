"""Read a file whole and in odd pieces; print JSON that the host compares.

Run in the guest: python3 readcheck.py PATH. Every way of reading must give the same bytes:
read()s far larger than the file (a full read panicked under FORTIFY_SOURCE until commit
b69edab47f1d ("kheaders: Use array declaration instead of char")), sequential read()s of odd
sizes, and pread() at odd offsets.
"""

import hashlib
import json
import os
import sys
from typing import Any

CHUNKS = (4093, 65537, (1 << 20) + 3)
WINDOWS = ((0, 1), (1, 17), (4095, 2), (65535, 3), (123457, 4099))


def whole(path: str) -> tuple[bytes, int]:
    """Every read() asks for 64 MiB; sysfs answers a page at a time (a legal short read).
    Returns the bytes and the largest single read."""
    parts: list[bytes] = []
    with open(path, "rb", buffering=0) as handle:
        while part := handle.read(64 << 20):
            parts.append(part)
    return b"".join(parts), max((len(p) for p in parts), default=0)


def sequential(path: str, size: int) -> bytes:
    parts: list[bytes] = []
    with open(path, "rb", buffering=0) as handle:
        while True:
            part = handle.read(size)
            if not part:
                return b"".join(parts)
            parts.append(part)


def by_pread(fd: int, size: int, length: int) -> bytes:
    parts: list[bytes] = []
    offset = 0
    while offset < length:
        part = os.pread(fd, size, offset)
        if not part:
            break
        parts.append(part)
        offset += len(part)
    return b"".join(parts)


def main(path: str) -> None:
    data, largest = whole(path)
    out: dict[str, Any] = {"st_size": os.stat(path).st_size, "len": len(data),
           "largest_read": largest,
           "sha256": hashlib.sha256(data).hexdigest(), "mismatches": []}
    fd = os.open(path, os.O_RDONLY)
    try:
        for size in CHUNKS:
            reads = (("read", sequential(path, size)), ("pread", by_pread(fd, size, len(data))))
            for how, got in reads:
                if got != data:
                    out["mismatches"].append(f"{how} chunks of {size}: {len(got)} bytes differ")
        for offset, count in WINDOWS:
            got = os.pread(fd, count, offset)
            # A short read is legal (sysfs serves a page per call); wrong bytes are not.
            if offset < len(data) and (not got or got != data[offset:offset + len(got)]):
                out["mismatches"].append(f"pread({count}) at {offset} gave {len(got)} "
                                         "bytes that differ")
        past_end = os.pread(fd, 16, len(data) + 5)
        if past_end:
            out["mismatches"].append(f"pread past the end returned {len(past_end)} bytes")
    finally:
        os.close(fd)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
