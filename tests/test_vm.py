import os
from pathlib import Path

import pytest

from kheaders_suite.boot.accel import Accel
from kheaders_suite.boot.vm import (
    PIPE_MAX,
    VMSpec,
    arrival,
    console_pipe,
    free_port,
    profile_boot,
    vng_command,
)
from kheaders_suite.catalog import arches
from kheaders_suite.host.guardian import guardian_command
from kheaders_suite.records import KernelBuild


def fake_build(arch: str = "x86_64") -> KernelBuild:
    d = Path("/c/builds/b")
    return KernelBuild(key="k", arch=arch, variant="sysfs", release="6.12.117", dir=d,
                       image=d / "bzImage", config=d / "config", archive=None, modroot=None,
                       source_dir=Path("/s"), srcarch="x86", objtree_headers=d / "objtree",
                       log=d / "build.log", seconds=1.0)


def test_native_tcg_command_line() -> None:
    spec = VMSpec(fake_build(), arches.get("x86_64"), Accel("tcg", "no vmx"), port=2345,
                  cpus=4, memory="1G")
    assert vng_command(spec) == (
        "vng", "--run", "/c/builds/b/bzImage", "--cpus", "4", "--memory", "1G",
        "--ssh", "2345", "--ssh-tcp", "--force-9p", "--append", "loglevel=7",
        "--qemu-opts=-set netdev.ssh.restrict=on", "--disable-kvm",
        "--qemu-opts=-cpu max,la57=off",
    )


def test_kvm_does_not_disable_kvm() -> None:
    spec = VMSpec(fake_build(), arches.get("x86_64"), Accel("kvm", "probe ran"), port=1)
    assert "--disable-kvm" not in vng_command(spec)


def test_foreign_arch_gets_root_rodirs_and_cpu_model() -> None:
    arm = arches.get("arm64")
    spec = VMSpec(fake_build("arm64"), arm, Accel("tcg", "foreign"), port=7,
                  root=Path("/r"), rodirs=((Path("/c/builds/b"), "/mnt"),))
    cmd = vng_command(spec, vng="/venv/bin/vng")
    assert cmd[0] == "/venv/bin/vng"
    assert cmd[cmd.index("--arch") + 1] == "arm64"
    assert cmd[cmd.index("--root") + 1] == "/r"
    assert "--rodir=/mnt=/c/builds/b" in cmd
    assert spec.guest_path(Path("/c/builds/b/modroot")) == "/mnt/modroot"
    assert spec.guest_path(Path("/elsewhere/x")) == "/elsewhere/x"
    assert f"--qemu-opts=-cpu {arm.tcg_cpu}" in cmd


def test_guardian_dies_with_parent_and_kills_group() -> None:
    cmd = guardian_command(4242)
    assert cmd[:4] == ("setpriv", "--pdeathsig", "TERM", "--")
    assert cmd[-3:] == ("-m", "kheaders_suite.host.guardian", "4242")


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


BOOT = ("[    0.500000] 9pnet: Installing 9P2000 support\n"
        "[    0.900000] Run /sbin/virtme-ng-init as init process\n"
        "[    3.900000] virtme-ng-init: initialization done\n")


def test_boot_profile_places_the_guest_clock_by_the_init_line() -> None:
    init_at = BOOT.index("[    0.9")
    done_at = BOOT.index("[    3.9")
    # launched at 100; the init line arrived at 102.0, "init done" at 105.0
    arrivals = [(101.0, init_at), (102.0, done_at), (105.0, len(BOOT))]
    p = profile_boot(100.0, arrivals, BOOT, ssh_at=106.5, ready_at=107.0)
    assert p.kernel_start == pytest.approx(1.1)  # 102.0 - 100 - 0.9
    assert (p.init, p.init_done, p.ssh, p.ready) == (0.9, 3.9, 6.5, 7.0)
    stages = dict(p.stages())
    assert stages["init"] == pytest.approx(3.0)
    assert stages["sshd+ssh"] == pytest.approx(6.5 - (1.1 + 3.9))
    assert sum(v for v in stages.values() if v is not None) == pytest.approx(p.ready)


def test_boot_profile_without_console_milestones_says_unknown() -> None:
    p = profile_boot(0.0, [], "", ssh_at=5.0, ready_at=6.0)
    assert p.kernel_start is None
    assert p.init is None
    assert "init ?" in p.render()
    assert dict(p.stages())["agent+first command"] == 1.0


def test_arrival_is_the_first_chunk_that_reached_the_byte() -> None:
    arrivals = [(1.0, 10), (2.0, 20)]
    assert arrival(arrivals, 0) == 1.0
    assert arrival(arrivals, 10) == 2.0
    assert arrival(arrivals, 20) is None


def test_panic_watch_sees_a_panic_split_across_chunks() -> None:
    from kheaders_suite.boot.vm import PanicWatch

    watch = PanicWatch()
    for chunk in (b"[  9.1] Kernel pan", b"ic - not syncing: sysrq triggered crash\n",
                  b"CPU: 0 PID: 1\n---[ end Kernel ", b"panic - not syncing ]---\n"):
        watch.feed(chunk)
    assert watch.panicked_at is not None
    assert watch.ended.is_set()


def test_panic_watch_ignores_a_normal_boot() -> None:
    from kheaders_suite.boot.vm import PanicWatch

    watch = PanicWatch()
    watch.feed(b"Run /init as init process\nvirtme-ng init: initialization done\n")
    assert watch.panicked_at is None


