"""The host end of the agent protocol (agentlink.py) over a fake channel: requests, replies
split or run together, and every way a wait ends (reply, timeout, agent exit, VM lost)."""

from __future__ import annotations

import base64
import errno
import json
import time
from pathlib import Path
from typing import Any

import pytest

from kheaders_suite.errors import GuestTimeout, VMLost
from kheaders_suite.host.deadline import Deadline
from kheaders_suite.session.agentlink import SEND_TIMEOUT, Agent

from .fakeguest import FakeChannel, reply, ssh_client


def started(chan: FakeChannel) -> Agent:
    agent = Agent.ready(chan, Deadline(5.0))
    assert agent is not None
    return agent


def test_commands_and_files_round_trip_through_the_real_agent(tmp_path: Path) -> None:
    chan = FakeChannel()
    agent = started(chan)
    result = agent.call(("sh", "-c", "cat; echo err >&2; exit 3"), b"in\n", 10.0)
    assert (result.rc, result.stdout, result.stderr) == (3, "in\n", "err\n")
    assert result.command == "sh -c 'cat; echo err >&2; exit 3'"
    agent.write(str(tmp_path / "f"), b"\x00data", 0o600, 10.0)
    assert agent.read(str(tmp_path / "f"), 10.0) == b"\x00data"
    with pytest.raises(OSError, match="in the guest") as info:
        agent.read(str(tmp_path / "missing"), 10.0)
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == str(tmp_path / "missing")
    assert [r["id"] for r in chan.requests] == [1, 2, 3, 4]


def test_a_reply_split_over_reads_and_two_in_one_read() -> None:
    def twice(request: dict[str, Any]) -> bytes:
        out = base64.b64encode(b"x" * 100).decode()
        return reply(request, stdout=out) + reply({"id": 99}, rc=7)

    chan = FakeChannel(twice, chunk=7)
    agent = started(chan)
    assert agent.call(("true",), None, 5.0).stdout == "x" * 100
    assert json.loads(agent.readline(Deadline(1.0)))["rc"] == 7  # the second, kept back


def test_a_timed_out_command_is_a_guest_timeout() -> None:
    agent = started(FakeChannel(lambda r: reply(r, rc=-9, timed_out=True)))
    with pytest.raises(GuestTimeout, match="exceeded 5s: sleep 60"):
        agent.call(("sleep", "60"), None, 5.0)


def test_no_reply_by_the_deadline_is_a_guest_timeout_and_stderr_is_drained() -> None:
    chan = FakeChannel(lambda r: b"")
    agent = started(chan)
    chan.stderr += b"noise" * 1000
    start = time.monotonic()
    with pytest.raises(GuestTimeout, match="no answer within 0s"):
        agent.readline(Deadline(0.3))
    assert time.monotonic() - start < 2.0
    assert not chan.stderr


def test_the_agent_exiting_ends_the_wait() -> None:
    chan = FakeChannel(lambda r: b"")
    agent = started(chan)
    chan.exited = True
    with pytest.raises(EOFError, match="agent exited"):
        agent.call(("true",), None, 60.0)


def test_a_lost_vm_ends_the_wait_before_the_deadline() -> None:
    agent = started(FakeChannel(lambda r: b""))
    start = time.monotonic()
    with pytest.raises(VMLost, match="kernel panicked"):
        agent.call(("true",), None, 60.0, lost=lambda: "VM lost: the guest kernel panicked")
    assert time.monotonic() - start < 2.0


def test_an_agent_that_says_something_else_is_lost() -> None:
    chan = FakeChannel(greeting=b'{"hello": 1}\n')
    with pytest.raises(VMLost, match="agent ready line: object without 'ready'"):
        Agent.ready(chan, Deadline(1.0))
    assert chan.closed


@pytest.mark.parametrize(("greeting", "exited"), [
    (b"bash: /usr/bin/python3: No such file or directory\n", False),
    (b"", True),  # the agent died at once
])
def test_an_agent_that_never_says_ready_is_closed(greeting: bytes, exited: bool) -> None:
    chan = FakeChannel(greeting=greeting)
    chan.exited = exited
    assert Agent.ready(chan, Deadline(1.0)) is None
    assert chan.closed


def test_start_bounds_every_send_to_the_guest() -> None:
    """A guest that stops reading must not block sendall forever: the channel gets a timeout
    (paramiko's sendall raises socket.timeout past it), scaled like the other deadlines."""
    chan = FakeChannel()
    _, typed = ssh_client(chan)
    agent = Agent.start(typed, Deadline(300.0))  # 60 s x a TCG scale of 5
    assert agent is not None
    assert chan.timeout == SEND_TIMEOUT * 5
