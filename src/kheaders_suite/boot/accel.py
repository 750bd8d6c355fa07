"""Which accelerator a guest gets: KVM only where it really runs guests, else TCG.

On the machines this suite grew up on, /dev/kvm opens and KVM_CREATE_VM works, but a real
guest hangs at "Booting from ROM" (no vmx/svm CPU flag: nested virtualization without
hardware paging support). virtme-ng picks KVM whenever /dev/kvm is accessible, so it would
hang there. The decision is therefore made here, cheaply and in order:

1. an explicit --accel wins;
2. a guest of another ISA runs under TCG;
3. /dev/kvm must open read-write;
4. on x86 hosts the CPU must advertise vmx or svm;
5. a bounded probe: QEMU runs, under KVM, a 16-byte firmware that writes to isa-debug-exit;
   KVM works if QEMU exits with the expected status within seconds.

The probe's answer is cached per (host kernel, QEMU version) so a session pays for it once.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kheaders_suite.catalog.arches.arch import Arch
from kheaders_suite.errors import UserError

# Seconds for the KVM probe; a working KVM answers in well under one.
PROBE_TIMEOUT = 15.0
# isa-debug-exit turns "out 0xf4, al" with al=42 into QEMU exit status (42 << 1) | 1.
_PROBE_EXIT = (42 << 1) | 1
# mov al, 42; out 0xf4, al; hlt; jmp $  -- placed at the reset vector, 0xFFFF0.
_PROBE_CODE = bytes((0xB0, 42, 0xE6, 0xF4, 0xF4, 0xEB, 0xFE))
# How much longer than under KVM a guest may take under TCG, before the per-arch factor.
TCG_FACTOR = 5.0


@dataclass(frozen=True)
class Accel:
    name: str  # "kvm" or "tcg"
    reason: str

    @property
    def timeout_factor(self) -> float:
        return 1.0 if self.name == "kvm" else TCG_FACTOR

    def scale(self, arch: Arch) -> float:
        """Multiplier for every guest timeout on ``arch`` under this accelerator."""
        return 1.0 if self.name == "kvm" else TCG_FACTOR * arch.tcg_timeout_factor


def cpu_flags(cpuinfo: str) -> set[str]:
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return flags


def decide(requested: str, arch: Arch, host_machine: str, kvm_rw: bool,
           flags: set[str], probe_ok: bool | None) -> Accel:
    """Pure decision from the facts (``probe_ok`` None: probe not run or not possible)."""
    if requested == "tcg":
        return Accel("tcg", "requested with --accel tcg")
    if requested not in ("auto", "kvm"):
        raise UserError(f"--accel {requested!r}: choose auto, kvm or tcg")
    if requested == "kvm":
        return Accel("kvm", "requested with --accel kvm")
    if host_machine != arch.uts_machine:
        return Accel("tcg", f"{arch.name} guest on a {host_machine} host")
    if not kvm_rw:
        return Accel("tcg", "/dev/kvm missing or not read-write")
    if host_machine == "x86_64" and not flags & {"vmx", "svm"}:
        return Accel("tcg", "/dev/kvm present but the CPU has no vmx/svm flag: guests hang")
    if probe_ok is False:
        return Accel("tcg", "KVM probe guest did not run")
    return Accel("kvm", "KVM probe guest ran" if probe_ok else "/dev/kvm usable")


def probe_cmd(firmware: Path) -> tuple[str, ...]:
    return ("qemu-system-x86_64", "-accel", "kvm", "-M", "pc", "-m", "16", "-nodefaults",
            "-display", "none", "-no-reboot", "-bios", str(firmware),
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04")


def probe_firmware() -> bytes:
    """64 KiB image mapped below 1 MiB; the CPU starts at offset 0xFFF0."""
    image = bytearray(64 * 1024)
    image[0xFFF0:0xFFF0 + len(_PROBE_CODE)] = _PROBE_CODE
    return bytes(image)


def run_probe(cmd: tuple[str, ...] | None = None, timeout: float = PROBE_TIMEOUT) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        fw = Path(tmp) / "probe.bin"
        fw.write_bytes(probe_firmware())
        try:
            done = subprocess.run(cmd or probe_cmd(fw), capture_output=True, timeout=timeout)
        except (subprocess.TimeoutExpired, FileNotFoundError):
            return False
    return done.returncode == _PROBE_EXIT


def kernel_probe_cmd(image: Path) -> tuple[str, ...]:
    """Boot the real kernel under KVM just far enough to print its banner."""
    return ("qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-m", "256", "-nodefaults",
            "-display", "none", "-no-reboot", "-serial", "stdio", "-kernel", str(image),
            "-append", "console=ttyS0 earlyprintk=ttyS0 panic=-1 init=/nonexistent")


def run_kernel_probe(image: Path, timeout: float = PROBE_TIMEOUT) -> bool:
    """True if the kernel printed "Linux version" under KVM before the timeout.

    The firmware probe alone is not enough: real-mode code runs under a broken nested KVM
    while the kernel then hangs ("Booting from ROM"), so the first boot with KVM checks this.
    """
    proc = subprocess.Popen(kernel_probe_cmd(image), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return b"Linux version" in out


def detect(requested: str, arch: Arch, cache_dir: Path, image: Path | None = None) -> Accel:
    """Decide for ``arch``; with ``image``, a KVM verdict is confirmed by booting it."""
    host = platform.machine()
    kvm_rw = os.access("/dev/kvm", os.R_OK | os.W_OK)
    flags = cpu_flags(Path("/proc/cpuinfo").read_text()) if host == "x86_64" else set()
    first = decide(requested, arch, host, kvm_rw, flags, None)
    if first.name == "tcg" or requested == "kvm" or host != "x86_64":
        return first
    ok = _cached_probe(cache_dir, "firmware", run_probe)
    if ok and image is not None:
        ok = _cached_probe(cache_dir, "kernel", lambda: run_kernel_probe(image))
    return decide(requested, arch, host, kvm_rw, flags, ok)


def _cached_probe(cache_dir: Path, kind: str, probe: Callable[[], bool]) -> bool:
    key = f"{kind}|{platform.release()}|{_qemu_version()}"
    store = cache_dir / "kvm-probe.json"
    try:
        seen = json.loads(store.read_text())
    except (FileNotFoundError, ValueError):
        seen = {}
    if key not in seen:
        seen[key] = probe()
        store.parent.mkdir(parents=True, exist_ok=True)
        store.write_text(json.dumps(seen))
    return bool(seen[key])


def _qemu_version() -> str:
    try:
        out = subprocess.run(("qemu-system-x86_64", "--version"), capture_output=True,
                             text=True, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return "none"
    return out.stdout.split("\n", 1)[0]
