"""What ran, and whose fault each failure was: counted on the controller too (xdist replays
every worker's reports there), shown in the summary, and turned into the exit status."""

from __future__ import annotations

import pytest

from kheaders_suite.plugin.context import progress
from kheaders_suite.report import verdict


class OutcomeCounter:
    """Counts what ran, and whose fault each failure was. Presents a test body's
    infrastructure fault as the ERROR it is in the terminal (junit.py does it in JUnit)."""

    def __init__(self) -> None:
        self.run = 0
        self.skipped = 0
        self.kernel_failures = 0  # FAIL, and kernel reports in fixtures (ERROR)
        self.infra_errors: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        xfail = hasattr(report, "wasxfail")
        infra = verdict.reported(report.user_properties, verdict.INFRA_PROPERTY)
        if report.when == "call" and (report.passed or report.failed or xfail):
            self.run += 0 if infra else 1
        elif report.skipped and not xfail:
            self.skipped += 1
        if report.failed and not xfail:
            kernel = verdict.reported(report.user_properties, verdict.KERNEL_PROPERTY) \
                is not None or (report.when == "call" and not infra)
            if kernel:
                self.kernel_failures += 1
            else:
                self.infra_errors.append(report.nodeid)

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: pytest.TestReport
                                 ) -> tuple[str, str, tuple[str, dict[str, bool]]] | None:
        """A body's infrastructure fault shows as ERROR, a set-up's or teardown's kernel
        fault (a panic at boot, kheaders.ko not loading) as FAILED: the blame, not the phase,
        decides (verdict.py)."""
        if not isinstance(report, pytest.TestReport) or not report.failed or \
                hasattr(report, "wasxfail"):
            return None
        if report.when == "call" and \
                verdict.reported(report.user_properties, verdict.INFRA_PROPERTY):
            return "error", "E", ("ERROR", {"red": True})
        if report.when != "call" and \
                verdict.reported(report.user_properties, verdict.KERNEL_PROPERTY):
            return "failed", "F", ("FAILED", {"red": True})
        return None

    def summary(self) -> str | None:
        if not (self.kernel_failures or self.infra_errors):
            return None
        return (f"kheaders: {self.kernel_failures} kernel failures (FAIL, or a kernel report "
                f"in a fixture), {len(self.infra_errors)} infrastructure errors (ERROR: not a "
                "verdict on the kernel; see 'reproduce by hand' in each report)")

    def nothing_ran(self, exitstatus: int) -> bool:
        """A green exit where every selected test was skipped: nothing was checked, and a
        run that asked for a kernel and a variant must not pass without them."""
        return exitstatus == 0 and self.run == 0 and self.skipped > 0


OUTCOMES = pytest.StashKey[OutcomeCounter]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[OUTCOMES] = OutcomeCounter()
    config.pluginmanager.register(config.stash[OUTCOMES], "kheaders-outcomes")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """A run whose every selected test was skipped exits 1 (the controller decides)."""
    config = session.config
    counter = config.stash[OUTCOMES]
    if getattr(config, "workerinput", None) is None and counter.nothing_ran(
            int(session.exitstatus)):
        progress(config, f"every selected test ({counter.skipped}) was skipped: "
                         "nothing was checked, exit status 1 (see the skip reasons: -rs)")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
