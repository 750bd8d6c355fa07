"""The record that describes one architecture: QEMU, cross compiler, Debian names, TCG scale."""

from __future__ import annotations

import platform
from dataclasses import dataclass


@dataclass(frozen=True)
class Arch:
    # Our name for it, as used in test ids and --arch (also virtme-ng's --arch value).
    name: str
    # ARCH= for make.
    make_arch: str
    # arch/$SRCARCH/include is what gen_kheaders.sh packs.
    srcarch: str
    # CROSS_COMPILE= when the host is another arch (Debian's gcc-<triplet> packages).
    cross_compile: str
    # The Debian package with that cross gcc, named in the error when it is missing.
    cross_package: str
    # The boot image, relative to the object tree.
    image: str
    # QEMU binary and the CPU model under TCG (under KVM virtme-ng passes -cpu host).
    qemu_binary: str
    # The Debian package with qemu_binary, named in the error when it is missing.
    qemu_package: str
    tcg_cpu: str
    # What `uname -m` says on such a host (to tell native from foreign).
    uts_machine: str
    # Debian's name, for the foreign-arch root filesystem.
    debian_arch: str
    # The arch's config fragment under catalog/kernels/configs/.
    fragment: str
    # Multiplies every guest timeout under TCG: emulating another ISA costs more.
    tcg_timeout_factor: float
    # The boot image's magic: (offset, bytes). Documentation/arch/x86/boot.rst: "HdrS" at
    # 0x202 of a bzImage; Documentation/arch/arm64/booting.rst: "ARM\x64" at 0x38 of Image.
    image_magic: tuple[int, bytes]
    # The kernel's early console on the UART this arch's QEMU machine has, so a panic in an
    # initcall that runs before the serial driver registers (kheaders' own) is still printed.
    earlycon: str
    # kbuild steps of a cold build of the suite's config (linux-source-6.12, counted): the
    # progress estimate until this machine has counted one of its own (build.steps.expected_steps).
    cold_build_steps: int

    @property
    def is_native(self) -> bool:
        return platform.machine() == self.uts_machine

    def cross_prefix(self) -> str:
        return "" if self.is_native else self.cross_compile

    def looks_bootable(self, data: bytes) -> bool:
        """Whether ``data`` (an image's first KiB at least) has this arch's image magic."""
        offset, magic = self.image_magic
        return data[offset:offset + len(magic)] == magic
