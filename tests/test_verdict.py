"""Kernel FAIL against harness ERROR (verdict.py and the plugin's hooks), shown on runs of
small test files against a fake guest: a real ``Guest`` whose VM and agent are stand-ins, so the
plugin's own phase scanning, classification, JUnit and summary run unchanged."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import paramiko
import pytest

from kheaders_suite.errors import (
    BuildFailed,
    GuestCommandFailed,
    GuestStepFailed,
    GuestTimeout,
    VMLost,
)
from kheaders_suite.report.verdict import infra_reason, reproduce
from kheaders_suite.session.kernellog import KernelLog, KernelReported

FAKE_GUEST = '''
from pathlib import Path
import pytest
from kheaders_suite.catalog import arches
from kheaders_suite.boot.accel import Accel
from kheaders_suite.records import KernelBuild
from kheaders_suite.session.guest import Guest
from kheaders_suite.errors import GuestStepFailed
from kheaders_suite.boot.vm import VMSpec
from kheaders_suite.plugin.boots import BootState
from kheaders_suite.plugin.context import progress

WARN = "WARNING: CPU: 0 PID: 1 at kernel/kheaders.c:42 ikheaders_read+0x1/0x2"
PANIC = "Kernel panic - not syncing: sysrq triggered crash"

class FakeVM:
    def __init__(self):
        p = Path("build")
        build = KernelBuild(key="k", arch="x86_64", variant="proc", release="7.3.4", dir=p,
                            image=p / "bzImage", config=p / "config", archive=None,
                            modroot=None, source_dir=p, srcarch="x86", objtree_headers=p,
                            log=p / "build.log", seconds=0.0)
        self.spec = VMSpec(build=build, arch=arches.get("x86_64"), accel=Accel("tcg", "test"),
                           port=2222)
        self.console = Path("console.log")
        self.up = True
        self.console_lines = ["virtme-ng init"]

    def alive(self):
        return self.up

    def close(self):
        pass  # what the kernel printed stays readable, as a real VM's console log does

    def gone(self):
        return None if self.up else "QEMU exited (vng status -9)"

    def own_console(self):
        return "\\n".join(self.console_lines) + "\\n"

    console_text = own_console

class FakeAgent:
    def __init__(self):
        self.records = ["6,0,0,-;Linux version 7.3.4"]

    def print(self, text):
        self.records.append(f"4,{len(self.records)},1000,-;{text}")

    def kmsg(self, seconds, lost=None):
        return "\\n".join(self.records) + "\\n"

BOOTS = []

class FakeClient:
    def close(self):
        pass

def fake_boot():
    g = Guest(FakeVM(), FakeClient(), 1.0)
    g.agent = FakeAgent()
    BOOTS.append(g)
    return g

@pytest.fixture(scope="session")
def guest_boot(pytestconfig):
    """The plugin's boot state with a fake boot: its guest fixture hands out the guests."""
    state = BootState("x86_64-proc", fake_boot, lambda m: progress(pytestconfig, m))
    yield state
    state.close()

@pytest.fixture
def modprobe(guest):
    guest.agent.print(WARN)  # the kernel warns while a fixture runs

@pytest.fixture
def rmmod(guest):
    yield
    guest.agent.print(WARN)
'''

BODIES = {
    "harness-step": '''
def test_x(guest):
    raise GuestStepFailed("harness step failed in the guest: mkdir -p /tmp/k")
''',
    "kernel-assert": '''
def test_x(guest):
    assert False, "archive size 0"
''',
    "warn-in-body": '''
def test_x(guest):
    guest.agent.print(WARN)
''',
    "warn-in-setup": '''
def test_x(guest, modprobe):
    pass
''',
    "warn-in-teardown": '''
def test_x(guest, rmmod):
    pass
''',
    "vm-killed": '''
def test_x(guest):
    guest.vm.up = False
    assert False, "read returned 0 bytes"
''',
    "vm-panicked": '''
def test_x(guest):
    guest.vm.up = False
    guest.vm.console_lines.append("[   9.000000] " + PANIC)
    raise EOFError("guest agent exited")
''',
    "lost-then-fresh": '''
def test_a(guest):
    guest.vm.up = False
    raise EOFError("guest agent exited")

def test_b(guest):
    assert guest.vm.up and len(BOOTS) == 2
''',
    "with-target": '''
@pytest.mark.variants("proc")
def test_x(target, guest):
    raise GuestStepFailed("tar failed")
