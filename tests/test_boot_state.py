"""The boot state of a target (plugin/boots.py): a failed boot fails every later user at once
with its cause, chained; a lost VM is replaced for the next user; a live one is shared. Then
the same through pytest, on fake boots: what each test's report and the JUnit file say."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import cast

import pytest

from kheaders_suite.errors import InfraError, KernelInterfaceFailed, VMLost
from kheaders_suite.host.deadline import Deadline
from kheaders_suite.patchci import side
from kheaders_suite.plugin.boots import ArchiveSetupFailed, BootFailed, BootState
from kheaders_suite.report.verdict import infra_reason, kernel_fault, kernel_said
from kheaders_suite.session.agentlink import Agent
from kheaders_suite.session.guest import Guest
from kheaders_suite.session.kernellog import KernelLog, KernelReported

from .fakeguest import FakeChannel, reply, ssh_client
from .fakeguest import FakeVM as ConsoleVM
from .test_vm import fake_build

NO_KERNEL = ("VM lost (x86_64-sysfs): the kernel printed nothing within 60s of the launch\n"
             "console log consoles/x86_64-sysfs-main.log, last lines:\n")


@dataclass
class FakeVM:
    up: bool = True

    def alive(self) -> bool:
        return self.up


@dataclass
class FakeGuest:
    vm: FakeVM = field(default_factory=FakeVM)
    closed: bool = False

    def close(self) -> None:
        self.closed = True


@dataclass
class Boots:
    """A start function: hands out fake guests, or raises ``fail`` once it is set."""

    fail: Exception | None = None
    made: list[FakeGuest] = field(default_factory=list)
    said: list[str] = field(default_factory=list)

    def start(self) -> Guest:
        if self.fail is not None:
            raise self.fail
        self.made.append(FakeGuest())
        return cast(Guest, self.made[-1])

    def state(self) -> BootState:
        return BootState("x86_64-sysfs", self.start, self.said.append)


def test_a_live_guest_is_shared_and_booted_once() -> None:
    boots = Boots()
    state = boots.state()
    assert state.current is None
    first = state.guest("test_a")
    assert state.guest("test_b") is first is state.current
    assert len(boots.made) == 1
    assert boots.said == []


def test_a_lost_vm_is_closed_and_the_next_user_gets_a_fresh_one() -> None:
    boots = Boots()
    state = boots.state()
    state.guest("test_a")
    boots.made[0].vm.up = False
    fresh = state.guest("test_b")
    assert fresh is cast(Guest, boots.made[1])
    assert boots.made[0].closed
    assert boots.said == ["test_b: the previous test lost its VM; booting a new one"]


def test_a_failed_boot_fails_every_later_user_with_its_cause_without_booting() -> None:
    cause = VMLost(NO_KERNEL)
    boots = Boots(fail=cause)
    state = boots.state()
    raised = []
    for user in ("test_a", "test_b", "guest_archive"):
        with pytest.raises(BootFailed) as info:
            state.guest(user)
        raised.append(info.value)
    assert all(e.__cause__ is cause for e in raised)
    assert {str(e) for e in raised} == {
        "the boot of x86_64-sysfs failed: VMLost: VM lost (x86_64-sysfs): the kernel printed "
        "nothing within 60s of the launch"}
    boots.fail = None  # a later boot would work now: it is not tried
    with pytest.raises(BootFailed):
        state.guest("test_c")
    assert boots.made == []


def test_a_boot_after_a_lost_vm_that_fails_stays_failed() -> None:
    boots = Boots()
    state = boots.state()
    state.guest("test_a")
    boots.made[0].vm.up = False
    boots.fail = VMLost("VM lost (x86_64-sysfs): no SSH within 300s")
    for user in ("test_b", "test_c"):
        with pytest.raises(BootFailed, match="no SSH within 300s"):
            state.guest(user)
    assert state.current is None
    assert len(boots.said) == 1


def test_close_closes_the_current_guest() -> None:
    boots = Boots()
    state = boots.state()
    state.guest("test_a")
    state.close()
    assert boots.made[0].closed
    assert state.current is None
    state.close()  # nothing left: a second close does nothing


def test_the_blame_follows_the_cause() -> None:
    """A boot that failed on what the kernel printed stays the kernel's; any other failed
    boot is the machinery's."""
    report = KernelReported(KernelLog().scan("the boot of x86_64-sysfs", lambda: (
        "4,1,1000,-;WARNING: CPU: 0 PID: 1 at init/main.c:1 start_kernel+0x0/0x1\n"), ""))
    wrapped = BootFailed("x86_64-sysfs", report)
    wrapped.__cause__ = report
    assert kernel_fault(wrapped) is report
    assert infra_reason(wrapped, vm_alive=True) is None
    said = kernel_said(wrapped, report).splitlines()
    assert said[0].startswith("BootFailed: the boot of x86_64-sysfs failed: KernelReported")
    assert "WARNING: CPU: 0 PID: 1 at init/main.c:1 start_kernel+0x0/0x1" in said
    lost = BootFailed("x86_64-sysfs", VMLost("gone"))
    assert isinstance(lost, InfraError)
    assert kernel_fault(lost) is None
    assert infra_reason(lost, vm_alive=True)


