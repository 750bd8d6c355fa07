import pytest

from kheaders_suite.boot import accel
from kheaders_suite.catalog import arches
from kheaders_suite.catalog.arches.arch import Arch
from kheaders_suite.errors import UserError

X86 = arches.get("x86_64")
ARM = arches.get("arm64")
CPUINFO_NO_VIRT = "processor\t: 0\nflags\t\t: fpu vme de pse sse sse2 hypervisor\n"


def test_cpu_flags_from_cpuinfo() -> None:
    assert "sse2" in accel.cpu_flags(CPUINFO_NO_VIRT)
    assert "vmx" not in accel.cpu_flags(CPUINFO_NO_VIRT)


def test_kvm_device_without_vmx_or_svm_means_tcg() -> None:
    """This machine's case: /dev/kvm opens but guests hang at 'Booting from ROM'."""
    got = accel.decide("auto", X86, "x86_64", True, accel.cpu_flags(CPUINFO_NO_VIRT), None)
    assert got.name == "tcg"
    assert "vmx/svm" in got.reason


@pytest.mark.parametrize(
    ("requested", "arch", "host", "kvm_rw", "flags", "probe", "want"),
    [
        ("tcg", X86, "x86_64", True, {"vmx"}, True, "tcg"),
        ("kvm", X86, "x86_64", False, set(), None, "kvm"),
        ("auto", ARM, "x86_64", True, {"vmx"}, True, "tcg"),
        ("auto", X86, "x86_64", False, {"vmx"}, True, "tcg"),
        ("auto", X86, "x86_64", True, {"svm"}, False, "tcg"),
        ("auto", X86, "x86_64", True, {"vmx"}, True, "kvm"),
        ("auto", ARM, "aarch64", True, set(), None, "kvm"),
    ],
)
def test_decide(requested: str, arch: Arch, host: str, kvm_rw: bool, flags: set[str],
                probe: bool | None, want: str) -> None:
    assert accel.decide(requested, arch, host, kvm_rw, flags, probe).name == want


def test_bad_accel_is_a_user_error() -> None:
    with pytest.raises(UserError, match="choose auto, kvm or tcg"):
        accel.decide("hvf", X86, "x86_64", True, set(), None)


def test_timeouts_scale_with_accelerator_and_arch() -> None:
    assert accel.Accel("kvm", "").scale(ARM) == 1.0
    assert accel.Accel("tcg", "").scale(X86) == accel.TCG_FACTOR
    assert accel.Accel("tcg", "").scale(ARM) == accel.TCG_FACTOR * ARM.tcg_timeout_factor


def test_probe_firmware_puts_code_at_the_reset_vector() -> None:
    fw = accel.probe_firmware()
    assert len(fw) == 65536
    assert fw[0xFFF0:0xFFF4] == bytes((0xB0, 42, 0xE6, 0xF4))


def test_probe_command_uses_kvm_and_debug_exit() -> None:
    from pathlib import Path

    cmd = accel.probe_cmd(Path("/fw.bin"))
    assert cmd[:3] == ("qemu-system-x86_64", "-accel", "kvm")
    assert "isa-debug-exit,iobase=0xf4,iosize=0x04" in cmd
    assert "/fw.bin" in cmd
