"""Stand-ins for what a booted guest gives the host: a VM (its process and console), an SSH
client, and the channel to the guest agent, so boot.py and agentlink.py run without QEMU.

By default the fake channel answers each request with the real agent's handling
(inguest/agent.py, on this host); a test injects failures with its own ``answer``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import paramiko

from kheaders_suite.boot.accel import Accel
from kheaders_suite.boot.vm import VM, VMSpec
from kheaders_suite.catalog import arches
from kheaders_suite.inguest import agent

from .test_vm import fake_build

Answer = Callable[[dict[str, Any]], bytes]
READY = b'{"ready": 4242}\n'
# select() in the Agent needs a descriptor: the read end of a pipe nothing is written to (the
# write end stays open, so it never reads as EOF either).
_IDLE_READ, _IDLE_WRITE = os.pipe()


def agent_answer(request: dict[str, Any]) -> bytes:
    """What inguest/agent.py prints for ``request``."""
    return (json.dumps(agent.handle(request)) + "\n").encode()


def reply(request: dict[str, Any], **fields: Any) -> bytes:
    """A command reply to ``request``: rc 0, empty output, unless ``fields`` say otherwise."""
    base = {"id": request["id"], "rc": 0, "stdout": "", "stderr": "", "duration": 0.01,
            "timed_out": False}
    return (json.dumps({**base, **fields}) + "\n").encode()


class FakeChannel:
    """The agent's SSH channel: each line sent is a request, answered at once by ``answer``
    (b"": never). ``chunk`` bounds one recv, to split replies the way a network does."""

    def __init__(self, answer: Answer = agent_answer, greeting: bytes = READY,
                 chunk: int = 1 << 20) -> None:
        self.answer, self.chunk = answer, chunk
        self.incoming = bytearray(greeting)
        self.stderr = bytearray()
        self.requests: list[dict[str, Any]] = []
        self.exited = self.closed = False
        self.command = ""
        self.timeout: float | None = None  # what settimeout set: bounds a blocking sendall

    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout

    def exec_command(self, command: str) -> None:
        self.command = command

    def recv_ready(self) -> bool:
        return bool(self.incoming)

    def recv(self, nbytes: int, /) -> bytes:
        data = bytes(self.incoming[:min(nbytes, self.chunk)])
        del self.incoming[:len(data)]
        return data

    def recv_stderr_ready(self) -> bool:
        return bool(self.stderr)

    def recv_stderr(self, nbytes: int, /) -> bytes:
        data = bytes(self.stderr[:nbytes])
        del self.stderr[:len(data)]
        return data

    def exit_status_ready(self) -> bool:
        return self.exited

    def sendall(self, data: bytes, /) -> None:
        for line in data.splitlines():
            request = json.loads(line)
            self.requests.append(request)
            self.incoming += self.answer(request)

    def fileno(self) -> int:
        return _IDLE_READ

    def close(self) -> None:
        self.closed = True


class FloodChannel(FakeChannel):
    """A channel whose guest sends ``fill`` on ``streams`` ("stdout", "stderr" or both)
    without end, or until ``limit`` bytes, then exits 0: what a hostile guest can do."""

    def __init__(self, fill: bytes = b"x", limit: int | None = None,
                 streams: tuple[str, ...] = ("stdout",)) -> None:
        super().__init__(greeting=b"")
        self.fill, self.limit, self.streams = fill, limit, streams
        self.sent = 0  # bytes handed to the host so far
        self.eof_received = False

    def more(self) -> bool:
        return self.limit is None or self.sent < self.limit

    def recv_ready(self) -> bool:
        return "stdout" in self.streams and self.more()

    def recv(self, nbytes: int, /) -> bytes:
        size = nbytes if self.limit is None else min(nbytes, self.limit - self.sent)
        self.sent += size
        self.exited = self.eof_received = not self.more()
        return (self.fill * (size // len(self.fill) + 1))[:size]

    def recv_stderr_ready(self) -> bool:
        return "stderr" in self.streams and self.more()

    def recv_stderr(self, nbytes: int, /) -> bytes:
        return self.recv(nbytes)

    def sendall(self, data: bytes, /) -> None:
        pass

    def shutdown_write(self) -> None:
        pass

    def recv_exit_status(self) -> int:
        return 0


class StalledSFTP(FakeChannel):
    """An SFTP channel whose server never answers: paramiko raises socket.timeout (a
    TimeoutError) once the channel's timeout passes, here at once."""

    def invoke_subsystem(self, name: str) -> None:
        raise TimeoutError(f"{name}: no answer within the channel's {self.timeout}s")


class FakeTransport:
    def __init__(self, chan: FakeChannel) -> None:
        self.chan = chan
        self.open_timeouts: list[float | None] = []  # what each open_session waited at most

    def is_active(self) -> bool:
        return True

    def open_session(self, timeout: float | None = None) -> FakeChannel:
        self.open_timeouts.append(timeout)
        return self.chan


class FakeClient:
    """An authenticated SSH session whose one channel is ``chan``."""

    def __init__(self, chan: FakeChannel) -> None:
        self.transport = FakeTransport(chan)
        self.closed = False

    def get_transport(self) -> FakeTransport:
        return self.transport

    def open_sftp(self) -> None:
        """paramiko's waits an hour for the channel and without end for the server."""
        raise AssertionError("open_sftp: an SFTP session without a timeout")

    def close(self) -> None:
        self.closed = True


def ssh_client(chan: FakeChannel) -> tuple[FakeClient, paramiko.SSHClient]:
    """The fake client, and the same typed as what boot.connect's ``open_ssh`` returns."""
    client = FakeClient(chan)
    return client, cast(paramiko.SSHClient, client)


class FakeVM:
    """A VM whose QEMU runs until ``up`` is cleared and whose console is ``console_lines``."""

    def __init__(self, console: Path, arch: str = "x86_64", port: int = 2222) -> None:
        self.spec = VMSpec(build=fake_build(arch), arch=arches.get(arch),
                           accel=Accel("tcg", "test"), port=port)
        self.console = console
        self.console_lines = ["virtme-ng init"]
        self.up = True
        self.kernel_died = False  # the kernel panicked or reported a hang (VM.kernel_down)
        self.closed = False
        self.launched = time.monotonic()
        self.arrivals: list[tuple[float, int]] = []

    def alive(self) -> bool:
        return self.up

    def kernel_down(self) -> bool:
        return self.kernel_died

    def gone(self, settle: float = 0.0) -> str | None:
        return None if self.up else "QEMU exited (vng status -9)"

    def console_text(self) -> str:
        return "\n".join(self.console_lines) + "\n"

    own_console = console_text

    def close(self) -> None:
        self.closed = True
        self.up = False

    def typed(self) -> VM:
        return cast(VM, self)
