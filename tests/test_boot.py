"""Booting without a VM (boot.py's seams): connect() against a fake VM and a fake SSH opener,
boot() against a fake launcher and connector."""

from __future__ import annotations

import time
from dataclasses import fields
from pathlib import Path

import paramiko
import pytest

from kheaders_suite.boot.vm import VM, VMSpec
from kheaders_suite.catalog import arches
from kheaders_suite.catalog.flavors import FLAVOR_TIMEOUT_FACTOR
from kheaders_suite.errors import GuestStepFailed, VMLost
from kheaders_suite.plugin.options import Settings, boot_options
from kheaders_suite.records import KernelBuild
from kheaders_suite.session import connect as boot
from kheaders_suite.session.connect import BootOptions
from kheaders_suite.session.guest import Guest
from kheaders_suite.session.kernellog import KernelReported

from .fakeguest import FakeChannel, FakeVM, reply, ssh_client
from .test_vm import fake_build

HOSTFWD = "qemu-system-x86_64: Could not set up host forwarding rule 'tcp:127.0.0.1:2222-:22'"
INIT_DONE = "[    2.100000] virtme-ng-init: initialization done"


class Opener:
    """Refuses the first ``refusals`` logins, then logs in over ``chan``."""

    def __init__(self, refusals: int, chan: FakeChannel | None = None) -> None:
        self.refusals, self.chan = refusals, chan or FakeChannel()
        self.calls: list[tuple[int, float]] = []
        self.refusal: Exception = ConnectionRefusedError(111, "Connection refused")

    def __call__(self, port: int, timeout: float) -> paramiko.SSHClient:
        self.calls.append((port, timeout))
        if len(self.calls) <= self.refusals:
            raise self.refusal
        self.client, typed = ssh_client(self.chan)
        return typed


def test_options_are_the_settings_a_boot_uses(tmp_path: Path) -> None:
    s = Settings(kernel_src=None, kernel_package="linux-source-6.12", arches=("arm64",),
                 accel="tcg", cache_dir=tmp_path / "cache", results_dir=tmp_path, guest_cpus=3,
                 guest_memory="512M", build_jobs=1, extra_fragments=(), sweep="reduced",
                 flavor="debug")
    assert boot_options(s) == BootOptions(cache_dir=tmp_path / "cache", accel="tcg",
                                                       guest_cpus=3, guest_memory="512M",
                                                       timeout_factor=3.0)
    settings = {f.name for f in fields(Settings)}
    assert {f.name for f in fields(BootOptions)} - settings == {"timeout_factor"}


def test_connect_waits_for_sshd_and_returns_a_ready_guest(tmp_path: Path) -> None:
    vm = FakeVM(tmp_path / "console.log", port=2345)
    vm.console_lines.append(INIT_DONE)
    opener = Opener(refusals=2)
    guest = boot.connect(vm.typed(), 1.0, boot_timeout=20.0, open_ssh=opener)
    assert opener.calls == [(2345, 10.0)] * 3
    assert guest.agent is not None  # the first command went over the agent's channel
    assert [r["argv"] for r in opener.chan.requests] == [["true"]]
    assert vm.launched < guest.ssh_at <= guest.ready_at
    assert guest.profile is not None


def test_connect_names_a_vm_that_dies_at_once(tmp_path: Path) -> None:
    vm = FakeVM(tmp_path / "console.log")
    vm.up = False
    opener = Opener(refusals=0)
    with pytest.raises(VMLost, match=r"VM lost \(x86_64-sysfs\): VM exited before SSH came up "
                                     r"\(QEMU exited") as info:
        boot.connect(vm.typed(), 1.0, open_ssh=opener)
    assert "last lines:\nvirtme-ng init" in str(info.value)
    assert not opener.calls


@pytest.mark.parametrize("up", [False, True])
def test_a_panic_at_boot_is_the_kernels_report_not_a_lost_vm(tmp_path: Path, up: bool) -> None:
    """A kernel that panics in an initcall (its early console printed it): KernelReported
    quoting the panic, whether QEMU exited or runs on (the console watch marks a panicked VM
    as not alive; here ``up`` False stands for that), found before the SSH deadline."""
    vm = FakeVM(tmp_path / "console.log")
    vm.console_lines += ["[    0.9] Kernel panic - not syncing: kheaders: injected",
                         "[    0.9] ---[ end Kernel panic - not syncing: kheaders: injected ]---"]
    vm.up = False
    opener = Opener(refusals=1000)
    with pytest.raises(KernelReported) as info:
        boot.connect(vm.typed(), 1.0, boot_timeout=0.5 if up else 30.0, open_ssh=opener,
                     init_done_wait=0.0)
    assert str(info.value).startswith("kernel reported during the boot of x86_64-sysfs")
    assert "Kernel panic - not syncing: kheaders: injected" in str(info.value)


