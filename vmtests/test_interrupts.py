"""Ctrl-C during a boot, and an xdist worker killed while its guest runs (issue 13): no QEMU
is left, and the next run works without any clean-up.

Each case drives a pytest run of its own (this plugin, the target's cached sysfs build) and
interrupts it from outside, as a developer's Ctrl-C or CI's out-of-memory killer would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from kheaders_suite.plugin.options import Settings
from kheaders_suite.records import KernelBuild, Target

from .test_faults import inner_argv, memory_for, qemus_with

INNER = '''
import os
import pytest

@pytest.mark.variants("sysfs")
def test_boots(guest):
    assert guest.run(("true",)).rc == 0
    # held while the outer test kills its worker (a boot now ends before it could look)
    guest.run(("sleep", os.environ.get("KHEADERS_TEST_HOLD", "0")), timeout=900)
'''
HOLD = "600"
WAIT = 900.0  # for a line of the inner run (a cold boot beside other guests under TCG)


def memory(arch: str) -> str:
    return memory_for(arch, base=1910)


def start(tmp_path: Path, target: Target, s: Settings, *extra: str,
          hold: str = "0") -> subprocess.Popen[bytes]:
    """The inner run; ``hold``: seconds its test keeps the guest busy after it answered."""
    argv = inner_argv(tmp_path, INNER, target, s, memory(target.arch), *extra)
    env = {**os.environ, "KHEADERS_TEST_HOLD": hold}
    with (tmp_path / "out.log").open("ab") as sink:
        return subprocess.Popen(argv, cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT,
                                env=env, preexec_fn=interruptible)


def interruptible() -> None:
    """Ctrl-C as a terminal delivers it: an xdist worker ignores SIGINT (its controller
    handles it), a child inherits that, and Python then installs no KeyboardInterrupt handler:
    the inner run would ignore the Ctrl-C and pass (seen in a load run with -n 2)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(log: Path, text: str) -> None:
    __tracebackhide__ = True
    deadline = time.monotonic() + WAIT
    while text not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"no {text!r} in {log}:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)


def no_qemu_within(marker: str, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while qemus_with(marker) and time.monotonic() < deadline:
        time.sleep(0.5)
    return qemus_with(marker)


def parents() -> dict[int, int]:
    """{pid: parent pid} of every process on the host."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        found[int(stat.parent.name)] = int(fields[1])
    return found


def children(pid: int) -> list[int]:
    return [child for child, parent in parents().items() if parent == pid]


def descendants(pid: int) -> set[int]:
    tree, todo = parents(), [pid]
    found: set[int] = set()
    while todo:
        here = todo.pop()
        kids = {child for child, parent in tree.items() if parent == here} - found
        found |= kids
        todo += kids
    return found


def qemu_of(proc: subprocess.Popen[bytes], marker: str, log: Path) -> int:
    """The QEMU of ``proc``'s boot: a descendant of the inner run with its memory size on the
    command line, waited for while the run is alive."""
    __tracebackhide__ = True
    deadline = time.monotonic() + WAIT
    while not (mine := set(qemus_with(marker)) & descendants(proc.pid)):
        assert proc.poll() is None, \
            f"the inner run ended (exit {proc.poll()}) before its QEMU started:\n" \
            f"{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"the inner run started no QEMU in {WAIT:g} s"
        time.sleep(0.2)
    return min(mine)


def running(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def run_again(tmp_path: Path, target: Target, s: Settings) -> str:
    """The same run, to the end: it must pass without any clean-up."""
    (tmp_path / "out.log").write_text("")
    proc = start(tmp_path, target, s, "-n", "0")
    proc.wait(timeout=WAIT)
    out = (tmp_path / "out.log").read_text(errors="replace")
    assert proc.returncode == 0, out[-3000:]
    return out


@pytest.mark.variants("sysfs")
def test_ctrl_c_during_a_boot_leaves_nothing_behind(target: Target, kernel_build: KernelBuild,
                                                    suite_settings: Settings,
                                                    tmp_path: Path) -> None:
    out = tmp_path / "out.log"
    proc = start(tmp_path, target, suite_settings, "-n", "0")
    wait_for(out, ": booting ")
    qemu = qemu_of(proc, memory(target.arch), out)
    time.sleep(1.0)  # the kernel boots: nothing answers SSH for seconds yet
    assert ": ready after " not in out.read_text(), "the boot ended before the Ctrl-C"
    assert running(qemu), f"QEMU {qemu} of the boot is gone before the Ctrl-C"
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=120)
    assert code == pytest.ExitCode.INTERRUPTED, \
        f"exit {code} after a Ctrl-C during the boot; its output:\n{out.read_text()[-3000:]}"
    assert no_qemu_within(memory(target.arch), 15.0) == [], "QEMU outlived the Ctrl-C"
    assert not running(qemu), f"QEMU {qemu} of the interrupted boot outlived the Ctrl-C"
    assert "1 passed" in run_again(tmp_path, target, suite_settings)


@pytest.mark.variants("sysfs")
def test_a_killed_xdist_worker_leaves_no_qemu(target: Target, kernel_build: KernelBuild,
                                              suite_settings: Settings, tmp_path: Path) -> None:
    proc = start(tmp_path, target, suite_settings, "-n", "1", hold=HOLD)
    wait_for(tmp_path / "out.log", ": ready after ")
    assert qemus_with(memory(target.arch)), "the worker's guest is not running"
    for worker in children(proc.pid):
        os.kill(worker, signal.SIGKILL)
    proc.wait(timeout=300)
    assert no_qemu_within(memory(target.arch), 15.0) == [], "QEMU outlived its worker"
    assert "1 passed" in run_again(tmp_path, target, suite_settings)
