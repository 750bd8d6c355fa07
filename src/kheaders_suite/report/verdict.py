"""Who is to blame for a failing test: the kernel (FAIL) or the harness (ERROR).

The rule, wherever the failure shows (boot, set-up, body, teardown):

| what happened                                                        | verdict |
|----------------------------------------------------------------------|---------|
| the kernel printed a report: panic, Oops, BUG, WARNING, general      | FAIL    |
| protection fault, "Unable to handle kernel", KASAN, lockdep, UBSAN,  |         |
| atomic sleep, hung task, soft or hard lockup, RCU stall; also when   |         |
| the VM died of it (read from the console)                            |         |
| the kernel's own interface failed: kheaders.ko does not load or      | FAIL    |
| unload, the debugfs mount fails, the archive is missing or unreadable|         |
| a check on the archive or the kernel's behaviour failed              | FAIL    |
| a guest command timed out and the console shows a lockup, hung-task  | FAIL    |
| or stall report                                                      |         |
| a guest command timed out and the kernel said nothing                | ERROR   |
| QEMU did not start or was killed, SSH never answered while the       | ERROR   |
| console shows a healthy kernel, the host ran out of disk, a harness  |         |
| step in the guest (mkdir, tar, a scratch mount) failed               |         |

A kernel fault is ``errors.KernelFault`` (``kernellog.KernelReported`` for a report,
``errors.KernelInterfaceFailed`` for the interface), found anywhere in the exception's chain.

pytest knows ERROR only for set-up and teardown, and FAIL only for the body. An
infrastructure fault inside a body is marked as a user property of its report and its test
(``INFRA_PROPERTY``), shown as ERROR and written to JUnit as <error>; a kernel fault in set-up
or teardown is marked ``KERNEL_PROPERTY``, shown as FAILED and written to JUnit as <failure>
whose message starts with "kernel: ".
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path

import paramiko

from kheaders_suite.errors import InfraError, KernelFault

# User properties of a report (pytest's documented ``user_properties``: they survive the
# trip from an xdist worker, and the test's go into JUnit).
INFRA_PROPERTY = "kheaders-infrastructure"  # why a failed test body is the harness's fault
KERNEL_PROPERTY = "kheaders-kernel-report"  # a set-up/teardown failure that is the kernel's
# Faults of the machinery, whatever raised them (socket.timeout is TimeoutError).
INFRA_TYPES: tuple[type[BaseException], ...] = (
    InfraError, paramiko.SSHException, EOFError, ConnectionError, TimeoutError,
)


def infra_reason(exc: BaseException | None, vm_alive: bool | None) -> str | None:
    """Why a failing test body is the harness's fault, or None for a kernel verdict.

    ``vm_alive`` is None for a test without a VM. A test whose VM died under it while the
    kernel reported nothing lost its VM (QEMU killed, the host out of memory): an ERROR, even
    when what the test saw was a failed assertion on a half answer."""
    if exc is None or kernel_fault(exc):
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


def kernel_fault(exc: BaseException | None) -> KernelFault | None:
    """The kernel fault ``exc`` is or was raised from: a boot that failed on what the kernel
    printed stays the kernel's, whatever wraps it (the plugin's BootFailed)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KernelFault):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__
    return None


# Characters of a kernel fault kept in its report's property (and so in JUnit): the first
# line of what raised it, then the kernel's reports (find_reports caps each at 40 lines).
KERNEL_SAID_MAX = 8000


def kernel_said(exc: BaseException, fault: KernelFault) -> str:
    """What a failure that is the kernel's says, for its report and JUnit: the first line of
    ``exc`` (which names the phase: "BootFailed: the boot of x86_64-sysfs failed: ..."),
    then, when ``exc`` wraps ``fault``, the fault's whole text (the panic's lines)."""
    if exc is fault:
        text = f"{type(exc).__name__}: {str(exc).strip()}"
    else:
        text = f"{type(exc).__name__}: {_first_line(exc)}\n{str(fault).strip()}"
    return text[:KERNEL_SAID_MAX]


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
           "kernel_fault", "kernel_said", "reported", "reproduce"]