def test_a_panicked_guest_is_gone_while_qemu_still_runs() -> None:
    import subprocess
    import sys

    from kheaders_suite.boot.vm import VM, PanicWatch

    vm = VM.__new__(VM)
    vm.proc = subprocess.Popen((sys.executable, "-c", "import time; time.sleep(30)"))
    vm.panic = PanicWatch()
    try:
        assert vm.alive()
        assert vm.gone() is None
        vm.panic.feed(b"Kernel panic - not syncing: Fatal exception\n---[ end Kernel panic\n")
        assert not vm.alive()
        assert vm.gone() == "the guest kernel panicked"
    finally:
        vm.proc.kill()
        vm.proc.wait()
    assert vm.gone() == "the guest kernel panicked"


def test_shell_command_is_the_boot_without_ssh() -> None:
    from kheaders_suite.boot.vm import shell_command

    spec = VMSpec(fake_build("arm64"), arches.get("arm64"), Accel("tcg", "no vmx"), port=2345,
                  root=Path("/c/rootfs/arm64"), rodirs=((Path("/c/builds/b"), "/mnt"),))
    shell = shell_command(spec)
    assert "--ssh" not in shell
    assert "--ssh-tcp" not in shell
    assert "2345" not in shell
    dropped = ("--ssh", "2345", "--ssh-tcp", "--qemu-opts=-set netdev.ssh.restrict=on")
    assert [a for a in vng_command(spec) if a not in dropped] == list(shell)


def test_vng_runs_with_the_vms_own_home() -> None:
    """virtme-ng keeps its SSH keys under ~/.cache/virtme-ng/.ssh: vng runs with the VM's
    own HOME (sshkeys), never the user's."""
    from kheaders_suite.boot.vm import vng_env

    spec = VMSpec(fake_build(), arches.get("x86_64"), Accel("tcg", "no vmx"), port=2345,
                  vng_home=Path("/c/vng-home"))
    env = vng_env(spec, "/venv/bin/vng", Path("/c/vng-home/vm-1-ab"),
                  {"HOME": "/root", "PATH": "/usr/bin"})
    assert env["HOME"] == "/c/vng-home/vm-1-ab"
    assert env["PATH"] == "/venv/bin:/usr/bin"


def test_boot_puts_vngs_home_in_the_cache(tmp_path: Path) -> None:
    from kheaders_suite.session.connect import VNG_HOME, BootOptions, spec_for

    spec = spec_for(fake_build(), BootOptions(cache_dir=tmp_path), Accel("tcg", "t"),
                    lambda m: None)
    assert spec.vng_home == tmp_path / VNG_HOME


@pytest.mark.parametrize(("line", "args"), [
    ("CONFIG_KASAN=y", ("kasan_multi_shot",)),
    ("# CONFIG_KASAN is not set", ()),
])
def test_a_kasan_kernel_reports_every_bug_of_a_boot(tmp_path: Path, line: str,
                                                    args: tuple[str, ...]) -> None:
    """KASAN's default is one report per boot: a later test's bug in the same guest would
    pass unseen."""
    import dataclasses

    from kheaders_suite.session.connect import BootOptions, spec_for

    (tmp_path / "config").write_text(f"CONFIG_64BIT=y\n{line}\nCONFIG_KASAN_GENERIC=y\n")
    build = dataclasses.replace(fake_build(), config=tmp_path / "config")
    spec = spec_for(build, BootOptions(cache_dir=tmp_path), Accel("tcg", "t"), lambda m: None)
    assert spec.kernel_args[:2] == ("earlycon=uart8250,io,0x3f8,115200",
                                    "sysctl.kernel.hung_task_timeout_secs=40")
    assert ("kasan_multi_shot" in spec.kernel_args) == bool(args)
    cmd = vng_command(spec)
    assert [cmd[i + 1] for i, a in enumerate(cmd) if a == "--append"] == ["loglevel=7",
                                                                          *spec.kernel_args]


def test_hang_detectors_report_before_a_command_times_out() -> None:
    """Every detector's threshold scales with the deadlines, and the slowest one reports a
    hang well before the guest's command deadline gives up on it, under KVM and TCG."""
    from kheaders_suite.boot import detectors
    from kheaders_suite.session.guest import COMMAND_TIMEOUT

    for scale in (1.0, 5.0, 7.5, 15.0):
        assert detectors.hang_report_within(scale) < 0.5 * COMMAND_TIMEOUT * scale
    assert detectors.detector_args(5.0) == (
        "sysctl.kernel.hung_task_timeout_secs=40",
        "sysctl.kernel.hung_task_check_interval_secs=10",
        "watchdog_thresh=15", "rcupdate.rcu_cpu_stall_timeout=40")
    assert "watchdog_thresh=60" in detectors.detector_args(100.0)  # the kernel's maximum


def test_the_console_pipe_takes_half_a_mib_nobody_has_read() -> None:
    """QEMU writes the console without blocking and drops what the pipe refuses: a reader held
    off on a loaded host loses nothing while the pipe has room (a default pipe takes 64 KiB)."""
    want = min(512 << 10, int(PIPE_MAX.read_text()))
    reader, writer = console_pipe()
    os.set_blocking(writer, False)
    taken = 0
    try:
        while taken < want:
            taken += os.write(writer, b"console line\n" * 315)  # about 4 KiB a write
    except BlockingIOError:
        pass
    finally:
        os.close(reader)
        os.close(writer)
    assert taken >= want, f"the pipe took {taken} bytes before refusing"
