"""The host end of the guest agent (inguest/agent.py): one JSON line out, one back.

The Agent needs only a few calls of its SSH channel (``Channel``), so its unit tests drive it
over a fake channel, without a guest.
"""

from __future__ import annotations

import base64
import json
import select
import shlex
from collections.abc import Callable
from typing import Any, Protocol

import paramiko

from kheaders_suite import inguest
from kheaders_suite.errors import GuestTimeout, VMLost
from kheaders_suite.host.deadline import Deadline
from kheaders_suite.records import CommandResult

# Seconds the host waits past a command's own timeout for the agent's reply.
AGENT_MARGIN = 30.0
# Asked while waiting on the guest: None while its VM can answer, else why not.
Lost = Callable[[], "str | None"] | None

# What the agent's commands see, whatever the host user's dotfiles say: an x86_64 guest shares
# the host's root, and sshd runs every channel through root's bash, which sources ~/.bashrc.
# On these machines that runs `pyenv init` (~2.5 s under TCG) and puts pyenv's shims first in
# PATH, so a bare `python3` cost another 3 s and was pyenv's interpreter, not Debian's.
AGENT_ENV = ("PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LC_ALL=C")
GUEST_PYTHON = "/usr/bin/python3"


def agent_command(source: bytes) -> tuple[str, ...]:
    """The agent started with a clean environment, its source inline (no SFTP channel to
    upload it first), and -S: no site-packages scan; it needs only the standard library."""
    return ("env", "-i", *AGENT_ENV, GUEST_PYTHON, "-S", "-u", "-c", source.decode())


SEND_TIMEOUT = 120.0  # seconds under KVM for one request to leave; scaled like the rest


class Channel(Protocol):
    """What the Agent uses of a paramiko Channel (``fileno`` for select)."""

    def recv_ready(self) -> bool: ...
    def recv(self, nbytes: int, /) -> bytes: ...
    def recv_stderr_ready(self) -> bool: ...
    def recv_stderr(self, nbytes: int, /) -> bytes: ...
    def exit_status_ready(self) -> bool: ...
    def sendall(self, data: bytes, /) -> None: ...
    def fileno(self) -> int: ...
    def close(self) -> None: ...


class Agent:
    """Requests to the guest agent over one channel, each answered by one reply line."""

    def __init__(self, chan: Channel) -> None:
        self.chan = chan
        self.buffer = bytearray()
        self.next_id = 0

    @classmethod
    def start(cls, client: paramiko.SSHClient, deadline: Deadline) -> Agent | None:
        transport = client.get_transport()
        if transport is None:
            return None
        chan = transport.open_session(timeout=deadline.remaining)
        # A bound on sendall: a guest that stops reading (hung, or its window never opens)
        # raises socket.timeout instead of blocking the run forever. Reads never block: the
        # agent reads only what recv_ready() says is there.
        chan.settimeout(SEND_TIMEOUT * max(1.0, deadline.seconds / 60.0))
        chan.exec_command(shlex.join(agent_command(inguest.source("agent.py"))))
        return cls.ready(chan, deadline)

    @classmethod
    def ready(cls, chan: Channel, deadline: Deadline) -> Agent | None:
        """The agent on ``chan`` once it says it is ready; None (channel closed) if it
        does not say so by ``deadline``."""
        agent = cls(chan)
        try:
            ready = json.loads(agent.readline(deadline))
        except (GuestTimeout, ValueError, EOFError):
            chan.close()
            return None
        return agent if "ready" in ready else None

    def request(self, payload: dict[str, Any], seconds: float,
                lost: Lost = None) -> dict[str, Any]:
        self.next_id += 1
        self.chan.sendall((json.dumps({"id": self.next_id, **payload}) + "\n").encode())
        # The agent enforces ``seconds`` on commands itself; the margin covers its reply.
        line = self.readline(Deadline(seconds + AGENT_MARGIN), lost)
        reply: dict[str, Any] = json.loads(line)
        return reply

    def read(self, path: str, seconds: float, lost: Lost = None) -> bytes:
        reply = self.request({"op": "read", "path": path}, seconds, lost)
        _raise_file_error(reply, path)
        return base64.b64decode(reply["stdout"])

    def write(self, path: str, data: bytes, mode: int, seconds: float,
              lost: Lost = None) -> None:
        reply = self.request({"op": "write", "path": path, "mode": mode,
                              "data": base64.b64encode(data).decode()}, seconds, lost)
        _raise_file_error(reply, path)

    def kmsg(self, seconds: float, lost: Lost = None) -> str:
        """The kernel log records the guest has not handed over yet (raw /dev/kmsg)."""
        reply = self.request({"op": "kmsg"}, seconds, lost)
        _raise_file_error(reply, "/dev/kmsg")
        return base64.b64decode(reply["stdout"]).decode(errors="replace")

    def call(self, argv: tuple[str, ...], stdin: bytes | None, seconds: float,
             lost: Lost = None) -> CommandResult:
        reply = self.request({"argv": list(argv), "timeout": seconds,
                              "stdin": base64.b64encode(stdin).decode() if stdin else None},
                             seconds, lost)
        command = shlex.join(argv)
        if reply["timed_out"]:
            raise GuestTimeout(f"guest command exceeded {seconds:.0f}s: {command}")
        return CommandResult(command, int(reply["rc"]),
                             base64.b64decode(reply["stdout"]).decode(errors="replace"),
                             base64.b64decode(reply["stderr"]).decode(errors="replace"),
                             float(reply["duration"]))

    def readline(self, deadline: Deadline, lost: Lost = None) -> bytes:
        while b"\n" not in self.buffer:
            why = lost() if lost is not None else None
            if why is not None:
                raise VMLost(why)
            if self.chan.recv_ready():
                self.buffer += self.chan.recv(1 << 20)
                continue
            while self.chan.recv_stderr_ready():
                self.chan.recv_stderr(65536)  # keep the window open; the agent logs nothing
            if self.chan.exit_status_ready() and not self.chan.recv_ready():
                raise EOFError("guest agent exited")
            if deadline.expired:
                raise GuestTimeout(f"guest agent gave no answer within {deadline.seconds:.0f}s")
            select.select([self.chan], [], [], min(0.5, deadline.remaining))
        line, _, rest = bytes(self.buffer).partition(b"\n")
        self.buffer = bytearray(rest)
        return line


def _raise_file_error(reply: dict[str, Any], path: str) -> None:
    if reply["rc"] != 0:
        message = base64.b64decode(reply["stderr"]).decode(errors="replace")
        raise OSError(int(reply["rc"]), f"in the guest: {message}", path)
