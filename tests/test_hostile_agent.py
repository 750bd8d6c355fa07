"""Everything a guest sends is hostile: its kernel is a stranger's. Over the agent, exec and
SFTP channels and the console, what the host reads is bounded (a cap, a deadline) and checked
(each reply field's type, the request's id), and a guest that breaks that is a VMLost naming
the field or the cap, in bounded memory and time, never a TypeError or a hang."""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import paramiko
import pytest

from kheaders_suite.boot import console
from kheaders_suite.errors import GuestTimeout, VMLost
from kheaders_suite.host.deadline import Deadline
from kheaders_suite.session import agentlink, guest
from kheaders_suite.session.agentlink import Agent
from kheaders_suite.session.guest import Guest, read_capped

from .fakeguest import FakeChannel, FakeVM, FloodChannel, StalledSFTP, reply, ssh_client

MiB = 1 << 20


def finished(call: Callable[[], object], seconds: float = 20.0) -> BaseException | None:
    """What ``call`` raised (None if nothing), run in a thread: a hang is this test's
    failure after ``seconds``, not a suite that never ends."""
    raised: list[BaseException | None] = [None]

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # handed to the test to check
            raised[0] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still reading after {seconds:.0f}s: no cap, no deadline"
    return raised[0]


def peak_bytes(call: Callable[[], object]) -> tuple[int, BaseException | None]:
    """The most memory Python allocated while ``call`` ran, and what it raised."""
    tracemalloc.start()
    try:
        raised = finished(call)
        return tracemalloc.get_traced_memory()[1], raised
    finally:
        tracemalloc.stop()


def agent_answering(answer: Callable[[dict[str, Any]], bytes]) -> Agent:
    agent = Agent.ready(FakeChannel(answer), Deadline(5.0))
    assert agent is not None
    return agent


@pytest.mark.parametrize(("fields", "said"), [
    ({"stdout": 7}, "agent reply: 'stdout' is int, not str"),
    ({"id": 99}, "agent reply: 'id' is 99, not 1 (the request's)"),
    ({"id": "1"}, "agent reply: 'id' is str, not int"),
    ({"duration": "nan"}, "agent reply: 'duration' is str, not float"),
    ({"duration": float("nan")}, "agent reply: 'duration' is nan, not a finite"),
    ({"duration": float("inf")}, "agent reply: 'duration' is inf, not a finite"),
    ({"duration": -1.0}, "agent reply: 'duration' is -1.0, not a finite"),
    ({"rc": True}, "agent reply: 'rc' is bool, not int"),
    ({"rc": 0.5}, "agent reply: 'rc' is float, not int"),
    ({"timed_out": "no"}, "agent reply: 'timed_out' is str, not bool"),
    ({"stderr": None}, "agent reply: 'stderr' is null, not str"),
    ({"stdout": "not base64!"}, "agent reply: 'stdout' is not base64"),
])
def test_a_reply_with_a_wrong_field_is_lost_naming_it(fields: dict[str, Any],
                                                      said: str) -> None:
    agent = agent_answering(lambda r: reply(r, **fields))
    with pytest.raises(VMLost, match=said.replace("(", r"\(").replace(")", r"\)")):
        agent.call(("true",), None, 5.0)


@pytest.mark.parametrize(("line", "said"), [
    (b"[1, 2]\n", "agent reply: list, not object"),
    (b"5\n", "agent reply: int, not object"),
    (b'{"id": 1}\n', "agent reply: 'rc' missing"),
    (b"[" * 100_000 + b"\n", "agent reply: not JSON"),
    (b"garbage\n", "agent reply: not JSON"),
])
def test_a_reply_that_is_no_reply_object_is_lost(line: bytes, said: str) -> None:
    agent = agent_answering(lambda r: line)
    with pytest.raises(VMLost, match=said):
        agent.call(("true",), None, 5.0)


@pytest.mark.parametrize(("greeting", "said"), [
    (b"5\n", "agent ready line: int without 'ready'"),
    (b'["ready"]\n', "agent ready line: list without 'ready'"),
    (b'{"ready": "yes"}\n', "agent ready line: 'ready' is str, not int"),
])
def test_a_ready_line_that_is_no_ready_object_is_lost(greeting: bytes, said: str) -> None:
    chan = FakeChannel(greeting=greeting)
    with pytest.raises(VMLost, match=said):
        Agent.ready(chan, Deadline(1.0))
    assert chan.closed


