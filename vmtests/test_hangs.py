"""The kernel's hang detectors, caught for real: a hang is the kernel's FAIL, not a timeout.

kheaders_bugs.ko (vmtests/bugs/) spins with preemption off (bug=spin: the soft-lockup
detector's case) or sleeps in D state (bug=block: the hung-task detector's case), for longer
than any detector's threshold. An inner pytest run with this plugin loads it once per hang,
each in its own test: the detector's report must FAIL that test with the report's text, well
before the command's deadline (boot/detectors.py scales the thresholds with it), and the hung
guest is closed, so the next test gets a fresh one and passes. Without the detectors
(CONFIG_SOFTLOCKUP_DETECTOR, CONFIG_DETECT_HUNG_TASK) or their console patterns, each load
waits out its deadline and ends in a GuestTimeout: an ERROR, and this test fails.

Every flavor has the detectors; the plain one is the fast one to show them on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kheaders_suite.plugin.options import Settings
from kheaders_suite.records import Target

from .test_debug_flavor import any_flavor_bugs_module, kernel_failures, run_with_module
from .test_faults import memory_for, qemus_with

__all__ = ["any_flavor_bugs_module"]  # the fixture, imported for its name

# (inner test, bug=, the first words of the detector's report).
CASES = (
    ("spin", "spin", "BUG: soft lockup - CPU#"),
    ("block", "block", "INFO: task insmod:"),
)

INNER = '''
import os
from pathlib import Path
import pytest

MODULE = Path(os.environ["KHEADERS_BUGS_KO"]).read_bytes()
''' + "".join(f'''
@pytest.mark.variants("sysfs")
def test_{name}(guest):
    guest.write_bytes("/tmp/kheaders_bugs.ko", MODULE)
    guest.run(("insmod", "/tmp/kheaders_bugs.ko", "bug={bug}"))
''' for name, bug, _ in CASES) + '''
@pytest.mark.variants("sysfs")
def test_after(guest):
    assert guest.run(("true",)).rc == 0
'''


@pytest.mark.variants("sysfs")
def test_a_hang_fails_the_test_that_caused_it_quoting_the_detector(
        target: Target, suite_settings: Settings, any_flavor_bugs_module: Path,
        tmp_path: Path) -> None:
    memory = memory_for(target.arch, base=1960)
    got, log, stderr = run_with_module(tmp_path, INNER, target, suite_settings, memory,
                                       any_flavor_bugs_module)
    for name, text in kernel_failures(got, CASES, log):
        assert "kernel reported during" in text, log
        assert "GuestTimeout" not in text, f"{name}: the deadline, not the detector\n{log}"
    assert got["test_after"] == ("passed", ""), log
    assert stderr.count("booting a new one") == 2, log
    assert qemus_with(memory) == [], "QEMU of the inner run still running"
