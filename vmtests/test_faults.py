"""Faults of a real guest, seen from a pytest run of its own (issues 10 and 13).

An inner pytest run, with this plugin, boots the target's sysfs kernel and breaks its guest
three ways in a row; this test reads that run's JUnit report and its output:

1. QEMU killed inside a test body: an ERROR (VMLost) carrying the console tail, not a FAIL;
2. a kernel panic (panic_on_oom, then memory exhausted: the suite's kernels have no
   MAGIC_SYSRQ): the kernel's FAIL with the panic text, found on the console as it arrives
   (the message says the kernel panicked, not that a command ran out of time);
3. a hang (QEMU stopped: no console, SSH silent): an ERROR at the command's deadline with the
   console tail, and the hung VM closed;
4. after each, the next test gets a fresh VM, and passes;
5. a kernel report (written to /dev/kmsg, as the kernel's own would be read) in a test body
   fails it, and one in a fixture fails the test using it too (the kernel's, not the
   harness's: a <failure> saying "kernel: ").

No QEMU of the inner run survives it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kheaders_suite.catalog import arches
from kheaders_suite.plugin.options import Settings
from kheaders_suite.records import KernelBuild, Target
from kheaders_suite.report.recorder import Recorder
from kheaders_suite.report.results import FaultsRecord


def memory_for(arch: str, base: int = 1900) -> str:
    """An inner run's guest memory: its QEMU told apart from every other one on the host
    (the other arch's inner run, another module's inner runs) by this size."""
    return f"{base + arches.names().index(arch)}M"

INNER = '''
import os, signal, time
from pathlib import Path
import pytest

OUT = Path(os.environ["KHEADERS_FAULTS_OUT"])

@pytest.mark.variants("sysfs")
def test_1_qemu_killed(guest):
    os.killpg(guest.vm.proc.pid, signal.SIGKILL)
    guest.run(("true",))

@pytest.mark.variants("sysfs")
def test_2_kernel_panics(guest):
    guest.run(("sh", "-c", "echo 1 > /proc/sys/vm/panic_on_oom"), check=True)
    start = time.monotonic()
    try:
        guest.run(("python3", "-c", "a = []\\nwhile True: a.append(b'x' * (32 << 20))"))
    finally:
        OUT.joinpath("panic-seconds").write_text(f"{time.monotonic() - start:.1f}")

@pytest.mark.variants("sysfs")
def test_3_guest_hangs(guest):
    os.killpg(guest.vm.proc.pid, signal.SIGSTOP)
    guest.run(("true",), timeout=5)

@pytest.mark.variants("sysfs")
def test_4_fresh_vm(guest):
    assert guest.run(("uname", "-r")).rc == 0

def kmsg(guest, text):
    guest.run(("sh", "-c", f"echo '{text}' > /dev/kmsg"), check=True)

@pytest.fixture
def splat_in_setup(guest):
    kmsg(guest, "WARNING: CPU: 0 PID: 1 at injected/setup.c:1 fixture+0x0/0x1")

@pytest.mark.variants("sysfs")
def test_5_report_in_body(guest):
    kmsg(guest, "BUG: injected in the body")

@pytest.mark.variants("sysfs")
def test_6_report_in_setup(guest, splat_in_setup):
    pass
'''


def qemus_with(marker: str) -> list[int]:
    """Processes whose command line holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(b"qemu-system" in a for a in args[:1]) and marker.encode() in args:
                found.append(int(entry.name))
    return found


def inner_argv(tmp_path: Path, body: str, target: Target, s: Settings, memory: str,
               *extra: str) -> list[str]:
    """A pytest run of its own with this plugin on ``body`` (written to test_inner.py): the
    outer run's kernel, arch, accelerator, flavor and cache, guests of ``memory``."""
    (tmp_path / "test_inner.py").write_text(body)
    source = (["--kernel-src", str(s.kernel_src)] if s.kernel_src
              else ["--kernel-package", s.kernel_package])
    return [sys.executable, "-m", "pytest", "-p", "kheaders_suite.plugin", "-p",
            "no:cacheprovider", "-q", "--arch", target.arch, *source, "--accel", s.accel,
            "--cache-dir", str(s.cache_dir), "--flavor", s.flavor, "--guest-init", s.guest_init,
            "--guest-memory", memory,
            "--results-dir", str(tmp_path / "results"), *extra, "test_inner.py"]


