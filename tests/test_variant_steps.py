"""A variant's guest steps (steps.archive_present) on a guest whose agent is a fake: what
runs before and after the archive is used, and which steps a probe skips."""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path

import pytest

from kheaders_suite.errors import InfraError, KernelInterfaceFailed
from kheaders_suite.host.deadline import Deadline
from kheaders_suite.session import steps
from kheaders_suite.session.agentlink import Agent
from kheaders_suite.session.guest import Guest

from .fakeguest import FakeChannel, FakeVM, reply, ssh_client
from .test_vm import fake_build

MOUNTPOINT = ["mountpoint", "-q", "/sys/kernel/debug"]


def guest_where(tmp_path: Path, failing: list[list[str]]) -> tuple[Guest, FakeChannel]:
    """A guest on which the commands in ``failing`` exit 1 and every other one succeeds."""
    chan = FakeChannel(lambda r: reply(r, rc=1 if r["argv"] in failing else 0))
    guest = Guest(FakeVM(tmp_path / "console.log").typed(), ssh_client(chan)[1], 1.0)
    guest.agent = Agent.ready(chan, Deadline(1.0))
    return guest, chan


def ran(chan: FakeChannel) -> list[list[str]]:
    return [r["argv"] for r in chan.requests]


def test_module_is_loaded_from_the_builds_modules_and_unloaded_after_a_failure(
        tmp_path: Path) -> None:
    build = replace(fake_build(), variant="module", modroot=Path("/c/builds/b/modroot"))
    guest, chan = guest_where(tmp_path, [])
    during: list[tuple[str, list[list[str]]]] = []

    def failing_test() -> None:
        with steps.archive_present(guest, build) as path:
            during.append((path, ran(chan)))
            raise AssertionError("the test failed")

    with pytest.raises(AssertionError, match="the test failed"):
        failing_test()
    load = ["modprobe", "-d", "/c/builds/b/modroot", "kheaders"]
    assert during == [("/sys/kernel/kheaders.tar.xz", [load])]
    assert ran(chan) == [load, ["modprobe", "-r", "-d", "/c/builds/b/modroot", "kheaders"]]


@pytest.mark.parametrize(("mounted", "mounts"), [(True, []), (False, [
    ["mount", "-t", "debugfs", "-o", "mode=0755", "debugfs", "/sys/kernel/debug"]])])
def test_a_step_is_skipped_when_its_probe_succeeds(tmp_path: Path, mounted: bool,
                                                   mounts: list[list[str]]) -> None:
    guest, chan = guest_where(tmp_path, [] if mounted else [MOUNTPOINT])
    with steps.archive_present(guest, replace(fake_build(), variant="debugfs")):
        pass
    assert ran(chan) == [MOUNTPOINT, *mounts,
                         ["mount", "-o", "remount,mode=0755", "/sys/kernel/debug"],
                         ["umount", "/sys/kernel/debug"]]


def test_a_failing_setup_step_is_the_kernels_failure(tmp_path: Path) -> None:
    """modprobe kheaders failing is kheaders.ko's init failing: the kernel's interface, a
    FAIL naming the step and what the kernel said, never a harness ERROR."""
    step = ["modprobe", "-d", "/m", "kheaders"]
    said = "modprobe: ERROR: could not insert 'kheaders': Cannot allocate memory"
    encoded = base64.b64encode(said.encode()).decode()
    chan = FakeChannel(lambda r: reply(r, rc=1, stderr=encoded) if r.get("argv") == step
                       else reply(r))
    guest = Guest(FakeVM(tmp_path / "console.log").typed(), ssh_client(chan)[1], 1.0)
    guest.agent = Agent.ready(chan, Deadline(1.0))
    build = replace(fake_build(), variant="module", modroot=Path("/m"))
    with pytest.raises(KernelInterfaceFailed) as info, steps.archive_present(guest, build):
        pass
    assert str(info.value).splitlines()[0] == (
        f"kernel interface failed: modprobe -d /m kheaders (exit 1): {said}")
    assert not isinstance(info.value, InfraError)


def test_an_archive_the_kernel_does_not_serve_is_the_kernels_failure(tmp_path: Path) -> None:
    said = base64.b64encode(b"No such file or directory").decode()
    chan = FakeChannel(lambda r: reply(r, rc=2, stderr=said))
    guest = Guest(FakeVM(tmp_path / "console.log").typed(), ssh_client(chan)[1], 1.0)
    guest.agent = Agent.ready(chan, Deadline(1.0))
    with pytest.raises(KernelInterfaceFailed, match=r"kernel interface failed: reading "
                                                    r"/sys/kernel/kheaders\.tar\.xz"):
        steps.served_archive(guest, "/sys/kernel/kheaders.tar.xz")
