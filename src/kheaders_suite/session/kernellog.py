"""The guest's kernel log, read phase by phase and never cleared.

Every message the kernel prints from its first line is scanned once and attributed to the
phase that was running: the boot (which runs the proc and debugfs patches' init), a test's
set-up (modprobe, mounts), its body, its teardown (rmmod, umount), the guest's shutdown.
Nothing is thrown away unread: the cursor is a /dev/kmsg sequence number kept by the guest
agent, and when the VM is gone the rest of its console log (which carries the same kernel
messages, panics included) is scanned from where the last scan stopped.

Records the ring buffer overwrote before they were read (a gap in sequence numbers) are read
from the console log instead: its lines stamped between the last record read and the first
one after the gap. When the console has fewer such lines than were lost (a console loglevel
that filters them, a console that lags), what the kernel printed there cannot be checked, and
the scan carries that as a report of its own, so the phase fails with the count and the
reason instead of passing on what was left.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from kheaders_suite.boot.console import KernelReport, find_reports
from kheaders_suite.errors import KernelFault

_STAMP = re.compile(r"^\[\s*(\d+)\.(\d{6})\]")


@dataclass(frozen=True)
class Record:
    seq: int
    usec: int
    text: str

    def line(self) -> str:
        return f"[{self.usec // 1_000_000:5d}.{self.usec % 1_000_000:06d}] {self.text}"


def parse_kmsg(raw: str) -> list[Record]:
    """/dev/kmsg records ("pri,seq,usec,flags[,...];text" then " KEY=value" lines)."""
    records: list[Record] = []
    for line in raw.splitlines():
        if not line or line.startswith(" "):
            continue  # a record's dictionary (SUBSYSTEM=, DEVICE=): not text
        prefix, sep, text = line.partition(";")
        fields = prefix.split(",")
        if not sep or len(fields) < 3 or not fields[1].isdigit() or not fields[2].isdigit():
            continue
        records.append(Record(int(fields[1]), int(fields[2]), text))
    return records


@dataclass(frozen=True)
class Scan:
    """What one phase printed, and what of it the suite must report."""

    phase: str
    lines: tuple[str, ...]
    reports: tuple[KernelReport, ...]
    lost: int = 0  # records the ring buffer overwrote before they were read
    source: str = "kmsg"  # or "console": the VM was gone
    recovered: int = 0  # console lines read in place of the lost records

    def describe(self) -> str:
        where = "" if self.source == "kmsg" else " (from the console log: the VM is gone)"
        lost = (f"\n({self.lost} kernel messages were overwritten unread; {self.recovered} "
                "lines of that interval read from the console log)") if self.lost else ""
        return (f"kernel reported during {self.phase}{where}:\n\n"
                + "\n\n".join(str(r) for r in self.reports) + lost)


class KernelReported(KernelFault):
    """The kernel printed a report (BUG/WARNING/Oops/KASAN/lockdep/panic, a hung task, a
    lockup, an RCU stall) at boot, in a fixture or while a guest command waited: a FAIL of
    every test it reaches, whose message starts with "kernel reported"."""

    def __init__(self, scan: Scan) -> None:
        super().__init__(scan.describe())
        self.scan = scan


@dataclass
class KernelLog:
    """The cursor: the last /dev/kmsg sequence number and console offset already scanned."""

    last_seq: int = -1
    console_offset: int = 0
    last_usec: int = -1  # timestamp of the record at last_seq

    def take_records(self, records: list[Record]) -> tuple[list[Record], int]:
        """(records after the cursor, how many were lost in a gap before them)."""
        fresh = [r for r in records if r.seq > self.last_seq]
        lost = 0
        if fresh:  # the first record ever read should be seq 0, the kernel's first line
            lost = max(0, fresh[0].seq - self.last_seq - 1)
            self.last_seq, self.last_usec = fresh[-1].seq, fresh[-1].usec
        return fresh, lost

    def scan(self, phase: str, kmsg: Callable[[], str] | None, console: str) -> Scan:
        """Read what is new: from kmsg while the VM answers (a gap read from the console),
        else the console's unread rest."""
        gap: list[str] = []
        incomplete: list[KernelReport] = []
        if kmsg is not None:
            since = self.last_usec
            fresh, lost = self.take_records(parse_kmsg(kmsg()))
            if lost:
                gap, incomplete = recover(console, lost, since, fresh[0].usec)
            lines, source = (*gap, *(r.line() for r in fresh)), "kmsg"
        else:
            lines, lost = tuple(console[self.console_offset:].splitlines()), 0
            source = "console"
        self.console_offset = len(console)
        reports = (*find_reports("\n".join(lines)), *incomplete)
        return Scan(phase, lines, reports, lost, source, len(gap))


def recover(console: str, lost: int, after_usec: int,
            before_usec: int) -> tuple[list[str], list[KernelReport]]:
    """The console's lines stamped strictly between the last record read and the first one
    after the gap, and a report saying why if they are fewer than the ``lost`` records."""
    lines = [line for line in console.splitlines()
             if (usec := console_usec(line)) is not None and after_usec < usec < before_usec]
    if len(lines) >= lost:
        return lines, []
    headline = (f"kernel log incomplete: {lost} messages were overwritten unread and the "
                f"console log has only {len(lines)} lines of that interval")
    why = ("what the kernel printed there cannot be checked (messages above the console "
           "loglevel, or a console that had not caught up); a larger log_buf_len or fewer "
           "messages per phase keeps the ring buffer from wrapping")
    return lines, [KernelReport(headline, (headline, why))]


def console_usec(line: str) -> int | None:
    """The printk timestamp of a console line, in microseconds; None if it has none."""
    match = _STAMP.match(line)
    return int(match[1]) * 1_000_000 + int(match[2]) if match else None


__all__ = ["KernelLog", "KernelReported", "Record", "Scan", "parse_kmsg"]