def inner_run(tmp_path: Path, target: Target, s: Settings) -> subprocess.CompletedProcess[str]:
    argv = inner_argv(tmp_path, INNER, target, s, memory_for(target.arch), "-n", "0",
                      "--junitxml", "junit.xml")
    env = {**os.environ, "KHEADERS_FAULTS_OUT": str(tmp_path)}
    return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=1800)


def outcomes(junit: Path) -> dict[str, tuple[str, str]]:
    """test name -> (failure|error|passed, the element's message and text)."""
    found: dict[str, tuple[str, str]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "").split("[")[0]
        bad = [c for c in case if c.tag in ("failure", "error")]
        if bad:
            found[name] = (bad[0].tag, f"{bad[0].get('message')}\n{bad[0].text}")
        else:
            found.setdefault(name, ("passed", ""))
    return found


@pytest.mark.variants("sysfs")
def test_faults_are_reported_for_what_they_are(target: Target, kernel_build: KernelBuild,
                                               suite_settings: Settings, tmp_path: Path,
                                               recorder: Recorder) -> None:
    out = inner_run(tmp_path, target, suite_settings)
    log = f"inner run exit {out.returncode}\n{out.stdout[-6000:]}\n{out.stderr[-3000:]}"
    got = outcomes(tmp_path / "junit.xml")
    assert got["test_1_qemu_killed"][0] == "error", log
    assert "infrastructure: " in got["test_1_qemu_killed"][1], log
    assert "VM lost" in got["test_1_qemu_killed"][1], log
    assert "last lines:" in got["test_1_qemu_killed"][1], log
    assert got["test_2_kernel_panics"][0] == "failure", log
    assert "Kernel panic - not syncing" in got["test_2_kernel_panics"][1], log
    assert "the guest kernel panicked" in got["test_2_kernel_panics"][1], log
    assert got["test_3_guest_hangs"][0] == "error", log
    assert "GuestTimeout" in got["test_3_guest_hangs"][1], log
    assert "did not answer in time" in got["test_3_guest_hangs"][1], log
    assert got["test_4_fresh_vm"] == ("passed", ""), log
    assert got["test_5_report_in_body"][0] == "failure", log
    assert "kernel reported during test_5_report_in_body" in got["test_5_report_in_body"][1], log
    assert "BUG: injected in the body" in got["test_5_report_in_body"][1], log
    assert got["test_6_report_in_setup"][0] == "failure", log
    assert got["test_6_report_in_setup"][1].startswith(
        "kernel: KernelReported: kernel reported during the set-up of test_6"), log
    assert out.stderr.count("booting a new one") == 3, log
    assert out.returncode == 1, log
    assert qemus_with(memory_for(target.arch)) == [], "QEMU of the inner run still running"
    recorder.add(FaultsRecord(target=target.id,
                              panic_seconds=float((tmp_path / "panic-seconds").read_text())))


FAILED_BOOT = '''
import dataclasses
import pytest

@pytest.fixture(scope="session")
def kernel_build(kernel_build, tmp_path_factory):
    """The target's build with an image QEMU cannot boot: a boot that fails for real."""
    image = tmp_path_factory.mktemp("broken") / kernel_build.image.name
    image.write_bytes(b"not a kernel image " * 4096)
    return dataclasses.replace(kernel_build, image=image)

@pytest.mark.variants("sysfs")
def test_first(guest):
    pass

@pytest.mark.variants("sysfs")
def test_second(guest):
    pass
'''


@pytest.mark.variants("sysfs")
def test_a_failed_boot_fails_the_rest_of_its_target_at_once(
        target: Target, kernel_build: KernelBuild, suite_settings: Settings,
        tmp_path: Path) -> None:
    """One real boot that fails (QEMU given an image it cannot load): both tests of the target
    ERROR with that boot's cause, and the second one without booting again."""
    argv = inner_argv(tmp_path, FAILED_BOOT, target, suite_settings,
                      memory_for(target.arch, base=1920), "-n", "0", "--junitxml", "junit.xml")
    out = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    log = f"inner run exit {out.returncode}\n{out.stdout[-4000:]}\n{out.stderr[-3000:]}"
    got = outcomes(tmp_path / "junit.xml")
    assert got["test_first"][0] == "error", log
    cause = got["test_first"][1].splitlines()[0]
    assert "VM lost" in cause, log
    assert "the kernel printed nothing within" in cause, log
    assert got["test_second"][0] == "error", log
    assert got["test_second"][1].splitlines()[0] == cause, log
    assert out.stderr.count(": booting ") == 1, log
    assert qemus_with(memory_for(target.arch, base=1920)) == [], "QEMU of the inner run left"
