"""Step 5: talk to the guest over SSH (paramiko). Commands return a small result record.

stdout and stderr are read together as data arrives (select on the channel): reading one to
the end before the other deadlocks once the other fills the window.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import select
import shlex
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from kheaders_suite import console, guest_scripts
from kheaders_suite.deadline import Deadline
from kheaders_suite.errors import GuestTimeout, InfraError, VMLost
from kheaders_suite.kernellog import KernelLog, Scan
from kheaders_suite.vm import VM, BootProfile, profile_boot

# Until sshd is up, every attempt ends in a banner error that paramiko logs as an ERROR with a
# traceback; those are expected while booting, and connect() reports the last one itself.
logging.getLogger("paramiko.transport").setLevel(logging.CRITICAL)

VIRTME_KEY = Path.home() / ".cache/virtme-ng/.ssh/id_virtme"
# Base timeouts in seconds under KVM; multiplied by Accel.scale(arch) under TCG.
BOOT_TIMEOUT = 30.0
COMMAND_TIMEOUT = 60.0
AGENT_MARGIN = 30.0
# Asked while waiting on the guest: None while its VM can answer, else why not.
Lost = Callable[[], "str | None"] | None


class GuestCommandFailed(AssertionError):
    """A command whose result is the verdict (``Guest.expect``) exited non-zero: a test
    FAIL, with the command's output."""


class GuestStepFailed(InfraError):
    """A harness step in the guest (``Guest.run(check=True)``: mkdir, tar, mount of scratch
    space) exited non-zero: an ERROR, never a verdict on the kernel."""


@dataclass(frozen=True)
class CommandResult:
    command: str
    rc: int
    stdout: str
    stderr: str
    duration: float

    def check(self) -> CommandResult:
        """A harness step must succeed: GuestStepFailed (an ERROR) if it did not."""
        __tracebackhide__ = True
        if self.rc != 0:
            raise GuestStepFailed(f"harness step failed in the guest:\n{self.describe()}")
        return self

    def expect(self, why: str) -> CommandResult:
        """The kernel must let this succeed: GuestCommandFailed (a FAIL) saying ``why``."""
        __tracebackhide__ = True
        if self.rc != 0:
            raise GuestCommandFailed(f"{why}\n{self.describe()}")
        return self

    def describe(self) -> str:
        return (f"$ {self.command}\nexit {self.rc} after {self.duration:.2f}s\n"
                f"--- stdout ---\n{self.stdout[-3000:]}\n--- stderr ---\n{self.stderr[-3000:]}")


def as_user(argv: Sequence[str], user: str | None) -> tuple[str, ...]:
    """With ``user``, drop privileges with setpriv first."""
    if user is None:
        return tuple(argv)
    return ("setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--", *argv)


def command_line(argv: Sequence[str], user: str | None = None) -> str:
    """Shell-quote an argv (never pasted), dropping privileges first with ``user``."""
    return shlex.join(as_user(argv, user))


class Guest:
    """A booted VM reachable over SSH."""

    def __init__(self, vm: VM, client: paramiko.SSHClient, scale: float) -> None:
        self.vm, self.client, self.scale = vm, client, scale
        self.build = vm.spec.build
        self.arch = vm.spec.arch
        self.accel = vm.spec.accel
        self.ssh_at = self.ready_at = 0.0  # monotonic: SSH authenticated, first command done
        self.profile: BootProfile | None = None  # set by connect()
        self.agent: Agent | None = None
        self.kernel_log = KernelLog()

    @property
    def boot_seconds(self) -> float:
        """Launch of vng to the first command answered: when tests can start."""
        return self.ready_at - self.vm.launched

    def start_agent(self) -> None:
        """Serve later commands and file transfers over one channel (guest_scripts/agent.py);
        on failure each command takes an SSH exec channel and each transfer an SFTP one."""
        self.agent = Agent.start(self.client, Deadline(COMMAND_TIMEOUT * self.scale))

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
        if why is None:
            return None
        return (f"VM lost ({self.arch.name}-{self.build.variant}): {why}; console "
                f"{self.vm.console}, last lines:\n{self.console_tail()}")

    @contextlib.contextmanager
    def _agent_in_use(self) -> Iterator[None]:
        try:
            yield
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
        start = time.monotonic()
        chan.exec_command(script)
        if stdin:
            chan.sendall(stdin)
        chan.shutdown_write()
        out, err = _collect(chan, deadline, script, self.lost)
        return CommandResult(script, chan.recv_exit_status(), out.decode(errors="replace"),
                             err.decode(errors="replace"), time.monotonic() - start)

    def guest_path(self, host: Path) -> str:
        """The guest's path for a host file under the build dir (same path when shared)."""
        return self.vm.spec.guest_path(host)

    def read_bytes(self, path: str) -> bytes:
        """The guest file's bytes; OSError (with the guest's errno) if it cannot be read."""
        if self.agent is not None:
            with self._agent_in_use():
                return self.agent.read(path, COMMAND_TIMEOUT * self.scale, self.lost)
        with self.client.open_sftp() as sftp, sftp.open(path, "rb") as handle:
            return bytes(handle.read())

    def write_bytes(self, path: str, data: bytes, mode: int = 0o644) -> None:
        if self.agent is not None:
            with self._agent_in_use():
                self.agent.write(path, data, mode, COMMAND_TIMEOUT * self.scale, self.lost)
            return
        with self.client.open_sftp() as sftp:
            with sftp.open(path, "wb") as handle:
                handle.write(data)
            sftp.chmod(path, mode)

    def dmesg(self) -> str:
        return self.run(("dmesg",), check=True).stdout

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


