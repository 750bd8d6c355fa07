"""Reading kernel output: console logs and dmesg, for boot diagnosis and oops detection."""

from __future__ import annotations

import re
from dataclasses import dataclass

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
    return "\n".join(text.splitlines()[-lines:])


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


def milestones(text: str) -> dict[str, Milestone]:
    """The first kernel line, init started, and the init done, where present."""
    found: dict[str, Milestone] = {}
    for name, pattern in (("kernel", _TIMESTAMPED), ("init", _INIT_STARTED),
                          ("init_done", _INIT_DONE)):
        match = pattern.search(text)
        if match:
            found[name] = Milestone(match.start(), float(match.group(1)))
    return found


def hostfwd_conflict(text: str) -> bool:
    """QEMU could not bind the SSH forward port (another VM took it): retry with a new one."""
    return "Could not set up host forwarding rule" in text
