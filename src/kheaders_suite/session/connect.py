"""Step 4: boot a build until its guest answers, and return the connected ``Guest``.

``boot`` picks the accelerator, the root and a port, launches the VM and retries on a port
clash; ``connect`` waits for sshd, starts the agent and runs a first command, and names the
cause (VMLost, with the console tail) when the VM dies or never answers.

Both have a seam, as KUnit's runner has for make and QEMU, so their logic is unit-tested
without a VM: ``boot`` takes how to launch a VM and how to connect to it, ``connect`` how to
open an SSH session.
"""

from __future__ import annotations

import logging
import os
import pwd
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import paramiko

from kheaders_suite.boot import accel, console, detectors, guesthome, guestinit
from kheaders_suite.boot.sshkeys import VMKeys
from kheaders_suite.boot.vm import VM, VMSpec, free_port, profile_boot, shell_command
from kheaders_suite.catalog import arches
from kheaders_suite.errors import VMLost
from kheaders_suite.host import tools
from kheaders_suite.host.deadline import Deadline
from kheaders_suite.records import KernelBuild, Progress, target_id
from kheaders_suite.session.guest import Guest
from kheaders_suite.session.kernellog import KernelLog, KernelReported

# Until sshd is up, every attempt ends in a banner error that paramiko logs as an ERROR with a
# traceback; those are expected while booting, and connect() reports the last one itself.
logging.getLogger("paramiko.transport").setLevel(logging.CRITICAL)

# virtme-ng's HOME inside the cache: its SSH keys (host and login) are the cache's own.
VNG_HOME = "vng-home"
# Root's home in a guest on the host's root, without the host user's shell startup files.
GUEST_HOME = "guest-home"
# The suite's init and the virtme-run that boots it (guestinit).
GUEST_INIT = "guest-init"
# Base seconds for sshd to answer under KVM; multiplied by Accel.scale(arch) under TCG.
BOOT_TIMEOUT = 30.0
# Base seconds from the launch to the kernel's first console line, scaled the same way (it
# takes 0.5-1.4 s under TCG here). An image QEMU cannot boot (truncated, another arch's, not
# a kernel) prints nothing at all, and waited out the whole SSH deadline (150 s) before.
KERNEL_START_TIMEOUT = 6.0
# Base seconds to wait for the init's "initialization done" (sshd started, network up) before
# trying SSH anyway. An attempt made earlier reaches QEMU's user network, which accepts it and
# sends the guest a SYN; a SYN sent before the guest has its address is retransmitted with
# backoff, and that session came up 2.5-3 s after sshd was listening (arm64, TCG).
INIT_DONE_WAIT = 10.0
# A timeout for attempts made without that line: short, so a lost SYN costs one retry.
EARLY_ATTEMPT = 2.0
PORT_ATTEMPTS = 3
# Where a foreign-arch guest sees the build dir (/mnt exists, empty, in Debian roots).
FOREIGN_BUILD_MOUNT = "/mnt"

# The seams: start a VM for a spec, its console going to a log; wait for a VM's guest (the
# accelerator's time scale); open an SSH session to the forwarded port within a timeout.
Launch = Callable[[VMSpec, Path], VM]
Connect = Callable[[VM, float], Guest]
OpenSSH = Callable[[int, float], paramiko.SSHClient]


@dataclass(frozen=True)
class BootOptions:
    """What a boot takes from the run's options, as plain data: the pytest plugin makes it
    from its Settings, a caller outside pytest (benchmarks/bench.py) directly."""

    cache_dir: Path  # root filesystems of foreign arches, the KVM probe's verdicts
    accel: str = "auto"  # --accel: auto probes KVM for real, kvm or tcg force it
    guest_cpus: int = 2
    guest_memory: str = "2G"  # virtme-ng's size: digits with K, M or G
    # The kernel's own slowness, on top of the accelerator's: flavors.FLAVOR_TIMEOUT_FACTOR
    timeout_factor: float = 1.0
    guest_init: str = "suite"  # --guest-init: the suite's init (guestinit) or virtme-ng's


def vng_binary() -> str:
    """vng from the suite's venv, else PATH, new enough (tools.VNG_MIN); UserError if not."""
    return str(tools.checked_vng())


def launch_vng(spec: VMSpec, log: Path) -> VM:
    return VM(spec, log, vng_binary())


