"""The guest's kernel log, read phase by phase and never cleared.

Every message the kernel prints from its first line is scanned once and attributed to the
phase that was running: the boot (which runs the proc and debugfs patches' init), a test's
set-up (modprobe, mounts), its body, its teardown (rmmod, umount), the guest's shutdown.
Nothing is thrown away unread: the cursor is a /dev/kmsg sequence number kept by the guest
agent, and when the VM is gone the rest of its console log (which carries the same kernel
messages, panics included) is scanned from where the last scan stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kheaders_suite.boot.console import KernelReport, find_reports
from kheaders_suite.errors import KernelFault


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

    def describe(self) -> str:
        where = "" if self.source == "kmsg" else " (from the console log: the VM is gone)"
        lost = f"\n({self.lost} kernel messages were overwritten unread)" if self.lost else ""
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

    def take_records(self, records: list[Record]) -> tuple[list[Record], int]:
        """(records after the cursor, how many were lost in a gap before them)."""
        fresh = [r for r in records if r.seq > self.last_seq]
        lost = 0
        if fresh:  # the first record ever read should be seq 0, the kernel's first line
            lost = max(0, fresh[0].seq - self.last_seq - 1)
            self.last_seq = fresh[-1].seq
        return fresh, lost

    def scan(self, phase: str, kmsg: Callable[[], str] | None, console: str) -> Scan:
        """Read what is new: from kmsg while the VM answers, else the console's unread rest."""
        if kmsg is not None:
            fresh, lost = self.take_records(parse_kmsg(kmsg()))
            lines, source = tuple(r.line() for r in fresh), "kmsg"
        else:
            lines, lost = tuple(console[self.console_offset:].splitlines()), 0
            source = "console"
        self.console_offset = len(console)
        return Scan(phase, lines, tuple(find_reports("\n".join(lines))), lost, source)


__all__ = ["KernelLog", "KernelReported", "Record", "Scan", "parse_kmsg"]
