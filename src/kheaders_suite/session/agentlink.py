"""The host end of the guest agent (inguest/agent.py): one JSON line out, one back.

The Agent needs only a few calls of its SSH channel (``Channel``), so its unit tests drive it
over a fake channel, without a guest.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
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
MAX_LINE = 64 << 20
"""The longest reply line the host keeps (64 MiB: a file of 48 MiB in base64), which bounds
every string in a reply too. A guest that sends more without a newline is lost (VMLost
naming the cap), not buffered without end."""
# The fields of a reply, each with the one type it may have (inguest/agent.py writes them).
REPLY_FIELDS: dict[str, type] = {"id": int, "rc": int, "stdout": str, "stderr": str,
                                 "duration": float, "timed_out": bool}


class BadReply(VMLost):
    """The agent's channel sent what the agent never writes (a wrong type, another request's
    id, a line past MAX_LINE): the guest side of the harness broke, unless the kernel says
    otherwise (report/verdict.py)."""


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
            line = agent.readline(deadline)
        except (GuestTimeout, EOFError):
            chan.close()
            return None
        try:
            ready = json.loads(line)
        except (ValueError, RecursionError):  # not the agent (a shell's complaint): unused
            chan.close()
            return None
        try:
            _ready_pid(ready, line)
        except BadReply:
            chan.close()
            raise
        return agent

    def request(self, payload: dict[str, Any], seconds: float,
                lost: Lost = None) -> dict[str, Any]:
        self.next_id += 1
        self.chan.sendall((json.dumps({"id": self.next_id, **payload}) + "\n").encode())
        # The agent enforces ``seconds`` on commands itself; the margin covers its reply.
        line = self.readline(Deadline(seconds + AGENT_MARGIN), lost)
        return checked_reply(line, self.next_id)

    def read(self, path: str, seconds: float, lost: Lost = None) -> bytes:
        reply = self.request({"op": "read", "path": path}, seconds, lost)
        _raise_file_error(reply, path)
        return _decoded(reply, "stdout")

    def write(self, path: str, data: bytes, mode: int, seconds: float,
              lost: Lost = None) -> None:
        reply = self.request({"op": "write", "path": path, "mode": mode,
                              "data": base64.b64encode(data).decode()}, seconds, lost)
        _raise_file_error(reply, path)

    def kmsg(self, seconds: float, lost: Lost = None) -> str:
        """The kernel log records the guest has not handed over yet (raw /dev/kmsg)."""
        reply = self.request({"op": "kmsg"}, seconds, lost)
        _raise_file_error(reply, "/dev/kmsg")
        return _decoded(reply, "stdout").decode(errors="replace")

    def call(self, argv: tuple[str, ...], stdin: bytes | None, seconds: float,
             lost: Lost = None) -> CommandResult:
        reply = self.request({"argv": list(argv), "timeout": seconds,
                              "stdin": base64.b64encode(stdin).decode() if stdin else None},
                             seconds, lost)
        command = shlex.join(argv)
        if reply["timed_out"]:
            raise GuestTimeout(f"guest command exceeded {seconds:.0f}s: {command}")
        return CommandResult(command, reply["rc"],
                             _decoded(reply, "stdout").decode(errors="replace"),
                             _decoded(reply, "stderr").decode(errors="replace"),
                             reply["duration"])

    def readline(self, deadline: Deadline, lost: Lost = None) -> bytes:
        """The next line the agent sends; VMLost past MAX_LINE bytes without a newline.
        Each turn takes one read of each stream, so a flood cannot keep it from the deadline."""
        scanned = 0  # the buffer before this offset holds no newline
        while (end := self.buffer.find(b"\n", scanned)) < 0:
            scanned = len(self.buffer)
            if scanned > MAX_LINE:
                raise BadReply(f"agent reply: a line longer than {MAX_LINE >> 20} MiB "
                             "(MAX_LINE) with no newline")
            why = lost() if lost is not None else None
            if why is not None:
                raise VMLost(why)
            if deadline.expired:
                raise GuestTimeout(f"guest agent gave no answer within {deadline.seconds:.0f}s")
            if self.chan.recv_stderr_ready():
                self.chan.recv_stderr(65536)  # keep the window open; the agent logs nothing
            if self.chan.recv_ready():
                self.buffer += self.chan.recv(1 << 20)
                continue
            if self.chan.exit_status_ready() and not self.chan.recv_ready():
                raise EOFError("guest agent exited")
            select.select([self.chan], [], [], min(0.5, deadline.remaining))
        line = bytes(self.buffer[:end])
        del self.buffer[:end + 1]
        return line


def _ready_pid(ready: object, line: bytes) -> None:
    """BadReply unless the agent's first line is {"ready": <its pid>}."""
    if not isinstance(ready, dict) or "ready" not in ready:
        raise BadReply(f"agent ready line: {_kind(ready)} without 'ready', not "
                       f"{{\"ready\": <pid>}}: {line[:80]!r}")
    _field(ready, "ready", int, "agent ready line")


def checked_reply(line: bytes, request_id: int) -> dict[str, Any]:
    """The reply in ``line`` to request ``request_id``, each field of the type the agent
    writes; VMLost naming the first field that is not (the guest is not trusted)."""
    try:
        reply = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise BadReply(f"agent reply: not JSON ({exc}): {line[:80]!r}") from None
    if not isinstance(reply, dict):
        raise BadReply(f"agent reply: {_kind(reply)}, not object: {line[:80]!r}")
    for name, kind in REPLY_FIELDS.items():
        _field(reply, name, kind, "agent reply")
    if reply["id"] != request_id:
        raise BadReply(f"agent reply: 'id' is {reply['id']}, not {request_id} (the request's)")
    if not math.isfinite(reply["duration"]) or reply["duration"] < 0:
        raise BadReply(f"agent reply: 'duration' is {reply['duration']}, not a finite "
                     "number of seconds")
    return reply


def _field(reply: dict[str, Any], name: str, kind: type, what: str) -> None:
    """VMLost unless ``reply[name]`` is a ``kind`` (an int where a float goes; a bool is
    no int here)."""
    if name not in reply:
        raise BadReply(f"{what}: {name!r} missing")
    value = reply[name]
    kinds = (int, float) if kind is float else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and kind is not bool):
        raise BadReply(f"{what}: {name!r} is {_kind(value)}, not {kind.__name__}")


def _kind(value: object) -> str:
    """The JSON-ish name of ``value``'s type, as a message names it."""
    names = {dict: "object", list: "list", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _decoded(reply: dict[str, Any], name: str) -> bytes:
    """The bytes of a base64 field; VMLost naming it if it is not base64."""
    try:
        return base64.b64decode(reply[name], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadReply(f"agent reply: {name!r} is not base64 ({exc})") from None


def _raise_file_error(reply: dict[str, Any], path: str) -> None:
    if reply["rc"] != 0:
        message = _decoded(reply, "stderr").decode(errors="replace")
        raise OSError(reply["rc"], f"in the guest: {message}", path)
