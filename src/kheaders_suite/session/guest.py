"""Talk to the guest over SSH (paramiko). Commands return a small result record.

A ``Guest`` is a booted VM reachable over SSH (session/connect.py makes one). Commands and file
transfers go over the agent's one channel (agentlink.py) once it runs, else each over an SSH
exec or SFTP channel of its own. On an exec channel stdout and stderr are read together as
data arrives (select on the channel): reading one to the end before the other deadlocks once
the other fills the window.
"""

from __future__ import annotations

import contextlib
import select
import shlex
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import paramiko

from kheaders_suite.boot import console
from kheaders_suite.boot.vm import VM
from kheaders_suite.errors import (
    GuestCommandFailed,
    GuestStepFailed,
    GuestTimeout,
    InfraError,
    VMLost,
)
from kheaders_suite.host.deadline import Deadline
from kheaders_suite.records import BootProfile, CommandResult, target_id
from kheaders_suite.session.agentlink import Agent, BadReply, Lost
from kheaders_suite.session.kernellog import KernelLog, Scan

# Base timeout of a command in seconds under KVM; multiplied by Accel.scale(arch) under TCG.
COMMAND_TIMEOUT = 60.0
MAX_OUTPUT = 16 << 20
"""Bytes of stdout, and of stderr, an exec channel's command keeps (16 MiB each): the rest is
read and dropped, so the command still ends, and its output ends with a note naming the cap."""
MAX_FILE = 48 << 20
"""The largest guest file read over SFTP (48 MiB, what fits in an agent reply): a bigger one
is refused with VMLost naming the cap, not read into memory without end."""
SFTP_CHUNK = 1 << 20  # bytes per SFTP read; each read is bounded by the channel's timeout


def as_user(argv: Sequence[str], user: str | None) -> tuple[str, ...]:
    """With ``user``, drop privileges with setpriv first."""
    if user is None:
        return tuple(argv)
    return ("setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--", *argv)


