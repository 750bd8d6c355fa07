from pathlib import Path

from kheaders_suite.boot import console

DATA = Path(__file__).parent / "data"

WARN = """\
[    3.100000] virtme-init: ssh: starting
[    5.000001] ------------[ cut here ]------------
[    5.000002] WARNING: CPU: 0 PID: 1 at kernel/kheaders.c:40 ikheaders_read+0x10/0x20
[    5.000003] Modules linked in: kheaders
[    5.000004] Call Trace:
[    5.000005]  <TASK>
[    5.000006] ---[ end trace 0000000000000000 ]---
[    5.100000] random: crng init done
"""

OOPS = """\
[   12.0] BUG: kernel NULL pointer dereference, address: 0000000000000008
[   12.1] Oops: 0000 [#1] PREEMPT SMP NOPTI
[   12.2] RIP: 0010:ikheaders_read+0x5/0x20
[   12.3] ---[ end trace 0000000000000000 ]---
"""


def test_warning_report_is_found_with_its_body() -> None:
    reports = console.find_reports(WARN)
    assert len(reports) == 1
    assert reports[0].headline.startswith("WARNING: CPU: 0 PID: 1 at kernel/kheaders.c:40")
    assert reports[0].lines[-1].startswith("---[ end trace")
    assert "random: crng" not in str(reports[0])


def test_bug_and_its_oops_in_one_report() -> None:
    reports = console.find_reports(OOPS)
    assert [r.headline.split(":")[0] for r in reports] == ["BUG"]
    assert "RIP: 0010:ikheaders_read" in str(reports[0])


def test_clean_log_has_no_reports() -> None:
    assert console.find_reports("[ 1.0] Linux version 6.12.117\n[ 2.0] Run /init\n") == []


def test_fortify_panic_is_a_report() -> None:
    text = ("[ 9.0] detected buffer overflow in memcpy\n"
            "[ 9.1] kernel BUG at lib/string_helpers.c:1\n")
    assert console.find_reports(text)[0].headline == "detected buffer overflow in memcpy"


def test_hang_detectors_reports_are_reports() -> None:
    """Each hang detector's headline opens a report (the texts as kernel/hung_task.c,
    kernel/watchdog.c and kernel/rcu/tree_stall.h print them), and a near miss does not."""
    lines = ["INFO: task modprobe:97 blocked for more than 30 seconds.",
             "watchdog: BUG: soft lockup - CPU#1 stuck for 31s! [insmod:120]",
             "watchdog: Watchdog detected hard LOCKUP on cpu 1",
             "rcu: INFO: rcu_sched self-detected stall on CPU",
             "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
             "Unable to handle kernel NULL pointer dereference at virtual address 0"]
    for line in lines:
        assert [r.headline for r in console.find_reports(f"[ 40.0] {line}\n")] == [line]
    assert console.find_reports("[ 1.0] INFO: task list printed\n[ 1.1] rcu: Hierarchical\n") == []


def test_hostfwd_conflict_detected() -> None:
    assert console.hostfwd_conflict(
        "qemu-system-x86_64: Could not set up host forwarding rule 'tcp:127.0.0.1:2222-:22'")
    assert not console.hostfwd_conflict("all good")


def test_recorded_boot_console_is_clean() -> None:
    """A real console log recorded from a TCG boot of the sysfs kernel."""
    text = (DATA / "console-x86_64-sysfs.log").read_text()
    assert "virtme-ng-init: initialization done" in text
    assert "kernel version: 6.12.117 x86_64" in text
    assert console.find_reports(text) == []


def test_udev_rename_gets_a_hint() -> None:
    text = "[ 2.6] virtio_net virtio2 enp0s4: renamed from eth0 (while UP)\n"
    hint = console.boot_hint(text)
    assert hint is not None
    assert "remove the udev package" in hint
    assert console.boot_hint("[ 1.0] all fine\n") is None


def test_milestones_of_a_recorded_boot() -> None:
    text = (DATA / "console-x86_64-sysfs.log").read_text()
    marks = console.milestones(text)
    assert marks["init"].guest_seconds == 0.725492
    assert marks["init_done"].guest_seconds == 3.414703
    assert text[marks["init"].offset:].startswith("[    0.725492] Run ")
    assert marks["kernel"].offset <= marks["init"].offset < marks["init_done"].offset


def test_bash_init_is_a_milestone_too_and_missing_ones_are_absent() -> None:
    arm = "[   19.5] virtme-init: initialization done\n"
    assert console.milestones("[    3.1] kheaders-init: initialization done\n")["init_done"]
    assert console.milestones(arm)["init_done"].guest_seconds == 19.5
    assert "init" not in console.milestones(arm)
    assert console.milestones("no kernel here\n") == {}
