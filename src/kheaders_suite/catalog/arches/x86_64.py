"""x86_64 guests: bzImage on qemu-system-x86_64."""

from kheaders_suite.catalog.arches.arch import Arch

ARCH = Arch(
    name="x86_64",
    make_arch="x86",
    srcarch="x86",
    cross_compile="x86_64-linux-gnu-",
    cross_package="gcc-x86-64-linux-gnu",
    image="arch/x86/boot/bzImage",
    qemu_binary="qemu-system-x86_64",
    qemu_package="qemu-system-x86",
    # virtme-ng's TCG model without 5-level paging: with LA57 a 7.3 debug kernel reports
    # KASAN wild-memory-access early in boot (1 of 9 idle boots here; an interrupt taken while
    # identify_cpu() has the boot CPU's feature words zeroed; docs/findings.md).
    tcg_cpu="max,la57=off",
    uts_machine="x86_64",
    debian_arch="amd64",
    fragment="arch-x86_64.config",
    tcg_timeout_factor=1.0,
    image_magic=(0x202, b"HdrS"),
    earlycon="earlycon=uart8250,io,0x3f8,115200",
    cold_build_steps=1897,
)