class Guest:
    """A booted VM reachable over SSH."""

    def __init__(self, vm: VM, client: paramiko.SSHClient, scale: float) -> None:
        self.vm, self.client, self.scale = vm, client, scale
        self.build = vm.spec.build
        self.arch = vm.spec.arch
        self.accel = vm.spec.accel
        self.ssh_at = self.ready_at = 0.0  # monotonic: SSH authenticated, first command done
        self.profile: BootProfile | None = None  # set by session.connect.connect()
        self.agent: Agent | None = None
        self.kernel_log = KernelLog()

    @property
    def boot_seconds(self) -> float:
        """Launch of vng to the first command answered: when tests can start."""
        return self.ready_at - self.vm.launched

    def start_agent(self) -> None:
        """Serve later commands and file transfers over one channel (inguest/agent.py);
        on failure each command takes an SSH exec channel and each transfer an SFTP one."""
        try:
            self.agent = Agent.start(self.client, Deadline(COMMAND_TIMEOUT * self.scale))
        except BadReply as exc:
            raise VMLost(self._lost_text(exc)) from None

    def run(self, argv: Sequence[str], *, timeout: float | None = None, check: bool = False,
            user: str | None = None, stdin: bytes | None = None) -> CommandResult:
        """Run ``argv`` (never through a shell string) within ``timeout`` (scaled default)."""
        __tracebackhide__ = True
        result = self._execute(as_user(argv, user), timeout, stdin)
        return result.check() if check else result

    def expect(self, argv: Sequence[str], why: str, *, timeout: float | None = None,
               user: str | None = None, stdin: bytes | None = None) -> CommandResult:
        """Run a command whose success is what the test checks: a FAIL saying ``why``."""
        __tracebackhide__ = True
        return self._execute(as_user(argv, user), timeout, stdin).expect(why)

    def run_script(self, script: str, *, timeout: float | None = None,
                   stdin: bytes | None = None) -> CommandResult:
        """Run a shell snippet as is (for pipelines the test spells out itself)."""
        return self._execute(("sh", "-c", script), timeout, stdin)

    def _execute(self, argv: tuple[str, ...], timeout: float | None,
                 stdin: bytes | None) -> CommandResult:
        seconds = timeout if timeout is not None else COMMAND_TIMEOUT * self.scale
        if self.agent is not None:
            with self._agent_in_use():
                return self.agent.call(argv, stdin, seconds, self.lost)
        return self._exec_channel(shlex.join(argv), seconds, stdin)

    def lost(self, settle: float = 0.0) -> str | None:
        """None while the VM can answer; else why not, with the console tail (a VMLost's
        message): checked while waiting, so a panic ends a command in seconds. ``settle``:
        seconds to let a dying QEMU finish exiting."""
        why = self.vm.gone(settle)
        return None if why is None else self._lost_text(why)

    def _lost_text(self, why: object) -> str:
        """A VMLost's message: the target, why, and the console's last lines."""
        return (f"VM lost ({target_id(self.arch.name, self.build.variant)}): {why}; console "
                f"{self.vm.console}, last lines:\n{self.console_tail()}")

    @contextlib.contextmanager
    def _agent_in_use(self) -> Iterator[None]:
        try:
            yield
        except BadReply as exc:
            self.agent = None  # what it sends cannot be trusted any more
            raise VMLost(self._lost_text(exc)) from None
        except GuestTimeout as exc:
            self.agent = None  # its channel is in an unknown state: stop using it
            raise GuestTimeout(f"{exc}\nthe guest did not answer in time (a hang?); console "
                               f"{self.vm.console}, last lines:\n{self.console_tail()}") from None
        except (OSError, EOFError, paramiko.SSHException) as exc:
            why = self.lost(settle=2.0)  # the channel broke: was it the VM going away?
            if why is None:
                raise
            self.agent = None
            raise VMLost(why) from exc

    def responsive(self, seconds: float = 3.0) -> bool:
        """Whether the guest still runs a trivial command within ``seconds`` (scaled)."""
        try:
            return self._exec_channel("true", seconds * self.scale, None).rc == 0
        except (InfraError, OSError, EOFError, paramiko.SSHException):
            return False

    def _exec_channel(self, script: str, seconds: float, stdin: bytes | None) -> CommandResult:
        deadline = Deadline(seconds)
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise VMLost(f"SSH session gone; console tail:\n{self.console_tail()}")
        chan = transport.open_session(timeout=deadline.remaining)
        chan.settimeout(max(1.0, deadline.remaining))  # bounds sendall of stdin too
        start = time.monotonic()
        chan.exec_command(script)
        if stdin:
            chan.sendall(stdin)
        chan.shutdown_write()
        out, err = _collect(chan, deadline, script, self.lost)
        return CommandResult(script, chan.recv_exit_status(), out, err,
                             time.monotonic() - start)

    def guest_path(self, host: Path) -> str:
        """The guest's path for a host file under the build dir (same path when shared)."""
        return self.vm.spec.guest_path(host)

    def read_bytes(self, path: str) -> bytes:
        """The guest file's bytes; OSError (with the guest's errno) if it cannot be read."""
        if self.agent is not None:
            with self._agent_in_use():
                return self.agent.read(path, COMMAND_TIMEOUT * self.scale, self.lost)
        deadline = Deadline(COMMAND_TIMEOUT * self.scale)
        with self._sftp(deadline) as sftp, sftp.open(path, "rb") as handle:
            return read_capped(handle, path, deadline)

    def write_bytes(self, path: str, data: bytes, mode: int = 0o644) -> None:
        if self.agent is not None:
            with self._agent_in_use():
                self.agent.write(path, data, mode, COMMAND_TIMEOUT * self.scale, self.lost)
            return
        with self._sftp(Deadline(COMMAND_TIMEOUT * self.scale)) as sftp:
            with sftp.open(path, "wb") as handle:
                handle.write(data)
            sftp.chmod(path, mode)

    @contextlib.contextmanager
    def _sftp(self, deadline: Deadline) -> Iterator[paramiko.SFTPClient]:
        """An SFTP session whose every wait (the channel, the handshake, each request) is
        bounded by ``deadline``: GuestTimeout past it. paramiko's own open_sftp waits an hour
        for the channel and without end for the server's answers."""
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise VMLost(f"SSH session gone; console tail:\n{self.console_tail()}")
        chan = transport.open_session(timeout=deadline.remaining)
        chan.settimeout(max(1.0, deadline.remaining))
        try:
            chan.invoke_subsystem("sftp")
            with paramiko.SFTPClient(chan) as sftp:
                yield sftp
        except TimeoutError:
            raise GuestTimeout(f"SFTP in the guest gave no answer within "
                               f"{deadline.seconds:.0f}s") from None
        finally:
            chan.close()

    def scan_kernel_log(self, phase: str) -> Scan:
        """What the kernel printed since the last scan, attributed to ``phase``: read from
        /dev/kmsg over the agent while the VM answers, else from the console log."""
        agent = self.agent if self.vm.alive() else None
        kmsg = None
        if agent is not None:
            kmsg = lambda: agent.kmsg(COMMAND_TIMEOUT * self.scale, self.lost)  # noqa: E731
        try:
            return self.kernel_log.scan(phase, kmsg, self.vm.own_console())
        except (OSError, EOFError, paramiko.SSHException, InfraError):
            self.agent = None  # the guest stopped answering mid-read: the console has the rest
            return self.kernel_log.scan(phase, None, self.vm.own_console())

    def console_tail(self, lines: int = 40) -> str:
        return console.tail(self.vm.console_text(), lines)

    def close(self) -> None:
        self.client.close()
        self.vm.close()


