"""The kernel's hang detectors' thresholds, as boot parameters scaled like every deadline.

Under KVM a task blocked for 8 s or a CPU that has not scheduled for 6 s is a hang; under TCG
(and in the debug flavor) everything runs slower, so each threshold is multiplied by the same
scale as the guest's command deadlines (accel.Accel.scale times the flavor's factor). Each
stays well under the guest's command deadline (session.guest.COMMAND_TIMEOUT, scaled the
same way), so a hang is reported by the kernel before the harness gives up waiting: that
report is what makes a hang the kernel's FAIL instead of the harness's timeout.

The symbols (CONFIG_DETECT_HUNG_TASK, CONFIG_SOFTLOCKUP_DETECTOR, the debug flavor's
CONFIG_HARDLOCKUP_DETECTOR) are in the config fragments; RCU's stall warnings come with
TREE_RCU in every suite kernel.
"""

from __future__ import annotations

# Seconds under KVM: a task in D state this long is reported (kernel/hung_task.c) ...
HUNG_TASK_SECONDS = 8.0
# ... a CPU that ran no task switch for twice this is a soft lockup, and one without timer
# interrupts for this long a hard lockup (kernel/watchdog.c; its range is 1..60) ...
WATCHDOG_THRESH_SECONDS = 3.0
# ... and a grace period this late an RCU CPU stall (kernel/rcu/tree_stall.h; 3..300).
RCU_STALL_SECONDS = 8.0


def _clamp(value: float, low: int, high: int) -> int:
    return max(low, min(high, round(value)))


def _thresholds(scale: float) -> tuple[int, int, int]:
    """(hung-task timeout, watchdog_thresh, RCU stall timeout) in seconds for ``scale``."""
    return (_clamp(HUNG_TASK_SECONDS * scale, 1, 3600),
            _clamp(WATCHDOG_THRESH_SECONDS * scale, 1, 60),
            _clamp(RCU_STALL_SECONDS * scale, 3, 300))


def detector_args(scale: float) -> tuple[str, ...]:
    """Kernel command-line arguments setting every detector's threshold for ``scale``."""
    hung, thresh, rcu = _thresholds(scale)
    return (
        f"sysctl.kernel.hung_task_timeout_secs={hung}",
        # The check runs every timeout by default: a hang is then seen after up to twice it.
        f"sysctl.kernel.hung_task_check_interval_secs={max(1, hung // 4)}",
        f"watchdog_thresh={thresh}",
        f"rcupdate.rcu_cpu_stall_timeout={rcu}",
    )


def hang_report_within(scale: float) -> float:
    """Seconds after which the slowest detector has reported a hang that started at 0."""
    hung, thresh, rcu = _thresholds(scale)
    return float(max(hung + max(1, hung // 4), 2 * thresh + 4, rcu))