''',
}


def _run(tmp_path: Path, name: str) -> tuple[subprocess.CompletedProcess[str], ET.Element]:
    (tmp_path / "test_x.py").write_text(FAKE_GUEST + BODIES[name])
    out = subprocess.run(
        (sys.executable, "-m", "pytest", "-p", "kheaders_suite.plugin", "-p",
         "no:cacheprovider", "--accel", "tcg", "--arch", "x86_64", "--cache-dir",
         str(tmp_path / "cache"), "--junitxml", "junit.xml", "-rA", "test_x.py"),
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    return out, ET.parse(tmp_path / "junit.xml").getroot()


def _counted(out: subprocess.CompletedProcess[str], kernel: int, infra: int) -> bool:
    """The plugin's summary line counts kernel failures and infrastructure errors apart."""
    return (out.returncode == 1 and f"{kernel} kernel failures" in out.stdout
            and f"{infra} infrastructure errors" in out.stdout)


def _tags(junit: ET.Element) -> list[str]:
    return [child.tag for case in junit.iter("testcase") for child in case
            if child.tag in ("failure", "error")]


@pytest.mark.parametrize("name", ["harness-step", "vm-killed", "with-target"])
def test_infrastructure_in_a_test_body_is_an_error(tmp_path: Path, name: str) -> None:
    out, junit = _run(tmp_path, name)
    assert out.returncode == 1, out.stdout
    assert "1 error" in out.stdout
    assert " failed" not in out.stdout.splitlines()[-1]
    assert _tags(junit) == ["error"]
    assert _counted(out, kernel=0, infra=1), out.stdout


def test_the_vm_killed_under_a_test_says_so(tmp_path: Path) -> None:
    _out, junit = _run(tmp_path, "vm-killed")
    error = next(junit.iter("error"))
    assert error.get("message", "").startswith("infrastructure: VM lost during the test")


def test_the_test_after_a_lost_vm_gets_a_fresh_one(tmp_path: Path) -> None:
    out, _junit = _run(tmp_path, "lost-then-fresh")
    assert "1 passed, 1 error" in out.stdout, out.stdout
    assert "the previous test lost its VM; booting a new one" in out.stderr


def test_a_failed_kernel_check_stays_a_fail(tmp_path: Path) -> None:
    out, junit = _run(tmp_path, "kernel-assert")
    assert "1 failed" in out.stdout
    assert _tags(junit) == ["failure"]
    assert _counted(out, kernel=1, infra=0), out.stdout


def test_a_kernel_report_in_the_body_fails_the_test(tmp_path: Path) -> None:
    out, junit = _run(tmp_path, "warn-in-body")
    assert "1 failed" in out.stdout
    assert "kernel reported during test_x" in out.stdout
    assert _tags(junit) == ["failure"]


def test_a_panic_that_killed_the_vm_is_the_kernels_fail(tmp_path: Path) -> None:
    out, junit = _run(tmp_path, "vm-panicked")
    assert "1 failed" in out.stdout, out.stdout
    assert "Kernel panic - not syncing: sysrq triggered crash" in out.stdout
    assert "from the console log: the VM is gone" in out.stdout
    assert _tags(junit) == ["failure"]


@pytest.mark.parametrize(("name", "phase"), [("warn-in-setup", "the set-up of test_x"),
                                             ("warn-in-teardown", "the teardown of test_x")])
def test_a_kernel_report_in_a_fixture_fails_the_test(tmp_path: Path, name: str,
                                                      phase: str) -> None:
    """The kernel's report in a set-up or teardown is the test's FAIL: pytest's output says
    FAILED, JUnit has a <failure> saying it is the kernel's, no <error>."""
    out, junit = _run(tmp_path, name)
    assert f"kernel reported during {phase}" in out.stdout
    assert "FAILED test_x.py::test_x" in out.stdout, out.stdout
    assert "error" not in _tags(junit)
    assert "failure" in _tags(junit)
    assert _counted(out, kernel=1, infra=0), out.stdout


def test_a_failing_target_test_says_how_to_reproduce_it(tmp_path: Path) -> None:
    out, _ = _run(tmp_path, "with-target")
    assert "reproduce by hand" in out.stdout
    assert "the test alone: pytest 'test_x.py::test_x[x86_64-proc]'" in out.stdout
    assert "the same kernel with a shell: vng --run build/bzImage" in out.stdout
    assert "--ssh" not in out.stdout.split("the same kernel with a shell:")[1].splitlines()[0]


@pytest.mark.parametrize("exc", [VMLost("gone"), GuestTimeout("60s"), GuestStepFailed("mkdir"),
                                 BuildFailed("make"), EOFError("agent exited"),
                                 paramiko.SSHException("closed"), ConnectionResetError()])
def test_harness_faults_are_infrastructure(exc: BaseException) -> None:
    assert infra_reason(exc, vm_alive=True)


@pytest.mark.parametrize("exc", [AssertionError("size 0"), GuestCommandFailed("test -f"),
                                 OSError(5, "EIO reading the archive"),
                                 KernelReported(KernelLog().scan("boot", lambda: "", ""))])
def test_kernel_verdicts_are_not_infrastructure(exc: BaseException) -> None:
    assert infra_reason(exc, vm_alive=True) is None


def test_a_kernel_report_outranks_a_dead_vm() -> None:
    assert infra_reason(AssertionError("kernel reported during test_x"), vm_alive=False) is None
    assert infra_reason(AssertionError("short read"), vm_alive=False)


def test_reproduce_names_test_build_and_shell() -> None:
    text = reproduce("vmtests/t.py::test_a[x86_64-proc]@x86_64",
                     ["--kernel-src", "/src/with space"],
                     "x86_64", Path("/c/builds/x86_64-proc-k"), ["vng", "--run", "/c/bzImage"])
    assert text.splitlines() == [
        "the test alone: pytest 'vmtests/t.py::test_a[x86_64-proc]' --kernel-src "
        "'/src/with space' --arch x86_64",
        "its build: /c/builds/x86_64-proc-k",
        "the same kernel with a shell: vng --run /c/bzImage",
    ]
