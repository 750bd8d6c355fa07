"""Base against patched for one arch x variant, arch divergence across jobs, and the verdicts.

Every pair of a test's outcomes (base, patched) means one thing; ``TRANSITIONS`` is that
table, and docs/patch-ci.md shows it. In short: a check that held on base (PASS, XPASS)
and fails patched (FAIL, or XFAIL: the known failure is back) is a **regression**, and so is
a FAIL patched of a test that was skipped on base or is new; a check that held on base and is
SKIPped patched is a regression too, **lost coverage**, with the skip's reason; FAIL or XFAIL
on base and PASS or XPASS patched is a fix; a patched ERROR is the harness's (a fixture, a
VM lost), since the plugin writes every fault of the kernel (a panic, Oops, BUG, WARNING,
hung task, lockup or RCU stall, kheaders.ko not loading, the archive missing) as a FAIL.

Retried before a verdict: every patched test whose pair is a regression by a FAIL (or XFAIL)
and every patched ERROR is run once more, on a fresh VM with the same build
(``retry_candidates``; run.py runs them, side.Retry holds what came of it). The same outcome
again: the verdict above. Another one: the pair (base, retry outcome) decides; when that is
no regression either (it PASSed, say), the test is **flaky**: listed with both outcomes, not
blamed on the series and not clean. A test the retry left no result for keeps its first.

Who is blamed (the rules, in the order they apply):

- base broken: the base failed to build or boot, pytest left no results or ran no test
  (nothing collected, every test skipped, pytest itself stopped), a base test ERRORed, or
  the base archive is unreadable. Then nothing is blamed on the series (as syzbot's patch
  testing does): no test, timing or build comparison is made, only the archive and .config
  differences are shown, for information.
- regression: a test's pair is a regression (above) and the retry did not clear it; a
  timing point regressed beyond the samples' noise (kheaders_suite.timing.compare's rule);
  the patched kernel failed to build where the base, same config and toolchain, built (a
  series that does not compile is the most common finding of kernel CI); or the patched
  kernel did not boot where the base did, with the kernel's own report of why (a panic at
  boot: its line is quoted).
- infra error: a patched test ERRORed on its retry too; the patched kernel did not boot, with
  no report of the kernel's, on a second run of the side too (``needs_rerun``: the side is
  run again once); pytest left no results, ran no test or stopped. Never blamed on the
  series.
- flaky: a finding that did not repeat on its retry (a test, or a boot without a kernel
  report that worked the second time).
- fix (a check that failed on base holds patched), new and removed tests, and the other
  pairs are shown but change no verdict; so are archive, CONFIG_ and structure layout
  changes (layouts.py), which are measured whenever both archives are readable and differ,
  broken base or not.

A job's verdict is the first that applies of base-broken, regression, infra-error, flaky,
clean. The report's is regression if any job regressed (a real finding is not hidden by a
broken base elsewhere), else base-broken, else infra-error, else flaky, else clean. Exit
status: 0 clean or flaky (the flaky findings are listed: a harness hiccup is not the series'
fault, and a CI gate that failed on one would be re-run until green anyway), 1 regression,
2 infra error or broken base.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from kheaders_suite.errors import UserError
from kheaders_suite.patchci.archive import (
    ArchiveDiff,
    ConfigChange,
    diff_archives,
    diff_configs,
    read_archive_file,
)
from kheaders_suite.patchci.layouts import PROBE, LayoutDiff, Probe, compare_archives, toolchain
from kheaders_suite.patchci.side import Outcome, SideResult, SideStatus, TestCase, is_kernels
from kheaders_suite.records import target_id
from kheaders_suite.timing import compare as timing_compare
from kheaders_suite.verify.archive import Archive, ArchiveError


class CiVerdict(StrEnum):
    """A job's verdict and the report's (module docstring); the values are what report.json
    and report.md say."""

    CLEAN = "clean"
    REGRESSION = "regression"
    INFRA_ERROR = "infra-error"
    BASE_BROKEN = "base-broken"
    FLAKY = "flaky"


EXIT_STATUS = {CiVerdict.CLEAN: 0, CiVerdict.FLAKY: 0, CiVerdict.REGRESSION: 1,
               CiVerdict.INFRA_ERROR: 2, CiVerdict.BASE_BROKEN: 2}
_REPORT_ORDER = (CiVerdict.REGRESSION, CiVerdict.BASE_BROKEN, CiVerdict.INFRA_ERROR,
                 CiVerdict.FLAKY, CiVerdict.CLEAN)  # most severe first
_STATUS_KIND = {SideStatus.BUILD_FAILED: "build", SideStatus.BOOT_FAILED: "boot"}  # or "results"


class Change(StrEnum):
    """What a pair of outcomes (base, patched) means (``TRANSITIONS``)."""

    REGRESSION = "regression"
    LOST_COVERAGE = "lost coverage"  # a regression too: the check no longer runs
    FIX = "fix"
    ERROR = "error"  # the harness's: retried, then infra error or flaky
    NONE = ""


P, F, E, S, XF, XP = (Outcome.PASS, Outcome.FAIL, Outcome.ERROR, Outcome.SKIP,  # for the table
                      Outcome.XFAIL, Outcome.XPASS)
# base outcome (None: the test is new) -> patched outcome -> what it means. A base ERROR
# never gets here: it breaks the base. A pair not listed means nothing.
TRANSITIONS: dict[Outcome | None, dict[Outcome, Change]] = {
    P: {F: Change.REGRESSION, XF: Change.REGRESSION, S: Change.LOST_COVERAGE},
    XP: {F: Change.REGRESSION, XF: Change.REGRESSION, S: Change.LOST_COVERAGE},
    F: {P: Change.FIX, XP: Change.FIX},
    XF: {F: Change.REGRESSION, P: Change.FIX, XP: Change.FIX, S: Change.LOST_COVERAGE},
    S: {F: Change.REGRESSION},
    None: {F: Change.REGRESSION},
}
_BLAMED = (Change.REGRESSION, Change.LOST_COVERAGE)


def transition(base: Outcome | None, patched: Outcome) -> Change:
    if patched == Outcome.ERROR:
        return Change.ERROR
    return TRANSITIONS.get(base, {}).get(patched, Change.NONE)


@dataclass(frozen=True)
class Finding:
    kind: str  # "test", "build", "boot", "results" (no JUnit, no test run), "archive", "config"
    name: str  # the test's node id, or the step that failed
    # The test's outcome on base, or the side's status for a build, boot or results finding;
    # None when the test is not there, or for an archive or config finding.
    base: Outcome | SideStatus | None
    patched: Outcome | SideStatus | None  # patched's first run
    message: str = ""  # first line of the failure or error (the one the finding rests on)
    retry: Outcome | SideStatus | None = None  # the retry's outcome; None: not retried


@dataclass(frozen=True)
class TestChanges:
    __test__ = False  # a record, not a pytest test class

    regressions: tuple[Finding, ...] = ()
    fixes: tuple[Finding, ...] = ()
    new: tuple[Finding, ...] = ()
    removed: tuple[Finding, ...] = ()
    infra: tuple[Finding, ...] = ()  # patched ERRORs, on the retry too
    flaky: tuple[Finding, ...] = ()  # findings the retry did not repeat


@dataclass(frozen=True)
class JobReport:
    base: SideResult
    patched: SideResult
    verdict: CiVerdict
    base_problems: tuple[Finding, ...]
    regressions: tuple[Finding, ...]
    fixes: tuple[Finding, ...]
    new: tuple[Finding, ...]
    removed: tuple[Finding, ...]
    infra: tuple[Finding, ...]
    archive: ArchiveDiff | None
    config: tuple[ConfigChange, ...]
    timing: tuple[timing_compare.Verdict, ...]  # every point; regressed: status REGRESSED
    timing_notes: tuple[str, ...]
    layouts: LayoutDiff | None = None  # None: not measured (see compare_job)
    flaky: tuple[Finding, ...] = ()

    @property
    def arch(self) -> str:
        return self.base.arch

    @property
    def variant(self) -> str:
        return self.base.variant

    @property
    def timing_regressions(self) -> tuple[timing_compare.Verdict, ...]:
        return tuple(v for v in self.timing if v.status == timing_compare.PointStatus.REGRESSED)


def retry_candidates(base: Mapping[str, TestCase], patched: Mapping[str, TestCase]
                     ) -> list[str]:
    """The patched tests to run once more before a verdict: each ERROR, and each regression
    by a FAIL or XFAIL (lost coverage is a skip's reason, which a retry does not change)."""
    def suspect(t: TestCase) -> bool:
        change = transition(base[t.nodeid].outcome if t.nodeid in base else None, t.outcome)
        return change in (Change.ERROR, Change.REGRESSION)
    return sorted(t.nodeid for t in patched.values() if suspect(t))


def _message(change: Change, case: TestCase) -> str:
    return f"lost coverage: {case.message or 'skipped'}" if change == Change.LOST_COVERAGE \
        else case.message


def _judge(base: TestCase | None, first: TestCase, again: TestCase | None
           ) -> tuple[str, Finding]:
    """(group, finding) of a test on both sides, its retry (None: none) taken into account.
    Groups: "reg", "fix", "infra", "flaky", "new", "" (nothing to say)."""
    was = base.outcome if base else None
    change = transition(was, first.outcome)
    if again is None or again.outcome == first.outcome:
        group = {Change.REGRESSION: "reg", Change.LOST_COVERAGE: "reg", Change.FIX: "fix",
                 Change.ERROR: "infra"}.get(change, "" if base else "new")
        return group, Finding("test", first.nodeid, was, first.outcome,
                              _message(change, first) or (base.message if base else ""),
                              again.outcome if again else None)
    retried = transition(was, again.outcome)
    group = "reg" if retried in _BLAMED else "infra" if retried == Change.ERROR else "flaky"
    shown = again if group != "flaky" else first
    return group, Finding("test", first.nodeid, was, first.outcome, _message(retried, shown)
                          if group == "reg" else shown.message, again.outcome)


def compare_tests(base: Mapping[str, TestCase], patched: Mapping[str, TestCase],
                  retried: Mapping[str, TestCase] | None = None) -> TestChanges:
    """Sort every test present on either side by what its pair of outcomes means, after the
    retry of the patched side's suspects (``retried``: their outcomes on the retry)."""
    again = retried or {}
    out: dict[str, list[Finding]] = {k: [] for k in ("reg", "fix", "new", "gone", "infra",
                                                     "flaky")}
    for ident in sorted(base.keys() | patched.keys()):
        a, b = base.get(ident), patched.get(ident)
        if b is None:
            assert a is not None
            out["gone"].append(Finding("test", ident, a.outcome, None, a.message))
            continue
        group, finding = _judge(a, b, again.get(ident))
        if group:
            out[group].append(finding)
    return TestChanges(*(tuple(out[k]) for k in ("reg", "fix", "new", "gone", "infra",
                                                 "flaky")))


def _status_finding(side: SideResult, base: SideStatus | None,
                    patched: SideStatus | None) -> Finding:
    kind = _STATUS_KIND.get(side.status, "results")
    return Finding(kind, kind, base, patched, side.message or side.status)


# pytest's exit statuses that mean the run itself stopped (pytest.ExitCode).
_PYTEST_STOPPED = {2: "interrupted", 3: "internal error", 4: "usage error"}


def ran_nothing(side: SideResult) -> str:
    """Why a side whose status is "ok" still tested nothing, or stopped; "" when it ran. A
    run that collected nothing (exit 5) or skipped every test is never clean."""
    if side.status != SideStatus.OK:
        return ""
    rc = side.exit_status
    if rc is not None and (rc in _PYTEST_STOPPED or rc < 0):
        what = _PYTEST_STOPPED.get(rc, f"killed by signal {-rc}")
        return f"pytest stopped (exit {rc}, {what}): its results are incomplete"
    if not side.tests:
        return f"pytest collected no test (exit {rc})" if rc is not None else \
            "pytest ran no test"
    if all(t.outcome == Outcome.SKIP for t in side.tests.values()):
        return f"pytest skipped every test ({len(side.tests)})"
    return ""


def _ran_nothing_finding(side: SideResult, patched: bool) -> list[Finding]:
    why = ran_nothing(side)
    if not why:
        return []
    return [Finding("results", "results", None if patched else SideStatus.OK,
                    SideStatus.OK if patched else None, why)]


def base_problems(base: SideResult) -> list[Finding]:
    """Why the base cannot serve as the reference: its status, a run that tested nothing,
    then each ERRORed test."""
    problems = [] if base.status == SideStatus.OK else [_status_finding(base, base.status, None)]
    problems += _ran_nothing_finding(base, patched=False)
    return problems + [Finding("test", t.nodeid, Outcome.ERROR, None, t.message)
                       for t in sorted(base.tests.values(), key=lambda t: t.nodeid)
                       if t.outcome == Outcome.ERROR]


def boot_report(side: SideResult) -> str:
    """The kernel's own report of why the side did not boot (the panic's line, or the
    plugin's message when it quotes none), "" when it gave none: a VM that never came up."""
    for t in sorted(side.tests.values(), key=lambda t: t.nodeid):
        if t.outcome == Outcome.FAIL and (t.kernel or is_kernels(t.message)):
            return t.kernel[0].split("\n", 1)[0] if t.kernel else t.message
    return ""


def needs_rerun(base: SideResult, patched: SideResult) -> bool:
    """The patched side did not boot where the base did, the kernel said nothing of why, and
    the side has not been run again yet: run it again once (a boot lost to the host)."""
    return (patched.status == SideStatus.BOOT_FAILED and not patched.rerun_after
            and not boot_report(patched) and not base_problems(base))


def _patched_status(patched: SideResult) -> tuple[list[Finding], list[Finding], list[Finding]]:
    """(regressions, infra errors, flaky) the patched side's status alone makes."""
    if patched.status == SideStatus.OK:
        flaky = Finding("boot", "boot", SideStatus.OK, SideStatus.BOOT_FAILED,
                        patched.rerun_after, SideStatus.OK) if patched.rerun_after else None
        return [], _ran_nothing_finding(patched, patched=True), [flaky] if flaky else []
    if patched.status == SideStatus.BUILD_FAILED:
        return [_status_finding(patched, SideStatus.OK, patched.status)], [], []
    if patched.status == SideStatus.BOOT_FAILED:
        said = boot_report(patched)
        again = SideStatus.BOOT_FAILED if patched.rerun_after else None
        if said:
            return [Finding("boot", "boot", SideStatus.OK, patched.status,
                            f"patched kernel did not boot: {said}", again)], [], []
        first = patched.rerun_after or patched.message or patched.status
        return [], [Finding("boot", "boot", SideStatus.OK, patched.status, first, again)], []
    return [], [_status_finding(patched, SideStatus.OK, patched.status)], []


def _load_archives(base: SideResult, patched: SideResult
                   ) -> tuple[ArchiveDiff | None, list[Finding], list[Finding]]:
    """(diff or None, base problems, patched infra errors). No diff unless both sides have an
    archive: a side without one failed its build, which its status already says."""
    if base.archive is None or patched.archive is None:
        return None, [], []
    loaded: list[Archive | None] = []
    found: list[list[Finding]] = [[], []]
    for i, path in enumerate((base.archive, patched.archive)):
        try:
            loaded.append(read_archive_file(path))
        except ArchiveError as exc:
            loaded.append(None)
            found[i].append(Finding("archive", str(path), None, None, str(exc)))
    old, new = loaded
    diff = diff_archives(old, new) if old is not None and new is not None else None
    return diff, found[0], found[1]


def _config_changes(base: SideResult, patched: SideResult) -> tuple[list[ConfigChange],
                                                                    list[Finding]]:
    if base.config is None or patched.config is None:
        return [], []
    try:
        return diff_configs(base.config.read_text(), patched.config.read_text()), []
    except OSError as exc:
        return [], [Finding("config", str(exc.filename), None, None, str(exc.strerror))]


def compare_timing(base: Sequence[dict[str, Any]], patched: Sequence[dict[str, Any]]
                   ) -> tuple[list[timing_compare.Verdict], list[str]]:
    """Each (arch, variant) timing document of base against patched's, by the suite's own
    rule (kheaders_suite.timing.compare: no overlap and a median shift past the noise, after
    dividing out host speed), with its notes on what differs in the runs' identity."""
    def by_target(docs: Sequence[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
        return {(d["arch"], d["variant"]): d for d in docs}
    old, new = by_target(base), by_target(patched)
    verdicts: list[timing_compare.Verdict] = []
    notes = [f"timing: {target_id(*k)} measured on {'base' if k in old else 'patched'} only, "
             "not compared" for k in sorted(old.keys() ^ new.keys())]
    for key in sorted(old.keys() & new.keys()):
        notes += timing_compare.notes(old[key], new[key])
        verdicts += timing_compare.compare(old[key], new[key])
    return verdicts, notes


def job_verdict(base_problems: Sequence[Finding], regressions: Sequence[Finding],
                timing: Iterable[timing_compare.Verdict],
                infra: Sequence[Finding], flaky: Sequence[Finding] = ()) -> CiVerdict:
    """The first of base-broken, regression, infra-error, flaky that applies; else clean."""
    if base_problems:
        return CiVerdict.BASE_BROKEN
    if regressions or any(v.status == timing_compare.PointStatus.REGRESSED for v in timing):
        return CiVerdict.REGRESSION
    if infra:
        return CiVerdict.INFRA_ERROR
    return CiVerdict.FLAKY if flaky else CiVerdict.CLEAN


def _layouts(base: SideResult, patched: SideResult, archive: ArchiveDiff | None,
             probe: Probe | None) -> LayoutDiff | None:
    """Structure layouts of the two archives; None when there is nothing to measure: a side
    has no readable archive, or both hold the same headers (which give the same layouts)."""
    if probe is None or archive is None or archive.unchanged:
        return None
    if base.archive is None or patched.archive is None:  # archive is None then; for mypy
        return None
    try:
        cc, srcarch = toolchain(base.arch)
    except UserError as exc:
        return LayoutDiff("", notes=(f"structure layouts not measured: {exc}",))
    return compare_archives(base.archive, patched.archive, cc, srcarch, probe)


def compare_job(base: SideResult, patched: SideResult,
                layout_probe: Probe | None = PROBE) -> JobReport:
    """The whole comparison of one arch x variant (reads the two archives and .configs, and
    compiles the layout probe against both archives; ``layout_probe`` None skips that)."""
    if (base.arch, base.variant) != (patched.arch, patched.variant):
        raise ValueError(f"base is {base.target}, patched is {patched.target}: "
                         "a job compares one arch x variant")
    archive, archive_base, archive_patched = _load_archives(base, patched)
    config, config_infra = _config_changes(base, patched)
    broken = base_problems(base) + archive_base
    changes = TestChanges()
    timing: list[timing_compare.Verdict] = []
    notes: list[str] = []
    status_regressions, status_infra, status_flaky = _patched_status(patched)
    if broken:
        status_regressions = status_flaky = []  # nothing is blamed on the series
    else:
        if patched.status == SideStatus.OK:
            retried = patched.retry.tests if patched.retry else {}
            changes = compare_tests(base.tests, patched.tests, retried)
        timing, notes = compare_timing(base.timing, patched.timing)
    regressions = [*status_regressions, *changes.regressions]
    infra = [*status_infra, *changes.infra, *archive_patched, *config_infra]
    flaky = [*status_flaky, *changes.flaky]
    return JobReport(
        base, patched, job_verdict(broken, regressions, timing, infra, flaky), tuple(broken),
        tuple(regressions), changes.fixes, changes.new, changes.removed, tuple(infra),
        archive, tuple(config), tuple(timing), tuple(notes),
        _layouts(base, patched, archive, layout_probe), tuple(flaky))


def report_verdict(verdicts: Iterable[str]) -> CiVerdict:
    """The whole report's verdict from its jobs' (module docstring; read from their documents,
    so plain strings)."""
    seen = set(verdicts)
    return next((v for v in _REPORT_ORDER if v in seen), CiVerdict.CLEAN)


# --- arch divergence -------------------------------------------------------------------------

@dataclass(frozen=True)
class Divergence:
    side: str  # "base" or "patched"
    test: str  # the node id with the arch replaced by "*": test_identity[*-sysfs]
    passed: tuple[str, ...]  # arches it PASSed on
    failed: tuple[str, ...]  # arches it FAILed on


_PARAMS = re.compile(r"\[([^\]]*)\]$")


def without_arch(nodeid: str, arches: Collection[str]) -> tuple[str, str] | None:
    """(node id with its arch parameter replaced by "*", the arch); None for a test that is
    not parametrized by exactly one known arch (the suite's ids end in [<arch>-<variant>])."""
    match = _PARAMS.search(nodeid)
    if match is None:
        return None
    tokens = match.group(1).split("-")
    hits = [i for i, token in enumerate(tokens) if token in arches]
    if len(hits) != 1:
        return None
    arch, tokens[hits[0]] = tokens[hits[0]], "*"
    return f"{nodeid[:match.start(1)]}{'-'.join(tokens)}]", arch


def divergences(side: str, outcomes: Mapping[str, str],
                arches: Collection[str]) -> list[Divergence]:
    """Tests that PASS on one arch and FAIL on another, among ``outcomes`` (node id ->
    outcome, all jobs of one side together). ERROR and SKIP take no part."""
    by_test: dict[str, dict[str, str]] = {}
    for ident, outcome in outcomes.items():
        split = without_arch(ident, arches)
        if split is not None:
            by_test.setdefault(split[0], {})[split[1]] = outcome
    found = []
    for test, per_arch in sorted(by_test.items()):
        passed = tuple(sorted(a for a, o in per_arch.items() if o == Outcome.PASS))
        failed = tuple(sorted(a for a, o in per_arch.items() if o == Outcome.FAIL))
        if passed and failed:
            found.append(Divergence(side, test, passed, failed))
    return found
