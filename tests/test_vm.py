from pathlib import Path

from kheaders_suite import arches
from kheaders_suite.accel import Accel
from kheaders_suite.build import KernelBuild
from kheaders_suite.vm import VMSpec, free_port, guardian_command, vng_command


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
        "--ssh", "2345", "--ssh-tcp", "--append", "loglevel=7", "--disable-kvm",
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
    assert cmd[-3:] == ("-m", "kheaders_suite.guardian", "4242")


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