def spec_for(build: KernelBuild, opts: BootOptions, decision: accel.Accel,
             progress: Progress) -> VMSpec:
    arch = arches.get(build.arch)
    root = None
    rodirs: tuple[tuple[Path, str], ...] = ()
    if not arch.is_native:
        from kheaders_suite.boot.rootfs import ensure_rootfs

        root = ensure_rootfs(opts.cache_dir, arch, progress)
        rodirs = ((build.dir, FOREIGN_BUILD_MOUNT),)
    elif os.geteuid() == 0:  # virtme-ng leaves the host's /root as the guest's: guesthome
        host_home = Path(pwd.getpwuid(0).pw_dir)
        rodirs = guesthome.rodirs(guesthome.ensure_home(opts.cache_dir / GUEST_HOME,
                                                        host_home), host_home)
    return VMSpec(build=build, arch=arch, accel=decision, port=free_port(),
                  cpus=opts.guest_cpus, memory=opts.guest_memory, root=root, rodirs=rodirs,
                  vng_home=opts.cache_dir / VNG_HOME,
                  kernel_args=kernel_args_for(build, decision.scale(arch) * opts.timeout_factor),
                  init_launcher=init_launcher(opts))


def init_launcher(opts: BootOptions) -> Path | None:
    """Where vng finds the virtme-run that boots the suite's init; None for virtme-ng's."""
    if opts.guest_init != "suite":
        return None
    return guestinit.ensure(opts.cache_dir / GUEST_INIT, tools.find_vng())


def kernel_args_for(build: KernelBuild, scale: float) -> tuple[str, ...]:
    """What the kernel itself asks of the command line: its early console (a panic before
    the serial driver registers is printed all the same), the hang detectors' thresholds for
    this ``scale``, and, with KASAN, kasan_multi_shot (KASAN reports only its first bug of a
    boot without it: every later test in that guest would pass whatever it broke)."""
    args = (arches.get(build.arch).earlycon, *detectors.detector_args(scale))
    if not build.config.is_file():
        return args
    config = build.config.read_text(errors="replace").splitlines()
    return (*args, "kasan_multi_shot") if "CONFIG_KASAN=y" in config else args


def ssh_login(port: int, timeout: float, keys: VMKeys) -> paramiko.SSHClient:
    """An SSH session as root on the guest's forwarded port, with this VM's login key, to a
    server that proves it holds this VM's host key: the one key the client knows for the
    address, and any other is refused (RejectPolicy), so nothing else that listens on the
    port gets the session."""
    client = paramiko.SSHClient()
    client.get_host_keys().add(f"[127.0.0.1]:{port}", keys.host.get_name(), keys.host)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect("127.0.0.1", port=port, username="root", pkey=keys.login,
                       look_for_keys=False, allow_agent=False, timeout=timeout,
                       banner_timeout=timeout, auth_timeout=timeout)
    except BaseException:
        client.close()
        raise
    transport = client.get_transport()
    if transport is not None:
        transport.set_keepalive(15)
    return client


def connect(vm: VM, scale: float, boot_timeout: float = BOOT_TIMEOUT, *,
            open_ssh: OpenSSH | None = None,
            kernel_start: float = KERNEL_START_TIMEOUT,
            init_done_wait: float = INIT_DONE_WAIT) -> Guest:
    """Wait for sshd in the guest; VMLost (with the console tail) if it dies or never answers.
    ``open_ssh`` (port, timeout): by default ssh_login with this VM's keys (sshkeys).
    SSH is tried once the init says it is done, or with short attempts after
    ``init_done_wait`` (scaled) without that line."""
    if open_ssh is None:
        open_ssh = partial(ssh_login, keys=vm.keys)
    deadline = Deadline(boot_timeout * scale)
    started = Deadline(kernel_start * scale)
    init_wait = Deadline(init_done_wait * scale)
    kernel_seen = False
    last_error = "no attempt"
    scan = console.MilestoneScan({})  # each poll scans only the console's new bytes
    while not deadline.expired:
        if not vm.alive():
            why = vm.gone(settle=1.0) or "QEMU stopped"
            raise_if_kernel_said(vm)
            raise VMLost(_lost_message(vm, f"VM exited before SSH came up ({why})"))
        marks = scan.feed(vm.own_console())
        kernel_seen = kernel_seen or "kernel" in marks
        if not kernel_seen and started.expired:
            raise VMLost(_lost_message(vm, silent_kernel(vm, started.seconds)))
        booted = "init_done" in marks
        if not booted and not init_wait.expired:
            deadline.sleep(0.05)
            continue
        limit = 10.0 if booted else EARLY_ATTEMPT
        try:
            client = open_ssh(vm.spec.port, min(limit, max(1.0, deadline.remaining)))
        except (OSError, paramiko.SSHException, EOFError) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
            deadline.sleep(0.25)
            continue
        return _ready(vm, client, scale)
    raise_if_kernel_said(vm)
    raise VMLost(_lost_message(vm, no_ssh_reason(vm.console_text(), deadline.seconds,
                                                 last_error)))


