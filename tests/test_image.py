"""verify/image.py on synthetic kernel images: the archive and the release as an arm64 Image
(flat from _text) and an x86 bzImage (gzip-compressed ELF behind the setup header) carry them."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest

from kheaders_suite.errors import UserError
from kheaders_suite.verify.image import read_image

ARCHIVE = b"\xfd7zXZ\x00" + bytes(range(200))
BANNER = b"Linux version 6.12.118 (kheaders@suite) (gcc 12.2.0) #1 SMP\n"
TEXT = 0xFFFFFFFF81000000
AT = 0x300  # the archive's offset from _text


def _body() -> bytes:
    """What lies from _text on: the banner, then the archive at AT."""
    body = bytearray(AT + len(ARCHIVE) + 64)
    body[0x40:0x40 + len(BANNER)] = BANNER
    body[AT:AT + len(ARCHIVE)] = ARCHIVE
    return bytes(body)


def _system_map(path: Path, *skip: str) -> Path:
    syms = {"_text": TEXT, "kernel_headers_data": TEXT + AT,
            "kernel_headers_data_end": TEXT + AT + len(ARCHIVE)}
    path.write_text("".join(f"{a:016x} D {n}\n" for n, a in syms.items() if n not in skip))
    return path


def _elf(body: bytes) -> bytes:
    """A little-endian ELF64 file with one PT_LOAD segment mapping TEXT to offset 0x1000."""
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    struct.pack_into("<Q", header, 0x20, 64)  # e_phoff
    struct.pack_into("<HH", header, 0x36, 56, 1)  # e_phentsize, e_phnum
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0x1000, TEXT, TEXT, len(body), len(body), 0x1000)
    return bytes(header + phdr).ljust(0x1000, b"\0") + body


def _bzimage(payload: bytes) -> bytes:
    image = bytearray(2 * 512)
    image[0x1F1] = 1  # setup_sects: the protected-mode part starts at 1024
    struct.pack_into("<II", image, 0x248, 0x10, len(payload))
    return bytes(image) + b"\0" * 0x10 + payload


def test_arm64_image_is_read_from_text(tmp_path: Path) -> None:
    (tmp_path / "Image").write_bytes(_body())
    seen = read_image("arm64", tmp_path / "Image", _system_map(tmp_path / "System.map"))
    assert (seen.archive, seen.release) == (ARCHIVE, "6.12.118")


def test_x86_bzimage_payload_is_decompressed_and_mapped(tmp_path: Path) -> None:
    (tmp_path / "bzImage").write_bytes(_bzimage(gzip.compress(_elf(_body()))))
    seen = read_image("x86_64", tmp_path / "bzImage", _system_map(tmp_path / "System.map"))
    assert (seen.archive, seen.release) == (ARCHIVE, "6.12.118")


@pytest.mark.parametrize(("arch", "image", "skip", "says"), [
    pytest.param("x86_64", _bzimage(_elf(_body())), (), "not gzip", id="uncompressed"),
    pytest.param("arm64", _body(), ("kernel_headers_data_end",), "no kernel_headers_data_end",
                 id="no-symbol"),
    pytest.param("riscv64", _body(), (), "riscv64 is not supported", id="arch"),
    pytest.param("arm64", _body().replace(b"Linux version", b"Linux vexsion"), (),
                 "no 'Linux version' banner", id="no-banner"),
])
def test_what_cannot_be_read_says_why(tmp_path: Path, arch: str, image: bytes,
                                      skip: tuple[str, ...], says: str) -> None:
    (tmp_path / "img").write_bytes(image)
    with pytest.raises(UserError, match=says):
        read_image(arch, tmp_path / "img", _system_map(tmp_path / "System.map", *skip))