@pytest.mark.parametrize(("answer", "kernel_died", "remembered"), [
    # modprobe exits 1: kheaders.ko's init failed
    ({"rc": 1, "stderr": "bW9kcHJvYmU6IEVSUk9S"}, False, "KernelInterfaceFailed"),
    # the kernel reported a hang under modprobe (its report on the console) and went down
    (None, True, "KernelReported"),
    # QEMU killed under modprobe, the kernel said nothing: the harness's, tried again
    (None, False, ""),
])
def test_a_kernel_fault_in_the_archives_set_up_fails_the_targets_later_tests_at_once(
        tmp_path: Path, answer: dict[str, object] | None, kernel_died: bool,
        remembered: str) -> None:
    """modprobe failing, or hanging until a detector reported it, fails every later test of
    the target at once, as the kernel's, naming the first; QEMU killed under it does not."""
    vm = ConsoleVM(tmp_path / "console.log")
    vm.console_lines.append("[   60.0] INFO: task modprobe:84 blocked for more than 40 seconds.")
    vm.kernel_died = kernel_died

    def reply_to(request: dict[str, object]) -> bytes:
        if answer is None and request.get("argv", [""])[0] == "modprobe":  # type: ignore[index]
            vm.up = False
            return b""
        return reply(request, **(answer or {}))
    chan = FakeChannel(reply_to)
    guest = Guest(vm.typed(), ssh_client(chan)[1], 1.0)
    guest.agent = Agent.ready(chan, Deadline(1.0))
    build = replace(fake_build(), variant="module", modroot=Path("/m"))
    state = BootState("x86_64-module", lambda: guest, lambda m: None)
    with pytest.raises((KernelInterfaceFailed, KernelReported, VMLost)) as first, \
            state.archive("test_first", guest, build):
        pass
    if not remembered:
        assert isinstance(first.value, VMLost)
        with pytest.raises(VMLost), state.archive("test_second", guest, build):
            pass
        return
    assert type(first.value).__name__ == remembered
    with pytest.raises(ArchiveSetupFailed) as later, state.archive("test_second", guest, build):
        pass
    assert str(later.value).startswith("not run: the set-up of x86_64-module's archive failed "
                                       f"in test_first: {remembered}: ")
    assert kernel_fault(later.value) is later.value


# --- through pytest -----------------------------------------------------------------------

FAILING_BOOT = '''
import pytest
from kheaders_suite.errors import VMLost
from kheaders_suite.plugin.boots import BootState
from kheaders_suite.plugin.context import progress
from kheaders_suite.session.kernellog import KernelLog, KernelReported

CAUSE = {cause}
STARTS = []

def start():
    STARTS.append(1)
    raise CAUSE

@pytest.fixture(scope="session")
def guest_boot(pytestconfig):
    return BootState("x86_64-sysfs", start, lambda m: progress(pytestconfig, m))

def test_first(guest):
    pass

def test_second(guest):
    pass

def test_booted_once():
    assert len(STARTS) == 1
'''
CAUSES = {
    "vm-lost": f"VMLost({NO_KERNEL!r})",
    "kernel-report": 'KernelReported(KernelLog().scan("the boot of x86_64-sysfs", lambda: '
                     '"4,1,1000,-;BUG: kernel NULL pointer dereference, address: 0\\n", ""))',
}