def test_no_ssh_with_a_report_on_the_console_is_the_kernels(tmp_path: Path) -> None:
    """The guest never answered and its console holds an Oops: the kernel's, not a lost VM."""
    vm = FakeVM(tmp_path / "console.log")
    vm.console_lines += ["[    0.5] Linux version 6.12", "[    3.0] Oops: general protection "
                         "fault, probably for non-canonical address 0xdead: 0000 [#1] SMP"]
    with pytest.raises(KernelReported, match="Oops: general protection fault"):
        boot.connect(vm.typed(), 1.0, boot_timeout=0.5, open_ssh=Opener(refusals=1000),
                     init_done_wait=0.0)


def test_connect_gives_up_at_its_deadline_with_the_last_ssh_error(tmp_path: Path) -> None:
    vm = FakeVM(tmp_path / "console.log")
    vm.console_lines.append(HOSTFWD)  # boot() retries a port clash: no reason to stop here
    start = time.monotonic()
    with pytest.raises(VMLost, match=r"no SSH within 1s \(ConnectionRefusedError: "):
        boot.connect(vm.typed(), 2.0, boot_timeout=0.5, open_ssh=Opener(refusals=1000),
                     init_done_wait=0.0)
    assert 0.9 < time.monotonic() - start < 5.0  # boot_timeout scaled by 2


def test_connect_tries_no_ssh_before_the_init_is_done(tmp_path: Path) -> None:
    """A session tried before the guest has its address waits out SYN retransmits in QEMU's
    user network (seconds): none is tried until the init's line, within its wait."""
    vm = FakeVM(tmp_path / "console.log")
    opener = Opener(refusals=1000)
    with pytest.raises(VMLost, match=r"no SSH within 0s \(no attempt\)"):
        boot.connect(vm.typed(), 1.0, boot_timeout=0.5, open_ssh=opener, init_done_wait=50.0)
    assert opener.calls == []


def test_connect_tries_short_sessions_when_the_init_never_says_done(tmp_path: Path) -> None:
    vm = FakeVM(tmp_path / "console.log")
    opener = Opener(refusals=2)
    boot.connect(vm.typed(), 1.0, boot_timeout=30.0, open_ssh=opener, init_done_wait=0.2)
    assert [timeout for _, timeout in opener.calls] == [boot.EARLY_ATTEMPT] * 3


def test_connect_names_sshd_when_the_guest_finished_booting(tmp_path: Path) -> None:
    """Init done, no banner: the guest is up and its sshd is what failed."""
    vm = FakeVM(tmp_path / "console.log")
    vm.console_lines += ["[    2.1] virtme-ng-init: initialization done",
                         "sshd: no hostkeys available -- exiting."]
    banner = paramiko.SSHException("Error reading SSH protocol banner")
    opener = Opener(refusals=1000)
    opener.refusal = banner
    with pytest.raises(VMLost, match=r"sshd did not start in the guest: .*SSHException: Error "
                                     r"reading SSH protocol banner.*no hostkeys available"):
        boot.connect(vm.typed(), 1.0, boot_timeout=0.5, open_ssh=opener)


def test_connect_closes_the_session_when_the_first_command_fails(tmp_path: Path) -> None:
    opener = Opener(refusals=0, chan=FakeChannel(lambda r: reply(r, rc=1)))
    with pytest.raises(GuestStepFailed):
        boot.connect(FakeVM(tmp_path / "console.log").typed(), 1.0, open_ssh=opener,
                     init_done_wait=0.0)
    assert opener.client.closed


class Machine:
    """boot()'s seams: launches FakeVMs; connecting fails while ``failures`` last."""

    def __init__(self, tmp_path: Path, failures: list[BaseException]) -> None:
        self.tmp_path, self.failures = tmp_path, failures
        self.vms: list[FakeVM] = []

    def launch(self, spec: VMSpec, log: Path) -> VM:
        vm = FakeVM(log, spec.arch.name, spec.port)
        self.vms.append(vm)
        return vm.typed()

    def attach(self, vm: VM, scale: float) -> Guest:
        if len(self.vms) <= len(self.failures):
            failure = self.failures[len(self.vms) - 1]
            if isinstance(failure, VMLost) and "forwarding" in str(failure):
                self.vms[-1].console_lines.append(HOSTFWD)
            raise failure
        _, client = ssh_client(FakeChannel())
        guest = Guest(vm, client, scale)
        guest.ready_at = time.monotonic()
        return guest


