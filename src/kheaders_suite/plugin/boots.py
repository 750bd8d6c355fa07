"""One target's VM across its tests: booted on first use, booted again when a test lost it,
never booted again once a boot failed.

A boot that failed once fails every later user at once with the original cause, as
labgrid's strategies do, instead of booting (minutes under TCG) and failing again for each
test. A VM lost under a test (QEMU killed, a panic, a hang closed) is not a failed boot: the
next user gets a fresh one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import pytest

from kheaders_suite.errors import InfraError, KernelFault
from kheaders_suite.records import KernelBuild
from kheaders_suite.report.verdict import kernel_fault
from kheaders_suite.session import steps
from kheaders_suite.session.guest import Guest
from kheaders_suite.session.kernellog import KernelReported


class BootFailed(InfraError):
    """A target's boot failed: raised for its first user and for every later one, chained to
    the original cause. The first line names the cause's type and first line, so each user's
    report says the same thing and patch CI still tells a kernel report at boot
    ("KernelReported: kernel reported ...") from a VM that did not come up."""

    def __init__(self, target: str, cause: BaseException) -> None:
        lines = str(cause).strip().splitlines() or ["(no message)"]
        super().__init__(f"the boot of {target} failed: {type(cause).__name__}: {lines[0]}")
        self.target = target


class ArchiveSetupFailed(KernelFault):
    """The variant's set-up (modprobe kheaders, the debugfs mount) failed on the kernel's
    account for an earlier test of the target: every later test that needs the archive
    fails at once with that cause, instead of loading a broken module (and, for one that
    hangs, waiting for the hang detector) once per test."""

    def __init__(self, target: str, first: str, cause: BaseException) -> None:
        lines = str(cause).strip().splitlines() or ["(no message)"]
        super().__init__(f"not run: the set-up of {target}'s archive failed in {first}: "
                         f"{type(cause).__name__}: {lines[0]}")


class BootState:
    """The VM of one target, held by the session fixture ``guest_boot``.

    ``start`` boots a guest and returns it once it answers (or raises); ``say`` prints a
    progress line."""

    def __init__(self, target: str, start: Callable[[], Guest],
                 say: Callable[[str], None]) -> None:
        self.target = target
        self._start = start
        self._say = say
        self._current: Guest | None = None
        self._cause: Exception | None = None  # the first failed boot's exception
        self._archive_failure: tuple[str, BaseException] | None = None

    @property
    def current(self) -> Guest | None:
        """The guest handed out last, alive or not; None before a boot and after close."""
        return self._current

    def guest(self, user: str) -> Guest:
        """The target's guest for ``user`` (a test or fixture name): the running one, a
        fresh one when the previous VM was lost, or BootFailed once a boot failed."""
        __tracebackhide__ = True
        if self._cause is not None:
            raise BootFailed(self.target, self._cause) from self._cause
        if self._current is not None:
            if self._current.vm.alive():
                return self._current
            self._say(f"{user}: the previous test lost its VM; booting a new one")
            self.close()
        try:
            self._current = self._start()
        except Exception as exc:  # not BaseException: an interrupted boot is no verdict
            self._cause = exc
            raise BootFailed(self.target, exc) from exc
        return self._current

    @contextmanager
    def archive(self, user: str, g: Guest, build: KernelBuild) -> Iterator[str]:
        """The variant's archive made present for ``user`` (steps.archive_present), then
        removed. Once its set-up failed on the kernel's account, every later user fails at
        once with that cause (ArchiveSetupFailed)."""
        __tracebackhide__ = True
        if self._archive_failure is not None:
            first, cause = self._archive_failure
            raise ArchiveSetupFailed(self.target, first, cause) from cause
        with ExitStack() as stack:
            try:
                path = stack.enter_context(steps.archive_present(g, build))
            except Exception as exc:
                blamed = self._blame(user, exc, g)
                if blamed is exc:
                    raise
                raise blamed from exc
            yield path

    def _blame(self, user: str, exc: Exception, g: Guest) -> Exception:
        """What a failed set-up is: the kernel's report when the kernel took the guest down
        under it (a panic, a hang detector), remembered with any other kernel fault."""
        if kernel_fault(exc) is None and g.vm.kernel_down():
            scan = g.scan_kernel_log(f"the set-up of {user}")
            if scan.reports:
                exc = KernelReported(scan)
        if kernel_fault(exc) is not None:
            self._archive_failure = (user, exc)
        return exc

    def close(self) -> None:
        """Close the current guest (QEMU and SSH), if any."""
        g, self._current = self._current, None
        if g is not None:
            g.close()


def guest_of(item: pytest.Item, *, alive_only: bool = True) -> Guest | None:
    """The guest ``item`` uses, booting nothing: its ``guest`` fixture, or, when only
    session fixtures talked to the guest (the archive checks), the target's current guest
    while it runs. A VM lost before such a test is no part of its verdict: the test asked
    for no guest of its own, so it gets none, and no blame for a dead one. ``alive_only``
    False: the target's current guest alive or not (after a failure, its console has the
    rest of what the kernel said)."""
    funcargs = item.funcargs if isinstance(item, pytest.Function) else {}
    g = funcargs.get("guest")
    if isinstance(g, Guest):
        return g
    state = funcargs.get("guest_boot")
    current = state.current if isinstance(state, BootState) else None
    return current if current is not None and (current.vm.alive() or not alive_only) else None


def raise_if_reported(g: Guest | None, phase: str) -> None:
    """A kernel report outside a test body errors the test (KernelReported)."""
    if g is not None:
        scan = g.scan_kernel_log(phase)
        if scan.reports:
            raise KernelReported(scan)
