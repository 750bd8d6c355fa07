"""What the built kernel image itself carries: the embedded archive and the version string.

The build's ``archive`` is a copy the suite made of kernel/kheaders_data.tar.xz, and its
``release`` is include/config/kernel.release; checking an archive against those checks the
suite's bookkeeping against itself. The image is the other witness: kernel/kheaders_data.o
pulls the archive in with .incbin between the symbols kernel_headers_data and
kernel_headers_data_end (System.map gives both), and init/version.c's linux_banner, "Linux
version <UTS_RELEASE> (...)", is compiled from utsrelease.h. So a stale or mixed-up copy of
the archive, or a release file that disagrees with what was compiled in, shows against these.

Images read: arm64's Image (vmlinux as a flat binary from _text) and x86's bzImage (the setup
header's payload_offset/payload_length locate the gzip-compressed vmlinux ELF, whose PT_LOAD
segments map addresses to file offsets). Other compressions and arches are a UserError.
"""

from __future__ import annotations

import gzip
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from kheaders_suite.errors import UserError

START, END = "kernel_headers_data", "kernel_headers_data_end"
_BANNER = re.compile(rb"Linux version (\S+) \(")
_GZIP = b"\x1f\x8b"
_PT_LOAD = 1


def symbols(system_map: str, *names: str) -> dict[str, int]:
    """Addresses of ``names`` in System.map text ("ffffffff81000000 T _text")."""
    found: dict[str, int] = {}
    for line in system_map.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] in names:
            found[parts[2]] = int(parts[0], 16)
    missing = sorted(set(names) - found.keys())
    if missing:
        raise UserError(f"System.map has no {', '.join(missing)}")
    return found


def bzimage_payload(image: bytes) -> bytes:
    """The decompressed payload of an x86 bzImage (vmlinux, an ELF file)."""
    setup_sects = image[0x1F1] or 4  # 0 means 4 (Documentation/arch/x86/boot.rst)
    offset, length = struct.unpack_from("<II", image, 0x248)
    start = (setup_sects + 1) * 512 + offset
    payload = image[start:start + length]
    if not payload.startswith(_GZIP):
        raise UserError(f"bzImage payload is not gzip (starts {payload[:4].hex()})")
    return gzip.decompress(payload)


def elf_offset(elf: bytes, address: int) -> int:
    """File offset of a virtual address in a little-endian ELF64 file (its PT_LOAD maps)."""
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        entry = phoff + i * phentsize
        kind, _, offset, vaddr, _, filesz = struct.unpack_from("<IIQQQQ", elf, entry)
        if kind == _PT_LOAD and vaddr <= address < vaddr + filesz:
            return int(offset + address - vaddr)
    raise UserError(f"address {address:#x} is in no PT_LOAD segment")


def flat_image(arch: str, image: bytes, system_map: str) -> tuple[bytes, int]:
    """(bytes, file offset of the first kheaders byte) for ``arch``'s image format."""
    if arch == "x86_64":
        elf = bzimage_payload(image)
        return elf, elf_offset(elf, symbols(system_map, START)[START])
    if arch == "arm64":
        syms = symbols(system_map, START, "_text")
        return image, syms[START] - syms["_text"]
    raise UserError(f"reading the kernel image of {arch} is not supported")


@dataclass(frozen=True)
class ImageWitness:
    archive: bytes  # the bytes between kernel_headers_data and kernel_headers_data_end
    release: str  # from linux_banner


def read_image(arch: str, image: Path, system_map: Path) -> ImageWitness:
    """What the kernel image of ``arch`` carries of the archive and the release."""
    text = system_map.read_text()
    syms = symbols(text, START, END)
    data, offset = flat_image(arch, image.read_bytes(), text)
    match = _BANNER.search(data)
    if match is None:
        raise UserError(f"{image}: no 'Linux version' banner")
    return ImageWitness(data[offset:offset + syms[END] - syms[START]], match[1].decode())