def test_a_bad_reply_stops_the_agent_and_quotes_the_console(tmp_path: Path) -> None:
    chan = FakeChannel(lambda r: reply(r, stdout=7))
    vm = FakeVM(tmp_path / "console.log")
    vm.console_lines.append("[ 9.0] last words")
    target = Guest(vm.typed(), ssh_client(chan)[1], 1.0)
    target.agent = Agent.ready(chan, Deadline(1.0))
    with pytest.raises(VMLost, match=r"(?s)'stdout' is int, not str.*last words"):
        target.run(("true",))
    assert target.agent is None


def test_a_line_without_end_is_lost_at_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agentlink, "MAX_LINE", 4 * MiB)
    chan = FloodChannel()
    agent = Agent(chan)
    guard = lambda: "guard: 100 MiB read, no cap" if chan.sent > 100 * MiB else None  # noqa: E731
    raised = finished(lambda: agent.readline(Deadline(60.0), guard))
    assert isinstance(raised, VMLost)
    assert "agent reply: a line longer than 4 MiB (MAX_LINE) with no newline" in str(raised)
    assert len(agent.buffer) <= 5 * MiB


def test_a_stderr_flood_does_not_keep_the_agent_from_its_deadline() -> None:
    chan = FloodChannel(streams=("stderr",))
    raised = finished(lambda: Agent(chan).readline(Deadline(0.5)))
    assert isinstance(raised, GuestTimeout)
    assert "no answer within 0s" in str(raised)  # 0.5 s, rounded


def exec_guest(tmp_path: Path, chan: FakeChannel, scale: float = 1.0) -> Guest:
    """A guest without its agent: each command takes an exec channel, each transfer SFTP."""
    return Guest(FakeVM(tmp_path / "console.log").typed(), ssh_client(chan)[1], scale)


def test_exec_output_past_the_cap_is_cut_and_said(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guest, "MAX_OUTPUT", 1 * MiB)
    target = exec_guest(tmp_path, FloodChannel(limit=20 * MiB))
    results: list[guest.CommandResult] = []
    peak, raised = peak_bytes(lambda: results.append(target.run(("yes",), timeout=30.0)))
    assert raised is None
    out = results[0].stdout
    assert out.startswith("x" * MiB)
    assert out.endswith(f"[stdout cut at 1 MiB (MAX_OUTPUT): {19 * MiB} more bytes dropped "
                        "by the suite]\n")
    assert peak < 8 * MiB


def test_exec_output_without_end_meets_its_deadline(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guest, "MAX_OUTPUT", 1 * MiB)
    target = exec_guest(tmp_path, FloodChannel(streams=("stdout", "stderr")))
    peak, raised = peak_bytes(lambda: target.run(("yes",), timeout=1.0))
    assert isinstance(raised, GuestTimeout)
    assert "exceeded 1s (its output passed the cap): yes" in str(raised)
    assert peak < 8 * MiB


class EndlessFile:
    """An SFTP file of zeros without end, ``chunk`` bytes a read, each taking ``pause``."""

    def __init__(self, chunk: int = MiB, pause: float = 0.0) -> None:
        self.chunk, self.pause = chunk, pause
        self.timeouts: list[float] = []

    def settimeout(self, seconds: float) -> None:
        self.timeouts.append(seconds)

    def read(self, size: int) -> bytes:
        threading.Event().wait(self.pause)
        return bytes(min(size, self.chunk))


def test_an_sftp_file_past_the_cap_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guest, "MAX_FILE", 4 * MiB)
    handle = cast(paramiko.SFTPFile, EndlessFile())
    peak, raised = peak_bytes(lambda: read_capped(handle, "/sys/x", Deadline(30.0)))
    assert isinstance(raised, VMLost)
    assert "guest file /sys/x is over the 4 MiB read cap (MAX_FILE)" in str(raised)
    assert peak < 16 * MiB


def test_each_sftp_read_is_bounded_by_the_deadline() -> None:
    endless = EndlessFile(chunk=10, pause=0.1)
    raised = finished(lambda: read_capped(cast(paramiko.SFTPFile, endless), "/x",
                                          Deadline(0.5)))
    assert isinstance(raised, GuestTimeout)
    assert "reading /x over SFTP took over 0s" in str(raised)
    assert endless.timeouts
    assert max(endless.timeouts) <= 0.5


