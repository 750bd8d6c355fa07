"""Base against patched for one arch x variant, arch divergence across jobs, and the verdicts.

Who is blamed (the rules, in the order they apply):

- base broken: the base failed to build or boot, pytest left no results, a base test ERRORed,
  or the base archive is unreadable. Then nothing is blamed on the series (as syzbot's patch
  testing does): no test, timing or build comparison is made, only the archive and .config
  differences are shown, for information.
- regression: a test PASSed on base and FAILs patched; a timing point regressed beyond the
  samples' noise (kheaders_suite.timing.compare's rule); or the patched kernel failed to
  build where the base, same config and toolchain, built (a series that does not compile is
  the most common finding of kernel CI).
- infra error: a patched test ERRORed (a fixture: build, VM, SSH; a VM lost or a guest
  timeout inside a test body), the patched kernel did not boot, or pytest left no results.
  Never blamed on the series. What the kernel printed is not infrastructure: a BUG, WARNING
  or panic in a test body is a FAIL (a panic too, read from the console when it took the VM
  with it), and one at boot or in a fixture is an ERROR that side.py reads as a FAIL.
- fix (base FAIL, patched PASS), new and removed tests, and SKIP in any position are shown
  but change no verdict; so are archive, CONFIG_ and structure layout changes (layouts.py),
  which are measured whenever both archives are readable and differ, broken base or not.

A job's verdict is the first that applies of base-broken, regression, infra-error, clean.
The report's is regression if any job regressed (a real finding is not hidden by a broken
base elsewhere), else base-broken, else infra-error, else clean. Exit status: 0 clean,
1 regression, 2 infra error or broken base.
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
from kheaders_suite.patchci.side import Outcome, SideResult, SideStatus, TestCase
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


EXIT_STATUS = {CiVerdict.CLEAN: 0, CiVerdict.REGRESSION: 1, CiVerdict.INFRA_ERROR: 2,
               CiVerdict.BASE_BROKEN: 2}
_REPORT_ORDER = (CiVerdict.REGRESSION, CiVerdict.BASE_BROKEN, CiVerdict.INFRA_ERROR,
                 CiVerdict.CLEAN)  # most severe first
_STATUS_KIND = {SideStatus.BUILD_FAILED: "build", SideStatus.BOOT_FAILED: "boot"}  # or "results"


@dataclass(frozen=True)
class Finding:
    kind: str  # "test", "build", "boot", "results" (no JUnit), "archive", "config"
    name: str  # the test's node id, or the step that failed
    # The test's outcome on base, or the side's status for a build, boot or results finding;
    # None when the test is not there, or for an archive or config finding.
    base: Outcome | SideStatus | None
    patched: Outcome | SideStatus | None
    message: str = ""  # first line of the failure or error


@dataclass(frozen=True)
class TestChanges:
    __test__ = False  # a record, not a pytest test class

    regressions: tuple[Finding, ...] = ()
    fixes: tuple[Finding, ...] = ()
    new: tuple[Finding, ...] = ()
    removed: tuple[Finding, ...] = ()
    infra: tuple[Finding, ...] = ()  # patched ERRORs


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

    @property
    def arch(self) -> str:
        return self.base.arch

    @property
    def variant(self) -> str:
        return self.base.variant

    @property
    def timing_regressions(self) -> tuple[timing_compare.Verdict, ...]:
        return tuple(v for v in self.timing if v.status == timing_compare.PointStatus.REGRESSED)


def compare_tests(base: Mapping[str, TestCase], patched: Mapping[str, TestCase]) -> TestChanges:
    """Sort every test present on either side by what its pair of outcomes means."""
    out: dict[str, list[Finding]] = {k: [] for k in ("reg", "fix", "new", "gone", "infra")}
    for ident in sorted(base.keys() | patched.keys()):
        a, b = base.get(ident), patched.get(ident)
        finding = Finding("test", ident, a.outcome if a else None, b.outcome if b else None,
                          (b.message if b and b.message else a.message if a else ""))
        if b is not None and b.outcome == Outcome.ERROR:
            out["infra"].append(finding)
        elif a is None:
            out["new"].append(finding)
        elif b is None:
            out["gone"].append(finding)
        elif (a.outcome, b.outcome) == (Outcome.PASS, Outcome.FAIL):
            out["reg"].append(finding)
        elif (a.outcome, b.outcome) == (Outcome.FAIL, Outcome.PASS):
            out["fix"].append(finding)
    return TestChanges(*(tuple(out[k]) for k in ("reg", "fix", "new", "gone", "infra")))


def _status_finding(side: SideResult, base: SideStatus | None,
                    patched: SideStatus | None) -> Finding:
    kind = _STATUS_KIND.get(side.status, "results")
    return Finding(kind, kind, base, patched, side.message or side.status)


def base_problems(base: SideResult) -> list[Finding]:
    """Why the base cannot serve as the reference: its status, then each ERRORed test."""
    problems = [] if base.status == SideStatus.OK else [_status_finding(base, base.status, None)]
    return problems + [Finding("test", t.nodeid, Outcome.ERROR, None, t.message)
                       for t in sorted(base.tests.values(), key=lambda t: t.nodeid)
                       if t.outcome == Outcome.ERROR]


def _patched_status(patched: SideResult) -> tuple[list[Finding], list[Finding]]:
    """(regressions, infra errors) the patched side's status alone makes."""
    if patched.status == SideStatus.OK:
        return [], []
    finding = _status_finding(patched, SideStatus.OK, patched.status)
    return ([finding], []) if patched.status == SideStatus.BUILD_FAILED else ([], [finding])


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
                infra: Sequence[Finding]) -> CiVerdict:
    """The first of base-broken, regression, infra-error that applies; else clean."""
    if base_problems:
        return CiVerdict.BASE_BROKEN
    if regressions or any(v.status == timing_compare.PointStatus.REGRESSED for v in timing):
        return CiVerdict.REGRESSION
    return CiVerdict.INFRA_ERROR if infra else CiVerdict.CLEAN


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
    status_regressions, status_infra = _patched_status(patched)
    if broken:
        status_regressions = []  # nothing is blamed on the series
    else:
        if patched.status == SideStatus.OK:
            changes = compare_tests(base.tests, patched.tests)
        timing, notes = compare_timing(base.timing, patched.timing)
    regressions = [*status_regressions, *changes.regressions]
    infra = [*status_infra, *changes.infra, *archive_patched, *config_infra]
    return JobReport(
        base, patched, job_verdict(broken, regressions, timing, infra), tuple(broken),
        tuple(regressions), changes.fixes, changes.new, changes.removed, tuple(infra),
        archive, tuple(config), tuple(timing), tuple(notes),
        _layouts(base, patched, archive, layout_probe))


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
