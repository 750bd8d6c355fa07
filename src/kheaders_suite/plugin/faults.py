"""Faults the suite injects into its own run, to show what the harness does with them.

    KHEADERS_SUITE_FAULT=kill-qemu-once:STATE_FILE

SIGKILLs the guest's QEMU (its whole process group, as vmtests/test_faults.py does) at the
start of the first test body that has a live guest, if STATE_FILE does not exist yet, and
creates it; a later run with the same STATE_FILE runs clean. That is patch CI's retry seen
end to end: the patched side's run loses its VM once (an ERROR, VMLost), the retry of that
test on a fresh VM passes, and the report says "flaky" with both outcomes (kheaders-ci
--patched-fault SPEC sets the variable for the patched side alone).

The state file is created with O_EXCL before the kill, so two runs sharing it kill at most
one VM between them. Unset, or empty: nothing happens. A spec this module does not know is
a UserError at the start of the run, not a silently clean one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from kheaders_suite.errors import UserError
from kheaders_suite.plugin.boots import guest_of

FAULT_VARIABLE = "KHEADERS_SUITE_FAULT"
KILL_QEMU_ONCE = "kill-qemu-once"
KINDS = (KILL_QEMU_ONCE,)
KILL_SETTLE = 10.0  # seconds for the killed QEMU to be reaped, so the body finds it gone
_FAULT = pytest.StashKey["Fault | None"]()


@dataclass(frozen=True)
class Fault:
    kind: str  # one of KINDS
    state: Path  # exists once the fault has been injected


def parse_fault(spec: str) -> Fault | None:
    """The fault ``spec`` (the variable's value) asks for; None for ""; UserError naming the
    known kinds for anything else."""
    if not spec:
        return None
    kind, sep, state = spec.partition(":")
    if kind not in KINDS or not sep or not state:
        raise UserError(f"{FAULT_VARIABLE}={spec!r}: expected "
                        f"{' or '.join(f'{k}:STATE_FILE' for k in KINDS)}")
    return Fault(kind, Path(state))


def fault_from(environ: Mapping[str, str]) -> Fault | None:
    return parse_fault(environ.get(FAULT_VARIABLE, ""))


def claim(fault: Fault) -> bool:
    """True exactly once per state file: this caller made it and must inject the fault."""
    try:
        fd = os.open(fault.state, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def should_inject(fault: Fault | None, has_guest: bool) -> bool:
    """Inject now: a fault is asked for, this test body has a live guest to break, and the
    fault has not been injected yet (claimed here, so it is the last time)."""
    return fault is not None and has_guest and claim(fault)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_FAULT] = fault_from(os.environ)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    fault = item.config.stash.get(_FAULT, None)
    if fault is None:
        return
    guest = guest_of(item)
    if not should_inject(fault, guest is not None and guest.vm.alive()):
        return
    assert guest is not None
    proc = guest.vm.proc
    os.killpg(proc.pid, signal.SIGKILL)  # QEMU is its own process group (boot/vm.py)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=KILL_SETTLE)
