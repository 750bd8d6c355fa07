"""A guest that floods its console: the host reads and scans at most the console's cap, says
so, and the guest and its verdict are unharmed (a flood from user space is no kernel report).

The real cap (console.READ_CAP, 64 MiB) is lowered to 64 KiB for this test's VM: the guest's
console (hvc0) carries about 60 KiB/s under TCG, so a flood past 64 MiB would take 20 minutes;
past 64 KiB it takes seconds, over the same path (guest tty, QEMU, vng, the drain
thread, the log file, ConsoleFile).

QEMU drops console bytes a full pipe refuses, so while the flood runs the host's reader is held
off for as long as half a MiB takes to arrive, as a loaded host holds it off: no byte may be
lost (vm.console_pipe).
"""

from __future__ import annotations

import functools
import sys
import threading
import time
import tracemalloc

import pytest

from kheaders_suite.boot import console
from kheaders_suite.host.deadline import Deadline, poll
from kheaders_suite.records import CommandResult
from kheaders_suite.session.guest import Guest

KiB = 1 << 10
CAP = 64 * KiB
FLOOD = 12 * CAP  # well past the bound below on what reading the console may take
STALL = 30.0  # seconds (scaled) with no new console byte before the flood counts as lost
LINE = "console flood from the guest"
LINES = FLOOD // len(LINE) + 1  # whole lines, more than FLOOD bytes
FLOOD_BYTES = LINES * (len(LINE) + 1)  # what the guest writes, before its tty adds any \r
END = "console flood ends"  # written after the flood: the host has all of it once this arrives
STARVED = 512 * KiB  # what arrives while the reader is held off: past 64 KiB, within 1 MiB
RATE_WINDOW = 1.0  # seconds the console's rate is measured over before the reader is held


def _ended(log: console.ConsoleFile) -> bool:
    with log.path.open("rb") as text:
        text.seek(max(log.base, log.path.stat().st_size - 256))
        return END.encode() in text.read()


def _drained(log: console.ConsoleFile, stall: float) -> int:
    """The log's size once the END line after the flood arrived, or once no byte came for
    ``stall`` seconds.

    The guest's write returns with the flood still in the tty's buffers; under TCG the serial
    line drains it at its own pace, slower still while other VMs load the host.
    """
    def past(size: int) -> int | None:
        now = log.size()
        return now if now > size else None

    size = log.size()
    while not _ended(log):
        grown = poll(functools.partial(past, size), Deadline(stall), 0.5)
        if grown is None:
            break
        size = grown
    return log.size()


def _flood(guest: Guest, done: list[CommandResult | Exception]) -> None:
    try:
        done.append(guest.run_script(f"{{ yes '{LINE}' | head -n {LINES}; echo '{END}'; }}"
                                     " > /dev/console",
                                     timeout=300 * guest.scale))
    except Exception as error:  # raised again in the test's own thread
        done.append(error)


def _hold_reader(log: console.ConsoleFile, started: int) -> None:
    """Once the flood flows, keep every thread of this process (the console's reader with them)
    off the interpreter for as long as STARVED bytes take to arrive at the measured rate."""
    poll(lambda: log.size() > started or None, Deadline(60.0), 0.05)
    before, since = log.size(), time.monotonic()
    time.sleep(RATE_WINDOW)
    rate = (log.size() - before) / (time.monotonic() - since)
    if rate <= 0 or log.size() - started >= FLOOD_BYTES:
        return  # the flood has already arrived (a fast console): nothing left to hold off
    hold = STARVED / rate
    interval = sys.getswitchinterval()
    sys.setswitchinterval(hold + 10.0)
    try:
        end = time.monotonic() + hold
        while time.monotonic() < end:  # a busy loop keeps the GIL for the whole interval
            pass
    finally:
        sys.setswitchinterval(interval)


@pytest.mark.variants("sysfs")
def test_a_console_flood_is_read_up_to_the_cap_and_said(guest: Guest) -> None:
    log = guest.vm.log
    real_cap, log.cap = log.cap, CAP
    try:
        done: list[CommandResult | Exception] = []
        flood = threading.Thread(target=_flood, args=(guest, done), daemon=True)
        started = log.size()
        flood.start()
        _hold_reader(log, started)
        flood.join(310 * guest.scale)
        assert done, "the flood's command did not end"
        if isinstance(done[0], Exception):
            raise done[0]
        done[0].check()
        arrived = _drained(log, STALL * guest.scale) - started
        assert arrived >= FLOOD_BYTES, \
            f"only {arrived} bytes of the {FLOOD_BYTES}-byte flood reached the host"
        tracemalloc.start()
        head, view = guest.vm.own_console(), guest.vm.console_text()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    finally:
        log.cap = real_cap
    assert len(head) == CAP
    bound = 4 * (CAP + console.TAIL_BYTES)  # the head and the quoted tail, a few copies each
    assert peak < bound, f"reading the console took {peak} bytes, with a {CAP}-byte cap"
    last = view.splitlines()
    ends = [i for i, line in enumerate(last[:-1]) if END in line]  # quoted past the cap
    assert ends, last[-3:]
    assert LINE in last[ends[-1] - 1], last[ends[-1] - 1]  # the flood's last line, whole
    assert last[-1].startswith("[console past 64 KiB (console.READ_CAP): "), last[-1]
    assert last[-1].endswith(" bytes after it not scanned for kernel reports]")
    assert guest.run(("true",)).rc == 0
    assert guest.scan_kernel_log("the console flood").reports == ()