def read_capped(handle: paramiko.SFTPFile, path: str, deadline: Deadline) -> bytes:
    """The file behind ``handle`` read in SFTP_CHUNK reads, each bounded by what is left of
    ``deadline`` (GuestTimeout past it); VMLost once it passes MAX_FILE bytes."""
    data, cap = bytearray(), MAX_FILE
    while True:
        if deadline.expired:
            raise GuestTimeout(f"reading {path} over SFTP took over {deadline.seconds:.0f}s")
        handle.settimeout(max(0.1, deadline.remaining))
        chunk = handle.read(SFTP_CHUNK)
        if not chunk:
            return bytes(data)
        data += chunk
        if len(data) > cap:
            raise VMLost(f"guest file {path} is over the {cap >> 20} MiB read cap (MAX_FILE)")


class Capped:
    """One stream of a command's output: the first ``cap`` bytes kept, the rest counted."""

    def __init__(self, name: str, cap: int) -> None:
        self.name, self.cap = name, cap
        self.kept, self.dropped = bytearray(), 0

    def add(self, chunk: bytes) -> None:
        room = max(0, self.cap - len(self.kept))
        self.kept += chunk[:room]
        self.dropped += len(chunk) - min(room, len(chunk))

    def text(self) -> str:
        text = self.kept.decode(errors="replace")
        if self.dropped:
            text += (f"\n[{self.name} cut at {self.cap >> 20} MiB (MAX_OUTPUT): "
                     f"{self.dropped} more bytes dropped by the suite]\n")
        return text


def _collect(chan: paramiko.Channel, deadline: Deadline, what: str,
             lost: Lost = None) -> tuple[str, str]:
    """stdout and stderr of ``chan``'s command, read together (one read of each per turn, so
    a flood cannot keep the loop from its deadline), each kept up to MAX_OUTPUT bytes."""
    out, err = Capped("stdout", MAX_OUTPUT), Capped("stderr", MAX_OUTPUT)
    while True:
        why = lost() if lost is not None else None
        if why is not None:
            raise VMLost(why)
        if chan.recv_ready():
            out.add(chan.recv(65536))
        if chan.recv_stderr_ready():
            err.add(chan.recv_stderr(65536))
        drained = not chan.recv_ready() and not chan.recv_stderr_ready()
        if chan.exit_status_ready() and drained and (chan.eof_received or chan.closed):
            return out.text(), err.text()
        if deadline.expired:
            chan.close()
            flood = " (its output passed the cap)" if out.dropped or err.dropped else ""
            raise GuestTimeout(f"guest command exceeded {deadline.seconds:.0f}s{flood}: {what}")
        if drained:
            select.select([chan], [], [], min(0.5, deadline.remaining))


__all__ = ["CommandResult", "Guest", "GuestCommandFailed", "GuestStepFailed"]