def native_build() -> KernelBuild:
    native = [a for a in arches.names() if arches.get(a).is_native]
    if not native:
        pytest.skip("no supported arch is this host's")
    return fake_build(native[0])


def boot_on(tmp_path: Path, machine: Machine,
            timeout_factor: float = 1.0) -> tuple[Guest, list[str]]:
    said: list[str] = []
    opts = BootOptions(cache_dir=tmp_path, accel="tcg", timeout_factor=timeout_factor)
    guest = boot.boot(native_build(), opts, tmp_path / "consoles" / "c.log", said.append,
                      launch=machine.launch, attach=machine.attach)
    return guest, said


def test_boot_retries_a_port_clash_on_a_new_vm(tmp_path: Path) -> None:
    machine = Machine(tmp_path, [VMLost("host forwarding")])
    guest, said = boot_on(tmp_path, machine)
    assert [vm.closed for vm in machine.vms] == [True, False]
    assert guest.vm is machine.vms[1].typed()
    assert sum("booting" in line for line in said) == 2
    assert "ready after" in said[-1]


def test_boot_gives_up_after_its_attempts_with_the_shell_to_reproduce(tmp_path: Path) -> None:
    machine = Machine(tmp_path, [VMLost("host forwarding")] * boot.PORT_ATTEMPTS)
    with pytest.raises(VMLost, match="the same boot with a shell: vng "):
        boot_on(tmp_path, machine)
    assert len(machine.vms) == boot.PORT_ATTEMPTS
    assert all(vm.closed for vm in machine.vms)


@pytest.mark.parametrize("failure", [VMLost("panic"), KeyboardInterrupt(), OSError("EPIPE")])
def test_boot_leaves_no_vm_behind_when_connecting_fails(tmp_path: Path,
                                                        failure: BaseException) -> None:
    machine = Machine(tmp_path, [failure])
    with pytest.raises(type(failure)):
        boot_on(tmp_path, machine)
    assert len(machine.vms) == 1  # not a port clash: no second boot
    assert machine.vms[0].closed


def test_the_debug_flavor_stretches_every_guest_deadline(tmp_path: Path) -> None:
    plain, _ = boot_on(tmp_path, Machine(tmp_path, []))
    debug, _ = boot_on(tmp_path, Machine(tmp_path, []),
                       timeout_factor=FLAVOR_TIMEOUT_FACTOR["debug"])
    assert FLAVOR_TIMEOUT_FACTOR["plain"] == 1.0
    assert debug.scale == pytest.approx(3.0 * plain.scale)
    assert plain.scale > 1.0  # TCG's own factor is still there


@pytest.mark.parametrize(("head", "why"), [
    (b"not a kernel image " * 64, r"not an image this QEMU boots \(\S+/bzImage has no x86_64 "
                                  r"boot header"),
    (bytes(0x202) + b"HdrS" + bytes(64), r"not even on its early console \(earlycon=uart8250"),
])
def test_connect_names_an_image_whose_kernel_never_starts(tmp_path: Path, head: bytes,
                                                          why: str) -> None:
    """QEMU given an image runs on and prints nothing: a VMLost once the kernel's first line
    is overdue, not the SSH deadline's minutes later; "not an image this QEMU boots" only for
    an image without its arch's boot header."""
    import dataclasses

    vm = FakeVM(tmp_path / "console.log")
    image = tmp_path / "bzImage"
    image.write_bytes(head)
    vm.spec = dataclasses.replace(vm.spec, build=dataclasses.replace(vm.spec.build, image=image))
    start = time.monotonic()
    with pytest.raises(VMLost, match=r"the kernel printed nothing within 1s of the launch"
                                     r"(.*)" + why):
        boot.connect(vm.typed(), 2.0, boot_timeout=30.0, open_ssh=Opener(refusals=1000),
                     kernel_start=0.5)
    assert time.monotonic() - start < 5.0


def test_connect_waits_on_for_ssh_once_the_kernel_has_printed(tmp_path: Path) -> None:
    vm = FakeVM(tmp_path / "console.log")
    vm.console_lines.append("[    0.000000] Linux version 6.12.117")
    with pytest.raises(VMLost, match=r"no SSH within 1s"):
        boot.connect(vm.typed(), 1.0, boot_timeout=1.0, open_ssh=Opener(refusals=1000),
                     kernel_start=0.2)
