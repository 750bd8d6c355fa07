"""Who is to blame for a failing test: the kernel (FAIL) or the harness (ERROR).

Only a kernel or an archive that misbehaves is a FAIL. A VM that is lost, a guest command
that runs out of time, a harness step in the guest (mkdir, tar, a scratch mount) that fails,
the SSH session dropping: each is an ERROR with its own message and the console tail, wherever
it happens, set-up, test body or teardown. A kernel report (BUG, WARNING, Oops, panic) is the
kernel's, even when it killed the VM.

pytest knows ERROR only for set-up and teardown; an infrastructure fault inside a test body
is marked as a user property of its report and its test (``INFRA_PROPERTY``), shown as ERROR
and counted as an error, and written to JUnit as <error>.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path

import paramiko

from kheaders_suite.errors import InfraError
from kheaders_suite.session.kernellog import KernelReported

# User properties of a report (pytest's documented ``user_properties``: they survive the
# trip from an xdist worker, and the test's go into JUnit).
INFRA_PROPERTY = "kheaders-infrastructure"  # why a failed test body is the harness's fault
KERNEL_PROPERTY = "kheaders-kernel-report"  # a set-up/teardown failure the kernel reported
# Faults of the machinery, whatever raised them (socket.timeout is TimeoutError).
INFRA_TYPES: tuple[type[BaseException], ...] = (
    InfraError, paramiko.SSHException, EOFError, ConnectionError, TimeoutError,
)


def infra_reason(exc: BaseException | None, vm_alive: bool | None) -> str | None:
    """Why a failing test body is the harness's fault, or None for a kernel verdict.

    ``vm_alive`` is None for a test without a VM. A test whose VM died under it while the
    kernel reported nothing lost its VM (QEMU killed, the host out of memory): an ERROR, even
    when what the test saw was a failed assertion on a half answer."""
    if exc is None or kernel_reported(exc):
        return None
    if isinstance(exc, INFRA_TYPES):
        return f"{type(exc).__name__}: {_first_line(exc)}"
    if isinstance(exc, AssertionError) and str(exc).startswith("kernel reported"):
        return None
    if vm_alive is False:
        return f"VM lost during the test ({type(exc).__name__}: {_first_line(exc)})"
    return None


def reported(properties: Iterable[tuple[str, object]], name: str) -> str | None:
    """The value of property ``name`` among a report's user properties, if set."""
    return next((str(value) for key, value in properties if key == name), None)


def kernel_reported(exc: BaseException | None) -> bool:
    """Whether ``exc`` is a kernel report or was raised from one: a boot that failed on what
    the kernel printed stays the kernel's, whatever wraps it (the plugin's BootFailed)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KernelReported):
            return True
        seen.add(id(exc))
        exc = exc.__cause__
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


def reproduce(nodeid: str, source_args: Sequence[str], arch: str, build_dir: Path | None,
              shell: Sequence[str] | None) -> str:
    """How to run this again by hand: the test alone, its build, the kernel with a shell."""
    test = nodeid.split("@")[0]  # xdist's --dist=loadgroup appends "@<group>"
    lines = [f"the test alone: {shlex.join(['pytest', test, *source_args, '--arch', arch])}"]
    lines.append(f"its build: {build_dir}" if build_dir else "its build: none (not built)")
    if shell:
        lines.append(f"the same kernel with a shell: {shlex.join(shell)}")
    return "\n".join(lines)


__all__ = ["INFRA_PROPERTY", "INFRA_TYPES", "KERNEL_PROPERTY", "infra_reason",
           "kernel_reported", "reported", "reproduce"]
