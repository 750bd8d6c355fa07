"""Around each test's phases: what the kernel printed during set-up, body and teardown, a
hung guest closed, and what a failing report carries (the blame, the VM's console tail, how
to reproduce it by hand)."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from kheaders_suite.boot import console
from kheaders_suite.boot.vm import shell_command
from kheaders_suite.errors import GuestTimeout
from kheaders_suite.plugin.boots import guest_of
from kheaders_suite.plugin.context import SETTINGS, progress, target_of
from kheaders_suite.records import KernelBuild
from kheaders_suite.report import verdict
from kheaders_suite.session.guest import Guest
from kheaders_suite.session.kernellog import KernelReported

KERNEL_REPORTED = pytest.StashKey[bool]()  # on an item: its body's failure is a kernel report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    """After the fixtures (a lost VM is replaced by the guest fixture): what the kernel
    printed while they ran (modprobe, mounts), read even when a fixture failed: a fixture
    that lost its VM to a panic or a hang fails on the kernel's report, not on the loss."""
    __tracebackhide__ = True  # a fixture's failure passes through: its frames tell the story
    failure: BaseException | None = None
    try:
        result = yield
    except BaseException as exc:
        failure = exc
    reported_after(item, f"the set-up of {item.name}", failure)
    if failure is not None:
        raise failure
    return result


def reported_after(item: pytest.Item, phase: str, failure: BaseException | None,
                   g: Guest | None = None) -> None:
    """KernelReported (chained to ``failure``) when the kernel printed a report during
    ``phase``; a guest that hung is closed, so the next user boots a new one. ``g``: the
    guest to read (default: the item's, alive or not after a failure)."""
    __tracebackhide__ = True
    if g is None:
        g = guest_of(item, alive_only=failure is None)
    if g is None:
        return
    scan = g.scan_kernel_log(phase)
    if scan.reports:
        if not g.vm.alive():
            g.vm.close()  # hung or panicked: BootState boots a fresh one for the next test
        raise KernelReported(scan) from failure


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """After every VM test, what the kernel printed during it: a BUG/WARNING/Oops/panic fails
    the test, and outranks whatever the test body raised (a panic loses the VM)."""
    failure: BaseException | None = None
    try:
        result = yield
    except BaseException as exc:
        failure = exc
    g = guest_of(item, alive_only=failure is None)
    if g is not None:
        scan = g.scan_kernel_log(item.name)
        if scan.reports:
            item.stash[KERNEL_REPORTED] = True
            if not g.vm.alive():
                g.vm.close()  # hung or panicked: the next test of the target boots anew
            raise AssertionError(scan.describe()) from failure
    if isinstance(failure, GuestTimeout) and g is not None and g.vm.alive() \
            and not g.responsive():
        progress(item.config, f"{item.name}: the guest hangs; closing it")
        g.vm.close()  # the next test of the target boots a new one (BootState)
    if failure is not None:
        raise failure
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item,
                            nextitem: pytest.Item | None) -> Generator[None, object, object]:
    """After the teardown (rmmod, umount; the guest's close after a target's last test):
    read from the console when the VM is gone by then."""
    __tracebackhide__ = True
    # The target's last teardown closes its guest: read that guest's console afterwards.
    before = guest_of(item, alive_only=False)
    failure: BaseException | None = None
    try:
        result = yield
    except BaseException as exc:
        failure = exc
    reported_after(item, f"the teardown of {item.name}", failure, before)
    if failure is not None:
        raise failure
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Mark infrastructure faults in a test body (verdict.py), and attach the VM's console
    tail and how to reproduce it by hand to every failing or erroring test."""
    report: pytest.TestReport = yield
    if not report.failed:
        return report
    g = guest_of(item)
    exc = call.excinfo.value if call.excinfo is not None else None
    fault = verdict.kernel_fault(exc)
    if fault is not None and exc is not None:
        said = verdict.kernel_said(exc, fault)
        report.user_properties.append((verdict.KERNEL_PROPERTY, said))
        if call.when != "call":  # JUnit: this set-up or teardown <error> is a <failure>
            item.user_properties.append((verdict.KERNEL_PROPERTY, said))
    if call.when == "call" and not item.stash.get(KERNEL_REPORTED, False):
        reason = verdict.infra_reason(exc, g.vm.alive() if g is not None else None)
        if reason:
            report.user_properties.append((verdict.INFRA_PROPERTY, reason))
            # The item's properties go into the JUnit file (with the teardown's report),
            # where junit.py makes this <failure> the <error> it is.
            item.user_properties.append((verdict.INFRA_PROPERTY, reason))
    if g is not None:
        report.sections.append(("VM console (tail)",
                                f"{g.vm.console}\n{console.tail(g.vm.own_console(), 60)}"))
    how = reproduce_text(item, g)
    if how:
        report.sections.append(("reproduce by hand", how))
    return report


def reproduce_text(item: pytest.Item, g: Guest | None) -> str | None:
    t = target_of(item)
    if t is None:
        return None
    s = item.config.stash[SETTINGS]
    source = (["--kernel-src", str(s.kernel_src)] if s.kernel_src
              else ["--kernel-package", s.kernel_package])
    build = item.funcargs.get("kernel_build") if isinstance(item, pytest.Function) else None
    build_dir = build.dir if isinstance(build, KernelBuild) else None
    shell = shell_command(g.vm.spec, "vng") if g is not None else None
    return verdict.reproduce(item.nodeid, source, t.arch, build_dir, shell)
