"""The kernel log read phase by phase (kernellog.py, the agent's kmsg op): nothing thrown away
unread, gaps counted, the console scanned from where the last read stopped once the VM is gone."""

from __future__ import annotations

import base64
import json
import lzma
from pathlib import Path

import pytest

from kheaders_suite.inguest import agent
from kheaders_suite.session.kernellog import KernelLog, KernelReported, console_usec, parse_kmsg

WARN = "WARNING: CPU: 0 PID: 1 at kernel/kheaders.c:42 ikheaders_read+0x1/0x2"
RAW = (
    "6,0,0,-;Linux version 7.3.4\n"
    " SUBSYSTEM=cpu\n"
    "4,1,1500000,-;" + WARN + "\n"
    "4,2,1500001,c;---[ end trace 0000000000000000 ]---\n"
)


def test_parse_kmsg_keeps_text_and_drops_dictionaries() -> None:
    records = parse_kmsg(RAW + "garbage without a header\n")
    assert [r.seq for r in records] == [0, 1, 2]
    assert records[1].text == WARN
    assert records[1].line() == f"[    1.500000] {WARN}"


def test_each_record_is_scanned_once_and_attributed_to_its_phase() -> None:
    log = KernelLog()
    first = log.scan("the boot of x86_64-proc", lambda: RAW, "")
    assert [r.headline for r in first.reports] == [WARN]
    again = log.scan("the set-up of test_a", lambda: RAW, "")  # same records: nothing new
    assert again.lines == ()
    assert again.reports == ()
    assert "kernel reported during the boot of x86_64-proc" in KernelReported(first).args[0]


def test_a_gap_in_sequence_numbers_is_counted_as_lost() -> None:
    log = KernelLog()
    log.scan("boot", lambda: "6,0,0,-;a\n", "")
    later = log.scan("test", lambda: "6,5,9,-;b\n", "")
    assert later.lost == 4
    assert "4 kernel messages were overwritten unread" in later.describe()


def test_a_boot_log_that_does_not_start_at_zero_lost_its_beginning() -> None:
    assert KernelLog().scan("boot", lambda: "6,3,0,-;a\n", "").lost == 3


def test_when_the_vm_is_gone_the_console_is_read_from_the_last_offset() -> None:
    log = KernelLog()
    old_console = f"[    0.1] {WARN}\nboot done\n"  # seen over kmsg already
    log.scan("boot", lambda: "6,0,0,-;boot done\n", old_console)
    panic = "[   9.0] Kernel panic - not syncing: sysrq triggered crash\n"
    dead = log.scan("test_read", None, old_console + panic)
    assert dead.source == "console"
    headline = "Kernel panic - not syncing: sysrq triggered crash"
    assert [r.headline for r in dead.reports] == [headline]
    assert "the VM is gone" in dead.describe()


def test_agent_reads_kmsg_records_from_where_it_left_off(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    kmsg = tmp_path / "kmsg"
    kmsg.write_text(RAW)
    monkeypatch.setitem(agent.KMSG, "fd", -1)
    monkeypatch.setitem(agent.KMSG, "path", str(kmsg))
    first = agent.handle({"id": 1, "op": "kmsg"})
    assert first["rc"] == 0
    assert base64.b64decode(first["stdout"]).decode() == RAW
    assert base64.b64decode(agent.handle({"id": 2, "op": "kmsg"})["stdout"]) == b""
    with kmsg.open("a") as handle:
        handle.write("6,3,2,-;later\n")
    assert base64.b64decode(agent.handle({"id": 3, "op": "kmsg"})["stdout"]) == b"6,3,2,-;later\n"


def test_agent_reports_an_unreadable_kmsg_as_errno(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(agent.KMSG, "fd", -1)
    monkeypatch.setitem(agent.KMSG, "path", "/nonexistent/kmsg")
    assert agent.handle({"id": 1, "op": "kmsg"})["rc"] == 2


GAP_CONSOLE = (
    "[    1.000000] before the gap\n"
    "[    2.000000] ------------[ cut here ]------------\n"
    f"[    2.000001] {WARN}\n"
    "[    2.000002] ---[ end trace 0000000000000000 ]---\n"
    "[    3.000000] after the gap\n"
)


def test_records_lost_in_a_gap_are_read_from_the_console() -> None:
    """The WARNING was overwritten in the ring buffer before kmsg was read (seq 1-3 gone);
    the console carries it, so the phase still reports it."""
    log = KernelLog()
    log.scan("boot", lambda: "6,0,1000000,-;before the gap\n", GAP_CONSOLE)
    later = log.scan("test_x", lambda: "6,4,3000000,-;after the gap\n", GAP_CONSOLE)
    assert [r.headline for r in later.reports] == [WARN]
    assert later.lost == 3
    assert later.recovered == 3
    assert "3 kernel messages were overwritten unread; 3 lines" in later.describe()


def test_a_gap_the_console_cannot_fill_is_a_report_with_the_count() -> None:
    """Console lines missing for the lost interval (a loglevel filtered them): the phase
    must not pass on the records that were left."""
    console = GAP_CONSOLE.replace(f"[    2.000001] {WARN}\n", "")
    log = KernelLog()
    log.scan("boot", lambda: "6,0,1000000,-;before the gap\n", console)
    later = log.scan("test_x", lambda: "6,4,3000000,-;after the gap\n", console)
    assert [r.headline for r in later.reports] == [
        "kernel log incomplete: 3 messages were overwritten unread and the console log has "
        "only 2 lines of that interval"]
    assert "cannot be checked" in KernelReported(later).args[0]


def test_console_timestamps_in_microseconds() -> None:
    assert console_usec("[   12.000345] x") == 12_000_345
    assert console_usec("no stamp") is None


RECORDED_GAP = Path(__file__).parent / "data/kmsg-gap"
FLOOD_WARN = "WARNING: CPU: 0 PID: 1 at flood.c:1 flood_test+0x0/0x1"


def _recorded_gap() -> tuple[KernelLog, str, str]:
    """tests/data/kmsg-gap/ (README.md there): the cursor, the kmsg read, the console."""
    cursor = json.loads((RECORDED_GAP / "cursor.json").read_text())
    kmsg, console = (lzma.decompress((RECORDED_GAP / f"{n}.xz").read_bytes()).decode()
                     for n in ("kmsg.txt", "console.log"))
    return KernelLog(last_seq=cursor["last_seq"], last_usec=cursor["last_usec"]), kmsg, console


def test_a_recorded_gap_is_read_from_the_console() -> None:
    log, kmsg, console = _recorded_gap()
    scan = log.scan("test_flood", lambda: kmsg, console)
    assert [r.headline for r in scan.reports] == [FLOOD_WARN]
    assert (scan.lost, scan.recovered) == (307, 307)


def test_a_recorded_gap_the_console_lacks_lines_of_fails_with_the_count() -> None:
    """The same recording, the console without flood lines 0100-0199 (as a loglevel that
    filtered them would leave it): the WARNING is still found, and the gap is a report."""
    log, kmsg, console = _recorded_gap()
    cut = "\n".join(line for line in console.splitlines() if "] flood 01" not in line)
    scan = log.scan("test_flood", lambda: kmsg, cut)
    assert [r.headline for r in scan.reports] == [
        FLOOD_WARN, "kernel log incomplete: 307 messages were overwritten unread and the "
        "console log has only 207 lines of that interval"]
