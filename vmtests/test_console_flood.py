"""A guest that floods its console: the host reads and scans at most the console's cap, says
so, and the guest and its verdict are unharmed (a flood from user space is no kernel report).

The real cap (console.READ_CAP, 64 MiB) is lowered to 64 KiB for this test's VM: the guest's
console (hvc0) carries about 60 KiB/s under TCG, so a flood past 64 MiB would take 20 minutes;
past 64 KiB it takes seconds, over the same path (guest tty, QEMU, vng, the drain
thread, the log file, ConsoleFile).
"""

from __future__ import annotations

import functools
import tracemalloc

import pytest

from kheaders_suite.boot import console
from kheaders_suite.host.deadline import Deadline, poll
from kheaders_suite.session.guest import Guest

KiB = 1 << 10
CAP = 64 * KiB
FLOOD = 12 * CAP  # well past the bound below on what reading the console may take
STALL = 30.0  # seconds (scaled) with no new console byte before the flood counts as lost
LINE = "console flood from the guest"
LINES = FLOOD // len(LINE) + 1  # whole lines, more than FLOOD bytes


def _drained(log: console.ConsoleFile, stall: float) -> int:
    """The log's size once it holds FLOOD bytes, or once no byte came for ``stall`` seconds.

    The guest's write returns with the flood still in the tty's buffers; under TCG the serial
    line drains it at its own pace, slower still while other VMs load the host.
    """
    def past(size: int) -> int | None:
        now = log.size()
        return now if now > size else None

    size = log.size()
    while size < FLOOD:
        grown = poll(functools.partial(past, size), Deadline(stall), 0.5)
        if grown is None:
            break
        size = grown
    return size


@pytest.mark.variants("sysfs")
def test_a_console_flood_is_read_up_to_the_cap_and_said(guest: Guest) -> None:
    log = guest.vm.log
    real_cap, log.cap = log.cap, CAP
    try:
        guest.run_script(f"yes '{LINE}' | head -n {LINES} > /dev/console",
                         timeout=300 * guest.scale).check()
        arrived = _drained(log, STALL * guest.scale)
        assert arrived >= FLOOD, f"only {arrived} bytes of the {FLOOD}-byte flood reached the host"
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
    assert LINE in last[-2], last[-2]  # the end of the flood, quoted past the cap
    assert last[-1].startswith("[console past 64 KiB (console.READ_CAP): "), last[-1]
    assert last[-1].endswith(" bytes after it not scanned for kernel reports]")
    assert guest.run(("true",)).rc == 0
    assert guest.scan_kernel_log("the console flood").reports == ()
