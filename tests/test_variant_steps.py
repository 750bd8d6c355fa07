"""A variant's guest steps (steps.archive_present) on a guest whose agent is a fake: what
runs before and after the archive is used, and which steps a probe skips."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from kheaders_suite.errors import GuestStepFailed
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


def test_a_failing_setup_step_is_a_harness_error(tmp_path: Path) -> None:
    step = ["modprobe", "-d", "", "kheaders"]  # no modroot: the build installed no modules
    guest, _chan = guest_where(tmp_path, [step])
    with pytest.raises(GuestStepFailed, match="harness step failed in the guest"), \
            steps.archive_present(guest, replace(fake_build(), variant="module")):
        pass