def raise_if_kernel_said(vm: VM) -> None:
    """KernelReported when the console of a boot that did not come up holds a kernel report
    (a panic in an initcall, an Oops, a hang report): the kernel's FAIL, quoted, not a VM
    that was lost."""
    scan = KernelLog().scan(f"the boot of {target_id(vm.spec.arch.name, vm.spec.build.variant)}",
                            None, vm.own_console())
    if scan.reports:
        raise KernelReported(scan)


def silent_kernel(vm: VM, seconds: float) -> str:
    """Why a launch printed nothing, said only as far as it is known: an image without its
    arch's magic is not a kernel this QEMU boots; one with it hung before its early console."""
    image = vm.spec.build.image
    try:
        with image.open("rb") as handle:
            head = handle.read(4096)
    except OSError as exc:
        return f"the kernel printed nothing within {seconds:.0f}s: {image} unreadable ({exc})"
    if not vm.spec.arch.looks_bootable(head):
        return (f"the kernel printed nothing within {seconds:.0f}s of the launch: not an image "
                f"this QEMU boots ({image} has no {vm.spec.arch.name} boot header: truncated, "
                "another arch's, not a kernel)")
    return (f"the kernel printed nothing within {seconds:.0f}s of the launch, not even on "
            f"its early console ({vm.spec.arch.earlycon}), though {image} is a "
            f"{vm.spec.arch.name} image: QEMU or the firmware stalled before the kernel ran")


def no_ssh_reason(text: str, seconds: float, last_error: str) -> str:
    """Why nothing answered SSH: when the guest's init says it finished, the guest is up and
    its sshd is what did not start (QEMU's port forward accepts, then drops the connection)."""
    if "init_done" not in console.milestones(text):
        return f"no SSH within {seconds:.0f}s ({last_error})"
    said = [console.strip_timestamp(line).strip() for line in text.splitlines()
            if "sshd" in line or "ssh-keygen" in line]
    lines = "; its console lines: " + " | ".join(said[-5:]) if said else ""
    return (f"sshd did not start in the guest: the guest's init finished, but nothing answered "
            f"SSH within {seconds:.0f}s ({last_error}){lines}")


def _ready(vm: VM, client: paramiko.SSHClient, scale: float) -> Guest:
    """The guest behind ``client`` once its agent runs (or failed to start) and a first
    command answered, with the profile of its boot."""
    guest = Guest(vm, client, scale)
    guest.ssh_at = time.monotonic()
    try:
        guest.start_agent()
        guest.run(("true",), check=True)
    except BaseException:
        client.close()
        raise
    guest.ready_at = time.monotonic()
    guest.profile = profile_boot(vm.launched, vm.arrivals, vm.own_console(),
                                 guest.ssh_at, guest.ready_at)
    return guest


def _lost_message(vm: VM, why: str) -> str:
    hint = console.boot_hint(vm.console_text())
    if hint:
        why = f"{why}; {hint}"
    return (f"VM lost ({target_id(vm.spec.arch.name, vm.spec.build.variant)}): {why}\n"
            f"console log {vm.console}, last lines:\n{console.tail(vm.console_text(), 40)}")


def boot(build: KernelBuild, opts: BootOptions, log: Path, progress: Progress, *,
         launch: Launch = launch_vng, attach: Connect = connect) -> Guest:
    """Boot ``build`` until its guest answers; a VM whose forwarded port was taken meanwhile
    boots again on a new port (PORT_ATTEMPTS in all)."""
    arch = arches.get(build.arch)
    decision = accel.detect(opts.accel, arch, opts.cache_dir, image=build.image)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    spec = spec_for(build, opts, decision, progress)
    label = target_id(arch.name, build.variant)
    for attempt in range(1, PORT_ATTEMPTS + 1):
        progress(f"{label}: booting {build.release} under {decision.name}, console {log}")
        vm = launch(spec, log)
        try:
            guest = attach(vm, decision.scale(arch) * opts.timeout_factor)
        except VMLost as exc:
            vm.close()
            if console.hostfwd_conflict(vm.console_text()) and attempt < PORT_ATTEMPTS:
                spec = spec_for(build, opts, decision, progress)
                continue
            raise VMLost(f"{exc}\nthe same boot with a shell: "
                         f"{shlex.join(shell_command(spec, 'vng'))}") from None
        except BaseException:
            vm.close()  # whatever broke while connecting, no QEMU is left behind
            raise
        shown = guest.profile.render() if guest.profile else "no profile"
        progress(f"{label}: ready after {guest.boot_seconds:.1f}s ({shown})")
        return guest
    raise AssertionError("unreachable")