def test_the_sftp_fallback_has_a_scaled_timeout(tmp_path: Path) -> None:
    """With no agent (it timed out once), a transfer's SFTP channel and its handshake wait
    60 s x the guest's scale, not paramiko's hour and then without end."""
    chan = StalledSFTP()
    target = exec_guest(tmp_path, chan, scale=5.0)
    with pytest.raises(GuestTimeout, match="SFTP in the guest gave no answer within 300s"):
        target.read_bytes("/proc/kheaders")
    with pytest.raises(GuestTimeout, match="within 300s"):
        target.write_bytes("/tmp/x", b"data")
    assert chan.timeout is not None
    assert 299.0 < chan.timeout <= 300.0
    opened = cast(Any, target.client).transport.open_timeouts
    assert len(opened) == 2
    assert all(t is not None and 299.0 < t <= 300.0 for t in opened)


def sparse_console(path: Path, size: int, last: bytes) -> Path:
    """A console log of ``size`` bytes: zeros (sparse: no disk), then ``last``."""
    with path.open("wb") as log:
        log.truncate(size - len(last))
        log.seek(size - len(last))
        log.write(last)
    return path


def test_a_huge_console_is_read_up_to_the_cap(tmp_path: Path) -> None:
    panic = b"\n[ 99.0] Kernel panic - not syncing: past the cap\n"
    log = console.ConsoleFile(sparse_console(tmp_path / "c.log", 200 * MiB, panic),
                              cap=1 * MiB)
    texts: list[str] = []
    peak, raised = peak_bytes(lambda: texts.extend((log.head(), log.view())))
    assert raised is None
    head, view = texts
    assert len(head) == 1 * MiB
    assert peak < 12 * MiB  # the head (1 MiB), its copy in the view, the tail: not 200 MiB
    last = console.tail(view, 2).splitlines()
    assert last[0] == "[ 99.0] Kernel panic - not syncing: past the cap"
    assert last[1] == (f"[console past 1 MiB (console.READ_CAP): {199 * MiB} bytes after it "
                       "not scanned for kernel reports]")


def test_the_console_is_read_once_and_incrementally(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    path.write_bytes(b"old run\n")
    log = console.ConsoleFile(path, base=len(b"old run\n"))
    with path.open("ab") as out:
        out.write(b"[ 0.1] first\n")
    assert log.head() == "[ 0.1] first\n"
    with path.open("r+b") as out:  # bytes already read are not read again
        out.seek(8)
        out.write(b"[ 0.1] FIRST\n[ 0.2] second\n")
    assert log.head() == "[ 0.1] first\n[ 0.2] second\n"
    assert log.view() == log.head()  # under the cap: all of it


def test_milestones_are_found_across_reads_scanning_only_new_text() -> None:
    line = "[    3.414703] kheaders-init: initialization done\n"
    flood = "[    0.100000] " + "x" * (8 * MiB)  # one line without end so far
    scan = console.MilestoneScan({})
    assert set(scan.feed(flood)) == {"kernel"}
    assert scan.start >= len(flood) - 4096  # the flood is not scanned again
    text = flood + "\n" + line[:20]
    scan.feed(text)
    assert "init_done" not in scan.found
    text += line[20:]
    marks = scan.feed(text)
    assert marks["init_done"].guest_seconds == 3.414703
    assert text[marks["init_done"].offset:] == line
    assert marks["kernel"].offset == 0


def test_connect_sees_the_milestones_of_a_console_read_in_pieces(tmp_path: Path) -> None:
    """The boot poll over the incremental scan still finds "initialization done" that
    arrived between two polls, split mid-line."""
    from kheaders_suite.session.connect import connect

    vm = FakeVM(tmp_path / "console.log")
    pieces = iter(["[    0.5] Linux version 6.12\n[    3.4] kheaders-in",
                   "it: initialization done\n"])
    shown = [""]

    def grow() -> str:
        shown[0] += next(pieces, "")
        return shown[0]

    vm.own_console = grow  # type: ignore[method-assign]
    attempts: list[float] = []

    def open_ssh(port: int, timeout: float) -> paramiko.SSHClient:
        attempts.append(timeout)
        return ssh_client(FakeChannel())[1]

    connect(vm.typed(), 1.0, open_ssh=open_ssh, init_done_wait=30.0)
    assert attempts == [10.0]  # tried once the init said it was done, with the long timeout