class Agent:
    """The host end of guest_scripts/agent.py: one JSON line out, one JSON line back."""

    def __init__(self, chan: paramiko.Channel) -> None:
        self.chan = chan
        self.buffer = bytearray()
        self.next_id = 0

    @classmethod
    def start(cls, client: paramiko.SSHClient, deadline: Deadline) -> Agent | None:
        transport = client.get_transport()
        if transport is None:
            return None
        chan = transport.open_session(timeout=deadline.remaining)
        chan.exec_command(shlex.join(agent_command(guest_scripts.source("agent.py"))))
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


def _collect(chan: paramiko.Channel, deadline: Deadline, what: str,
             lost: Lost = None) -> tuple[bytes, bytes]:
    out, err = bytearray(), bytearray()
    while True:
        why = lost() if lost is not None else None
        if why is not None:
            raise VMLost(why)
        while chan.recv_ready():
            out += chan.recv(65536)
        while chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
        drained = not chan.recv_ready() and not chan.recv_stderr_ready()
        if chan.exit_status_ready() and drained and (chan.eof_received or chan.closed):
            return bytes(out), bytes(err)
        if deadline.expired:
            chan.close()
            raise GuestTimeout(f"guest command exceeded {deadline.seconds:.0f}s: {what}")
        select.select([chan], [], [], min(0.5, deadline.remaining))


def connect(vm: VM, scale: float, boot_timeout: float = BOOT_TIMEOUT) -> Guest:
    """Wait for sshd in the guest; VMLost (with the console tail) if it dies or never answers."""
    deadline = Deadline(boot_timeout * scale)
    last_error = "no attempt"
    while not deadline.expired:
        if not vm.alive():
            raise VMLost(_lost_message(vm, "VM exited before SSH came up"))
        why = console.boot_failure(vm.console_text())
        if why and "host forwarding" not in why and "qemu-system" not in why:
            raise VMLost(_lost_message(vm, why))
        try:
            client = _ssh(vm.spec.port, min(10.0, max(1.0, deadline.remaining)))
        except (OSError, paramiko.SSHException, EOFError) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
            deadline.sleep(0.25)
            continue
        guest = Guest(vm, client, scale)
        guest.ssh_at = time.monotonic()
        try:
            guest.start_agent()
            guest.run(("true",), check=True)
        except BaseException:
            client.close()
            raise
        guest.ready_at = time.monotonic()
        guest.profile = profile_boot(vm.launched, vm.arrivals, vm.own_console(),
                                     guest.ssh_at, guest.ready_at)
        return guest
    raise VMLost(_lost_message(vm, f"no SSH within {deadline.seconds:.0f}s ({last_error})"))


def _ssh(port: int, timeout: float) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    try:
        client.connect("127.0.0.1", port=port, username="root", key_filename=str(VIRTME_KEY),
                       look_for_keys=False, allow_agent=False, timeout=timeout,
                       banner_timeout=timeout, auth_timeout=timeout)
    except BaseException:
        client.close()
        raise
    transport = client.get_transport()
    if transport is not None:
        transport.set_keepalive(15)
    return client


def _lost_message(vm: VM, why: str) -> str:
    hint = console.boot_hint(vm.console_text())
    if hint:
        why = f"{why}; {hint}"
    return (f"VM lost ({vm.spec.arch.name}-{vm.spec.build.variant}): {why}\n"
            f"console log {vm.console}, last lines:\n{console.tail(vm.console_text(), 40)}")


__all__ = ["CommandResult", "Guest", "GuestCommandFailed", "GuestStepFailed", "connect"]