def _run(tmp_path: Path, cause: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    (tmp_path / "test_x.py").write_text(FAILING_BOOT.format(cause=CAUSES[cause]))
    out = subprocess.run(
        (sys.executable, "-m", "pytest", "-p", "kheaders_suite.plugin", "-p",
         "no:cacheprovider", "--accel", "tcg", "--arch", "x86_64", "--cache-dir",
         str(tmp_path / "cache"), "--junitxml", "junit.xml", "test_x.py"),
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    return out, tmp_path / "junit.xml"


def _errors(junit: Path) -> dict[str, str]:
    """test name -> its <error> message."""
    return {case.get("name", ""): error.get("message", "")
            for case in ET.parse(junit).getroot().iter("testcase")
            for error in case.iter("error")}


def test_a_failed_boot_errors_each_test_with_the_same_cause_booting_once(
        tmp_path: Path) -> None:
    out, junit = _run(tmp_path, "vm-lost")
    assert "1 passed, 2 errors" in out.stdout, out.stdout
    errors = _errors(junit)
    assert errors["test_first"] == errors["test_second"]
    assert "VM lost (x86_64-sysfs): the kernel printed nothing within 60s" in errors["test_first"]
    assert "0 kernel failures" in out.stdout
    assert "2 infrastructure errors" in out.stdout
    assert "The above exception was the direct cause" in out.stdout  # the cause, chained
    tests = side.parse_junit(junit.read_text())
    assert {t.outcome for n, t in tests.items() if "booted_once" not in n} == {side.Outcome.ERROR}


def test_a_kernel_report_at_boot_is_the_kernels_in_the_summary_and_in_patch_ci(
        tmp_path: Path) -> None:
    """A kernel report at boot FAILs every test of the target, in pytest's own output and in
    JUnit (a <failure> whose message says it is the kernel's), booting once."""
    out, junit = _run(tmp_path, "kernel-report")
    assert "2 failed, 1 passed" in out.stdout, out.stdout
    assert "2 kernel failures" in out.stdout
    assert "0 infrastructure errors" in out.stdout
    assert "FAILED test_x.py::test_second" in out.stdout
    assert _errors(junit) == {}
    root = ET.parse(junit).getroot()
    failures = {case.get("name"): failure.get("message", "") for case in root.iter("testcase")
                for failure in case.iter("failure")}
    assert failures["test_second"].startswith("kernel: BootFailed: the boot of x86_64-sysfs "
                                              "failed: KernelReported: kernel reported during")
    # the kernel's report itself, for patch CI to quote (side.kernel_reports)
    assert side.parse_junit(junit.read_text())["test_x.py::test_second"].kernel
    assert root.find("testsuite").get("failures") == "2"  # type: ignore[union-attr]
    assert root.find("testsuite").get("errors") == "0"  # type: ignore[union-attr]
    tests = side.parse_junit(junit.read_text())
    assert tests["test_x.py::test_second"].outcome == side.Outcome.FAIL


CHECKS_AFTER_A_LOST_VM = '''
@pytest.fixture(scope="session")
def archive_size(guest_boot):
    """A session fixture that read from the guest once, as the archive checks do."""
    guest_boot.guest("archive_size")
    return 0

def test_0_reads(archive_size):
    pass

def test_1_loses_the_vm(guest):
    guest.vm.up = False
    raise EOFError("guest agent exited")

def test_2_checks_what_was_read(archive_size):
    assert archive_size > 0, "archive size 0"
'''


def test_a_check_on_what_was_read_before_a_lost_vm_stays_the_kernels(tmp_path: Path) -> None:
    """A test that asked for no guest of its own is judged on what it checked, not on the
    VM an earlier test lost, and boots none."""
    from tests.test_verdict import FAKE_GUEST

    (tmp_path / "test_x.py").write_text(FAKE_GUEST + CHECKS_AFTER_A_LOST_VM)
    out = subprocess.run(
        (sys.executable, "-m", "pytest", "-p", "kheaders_suite.plugin", "-p",
         "no:cacheprovider", "--accel", "tcg", "--arch", "x86_64", "--cache-dir",
         str(tmp_path / "cache"), "--junitxml", "junit.xml", "test_x.py"),
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "1 failed, 1 passed, 1 error" in out.stdout, out.stdout
    assert "1 kernel failures" in out.stdout
    assert "1 infrastructure errors" in out.stdout
    assert "booting a new one" not in out.stderr
    tests = side.parse_junit((tmp_path / "junit.xml").read_text())
    assert tests["test_x.py::test_2_checks_what_was_read"].outcome == side.Outcome.FAIL
    assert tests["test_x.py::test_1_loses_the_vm"].outcome == side.Outcome.ERROR
