"""Reading kernel output: console logs and dmesg, for boot diagnosis and oops detection."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

READ_CAP = 64 << 20
"""The most of one VM's console log the suite reads and scans (64 MiB): the file may grow
past it (a guest that floods its console), but the host keeps and scans only the first
READ_CAP bytes, plus the last TAIL_BYTES for a failure's message. Past the cap the kernel log
is read from /dev/kmsg (the agent) alone; a panic or a hang report past it still ends the
guest, since boot/vm.py's PanicWatch reads the stream as it arrives, in constant memory."""
TAIL_BYTES = 64 << 10
"""The end of a console past READ_CAP that a failure's message quotes from (64 KiB)."""

# Lines that open a report the suite must fail on: BUG (soft lockup and atomic sleep among
# them), WARNING, Oops, KASAN, lockdep, UBSAN, panic, and the hang detectors: hung task, hard
# lockup, RCU stall.
# The headlines of the kernel's hang detectors: hung task (kernel/hung_task.c), soft and hard
# lockup (kernel/watchdog.c, "buddy" or perf), RCU CPU stall (kernel/rcu/tree_stall.h). The VM
# also spots them in the console stream as they arrive (boot/vm.py).
HANG_HEADLINES = (r"INFO: task \S+ blocked for more than \d+ seconds",
                  r"BUG: soft lockup - CPU#\d+ stuck", r"Watchdog detected hard LOCKUP",
                  r"rcu: INFO: \S+ (?:self-)?detected stalls?")
_REPORT_START = re.compile(
    r"(BUG: |WARNING: |Oops|general protection fault|KASAN: |"
    r"possible circular locking|possible recursive locking|inconsistent lock state|"
    r"Kernel panic - not syncing|kernel BUG at|UBSAN: |detected buffer overflow|"
    r"Unable to handle kernel|" + "|".join(HANG_HEADLINES) + ")"
)
_REPORT_END = re.compile(r"(---\[ end trace|---\[ end Kernel panic)")
_TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\]\s?")
@dataclass(frozen=True)
class KernelReport:
    headline: str
    lines: tuple[str, ...]

    def __str__(self) -> str:
        return "\n".join(self.lines)


def strip_timestamp(line: str) -> str:
    return _TIMESTAMP.sub("", line)


def find_reports(text: str, max_lines: int = 40) -> list[KernelReport]:
    """Every BUG/WARNING/Oops/KASAN/lockdep/panic report in kernel output, with its body."""
    reports: list[KernelReport] = []
    lines = [strip_timestamp(line) for line in text.splitlines()]
    i = 0
    while i < len(lines):
        if _REPORT_START.search(lines[i]):
            body = [lines[i]]
            j = i + 1
            while j < len(lines) and len(body) < max_lines:
                body.append(lines[j])
                if _REPORT_END.search(lines[j]):
                    break
                j += 1
            reports.append(KernelReport(lines[i].strip(), tuple(body)))
            i = j + 1
        else:
            i += 1
    return reports


def tail(text: str, lines: int = 30) -> str:
    """The last ``lines`` lines, looked for in the last TAIL_BYTES only: a console of
    millions of lines is not split whole for a message."""
    return "\n".join(text[-TAIL_BYTES:].splitlines()[-lines:])


def boot_hint(text: str) -> str | None:
    """Advice for a known way a guest comes up without SSH."""
    if re.search(r"renamed from eth0", text):
        return ("udev renamed eth0 after virtme-ng began DHCP on it: systemd-udevd from the "
                "shared host root ignores net.ifnames=0 when it believes it runs in a "
                "container (/.dockerenv); remove the udev package on this host")
    return None


# Boot milestones as the console shows them (both virtme-ng inits log "initialization done").
_TIMESTAMPED = re.compile(r"^\[\s*(\d+\.\d+)\]", re.M)
_INIT_STARTED = re.compile(r"^\[\s*(\d+\.\d+)\] Run \S+.* as init process", re.M)
# virtme-ng's inits (bash, Rust) and the suite's (guestinit) say the same words.
_INIT_DONE = re.compile(r"^\[\s*(\d+\.\d+)\] (?:virtme(?:-ng)?|kheaders)-init: "
                        r"initialization done", re.M)


@dataclass(frozen=True)
class Milestone:
    offset: int  # where in the console text the line starts
    guest_seconds: float  # the kernel's timestamp on that line


_MILESTONES = (("kernel", _TIMESTAMPED), ("init", _INIT_STARTED), ("init_done", _INIT_DONE))


def milestones(text: str) -> dict[str, Milestone]:
    """The first kernel line, init started, and the init done, where present."""
    return MilestoneScan({}).feed(text)


def hostfwd_conflict(text: str) -> bool:
    """QEMU could not bind the SSH forward port (another VM took it): retry with a new one."""
    return "Could not set up host forwarding rule" in text


class ConsoleFile:
    """One VM's console log (from byte ``base`` of ``path``), read incrementally: each call
    reads only the bytes that arrived since the last, and never more than ``cap`` in all."""

    def __init__(self, path: Path, base: int = 0, cap: int | None = None) -> None:
        self.path, self.base = path, base
        self.cap = READ_CAP if cap is None else cap
        self.text = ""  # the bytes read so far, one character per byte

    def head(self) -> str:
        """The log's first ``cap`` bytes at most, as latin-1 (offsets are byte offsets)."""
        if len(self.text) >= self.cap:
            return self.text
        try:
            with self.path.open("rb") as log:
                log.seek(self.base + len(self.text))
                self.text += log.read(self.cap - len(self.text)).decode("latin-1")
        except FileNotFoundError:
            pass
        return self.text

    def size(self) -> int:
        """How many bytes of this VM's log the file holds now."""
        try:
            return max(0, self.path.stat().st_size - self.base)
        except FileNotFoundError:
            return 0

    def view(self) -> str:
        """What a message quotes: all of the log while under the cap; past it, the head,
        the last TAIL_BYTES and, as its last line, how much was not read."""
        head, size = self.head(), self.size()
        if size <= self.cap:
            return head
        with self.path.open("rb") as log:
            log.seek(self.base + max(self.cap, size - TAIL_BYTES))
            end = log.read(TAIL_BYTES).decode("latin-1").rstrip("\n")
        return (f"{head}\n{end}\n[console past {_size(self.cap)} (console.READ_CAP): "
                f"{size - self.cap} bytes after it not scanned for kernel reports]\n")


# A milestone line is short: a scan that resumes mid-line looks back this far for its start.
_LINE_OVERLAP = 4096


@dataclass
class MilestoneScan:
    """milestones() over a console that grows, scanning each byte about once: a call looks
    only at what it has not seen, from the start of the last line it saw (a milestone split
    across two reads is found whole), and stops once it found them all."""

    found: dict[str, Milestone]
    start: int = 0  # where the next scan begins: the start of a line not yet seen whole

    def feed(self, text: str) -> dict[str, Milestone]:
        """The milestones of ``text``, a longer copy of what the last call was given."""
        if len(self.found) < len(_MILESTONES):
            self._scan(text)
        return dict(self.found)

    def _scan(self, text: str) -> None:
        for name, pattern in _MILESTONES:
            if name not in self.found and (match := pattern.search(text, self.start)):
                self.found[name] = Milestone(match.start(), float(match.group(1)))
        line_start = text.rfind("\n", self.start) + 1
        self.start = max(line_start, len(text) - _LINE_OVERLAP, self.start)


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"
