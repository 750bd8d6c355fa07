"""The report as one JSON document: what every output (Markdown, KCIDB) and the merge read.

A matrix job writes a report of one job; kheaders-ci-merge joins such reports into one. The
keys below are the stable interface (a reader checks "schema_version" first; a change that
renames or removes a key, or changes its meaning, bumps it):

    schema_version 2, kind "kheaders-suite/patch-ci"
    run       {run_id, tree_name, git_url, base_ref, base_commit, patched_commit,
               patchset_hash, series, message_id}       (strings; "" when not known)
    verdict   "clean" | "regression" | "infra-error" | "base-broken" | "flaky";
              exit_status 0/1/2 (flaky: 0)
    jobs      one per arch x variant, sorted by arch then variant:
      target "<arch>-<variant>", arch, variant, verdict, exit_status
      base, patched   {status, message, notes [str], exit_status (pytest's; null: not
                       known), rerun_after (the first run's failed boot when the side was
                       run again, else ""), retry (null, or {asked [node ids],
                       exit_status, tests {...}}: the second run of the suspect tests),
                       tests {node id: {outcome "pass"|"fail"|"error"|"skip"|"xfail"|
                                        "xpass", message, kernel [str]}}}
                (kernel: the BUG/WARNING/Oops/panic reports the failure quotes, each its
                lines, headline first; only on a test that has them)
      regressions, fixes, new, removed, infra_errors, base_problems, flaky
                      [{kind, name, base, patched, message, retry}]   (compare.Finding:
                      patched is the first run's outcome, retry the second's or null)

Version 2 added "flaky" (the verdict and the job key), the outcomes "xfail" and "xpass",
the sides' exit_status, rerun_after and retry, and the findings' retry; docread.py reads a
version 1 document as version 2 with those empty.
      archive   null (a side had none) or {base_bytes, patched_bytes, base_members,
                patched_members, added, removed, changed [names],
                diffs [{name, lines, omitted}], base_release, patched_release}
      layouts   null (not measured: a side had no readable archive, or both archives hold
                the same headers) or {cc, structs (measured on both sides), notes [str],
                changes [{name, base_size, patched_size, why,
                          members [{path, base_offset, patched_offset, base_size,
                                    patched_size, why}]}]}
                (patchci.layouts: bytes; null on a side that did not measure the struct or
                member, "why" the compiler's reason). Information only, no verdict. Added
                within version 1: a document without it reads as null.
      config_changes  [{symbol, base, patched}]   (null: not in that .config)
      timing    {notes [str], points [{key, status, base, patched, change, speed, line}]}
                (base/patched: {count, median, min, max} or null; status as kheaders-compare)
    divergences  [{side, test, passed [arches], failed [arches]}]   (across all jobs)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TypedDict, cast

from kheaders_suite.catalog import arches, variants
from kheaders_suite.patchci.archive import ArchiveDiff
from kheaders_suite.patchci.compare import (
    EXIT_STATUS,
    Finding,
    JobReport,
    divergences,
    report_verdict,
)
from kheaders_suite.patchci.layouts import LayoutDiff
from kheaders_suite.patchci.side import Retry, SideResult, TestCase
from kheaders_suite.timing.compare import Verdict
from kheaders_suite.timing.stats import Summary

SCHEMA_VERSION = 2
KIND = "kheaders-suite/patch-ci"
SIDES = ("base", "patched")


@dataclass(frozen=True)
class RunInfo:
    """What was tested. ``run_id`` is the same for every job of one CI run (KCIDB ids are
    made from it, and the merge refuses jobs of different runs); "" means not known."""

    run_id: str
    tree_name: str = ""
    git_url: str = ""
    base_ref: str = ""
    base_commit: str = ""  # 40 hex digits
    patched_commit: str = ""  # the series' last commit, when applied as commits
    patchset_hash: str = ""  # sha256 of the patches (KCIDB's recipe), when applied as files
    series: str = ""  # the series' subject (cover letter or single patch)
    message_id: str = ""  # of the mail the report answers


class RunDoc(TypedDict):
    run_id: str
    tree_name: str
    git_url: str
    base_ref: str
    base_commit: str
    patched_commit: str
    patchset_hash: str
    series: str
    message_id: str


class _OutcomeAdditions(TypedDict, total=False):
    """Added within schema version 1, and written only when not empty."""

    kernel: list[str]


class OutcomeDoc(_OutcomeAdditions):
    outcome: str
    message: str


class RetryDoc(TypedDict):
    asked: list[str]
    exit_status: int | None
    tests: dict[str, OutcomeDoc]


class SideDoc(TypedDict):
    status: str
    message: str
    notes: list[str]
    tests: dict[str, OutcomeDoc]
    exit_status: int | None
    rerun_after: str
    retry: RetryDoc | None


class FindingDoc(TypedDict):
    kind: str
    name: str
    base: str | None
    patched: str | None
    message: str
    retry: str | None


class HeaderDiffDoc(TypedDict):
    name: str
    lines: list[str]
    omitted: int


class ArchiveDoc(TypedDict):
    base_bytes: int
    patched_bytes: int
    base_members: int
    patched_members: int
    added: list[str]
    removed: list[str]
    changed: list[str]
    diffs: list[HeaderDiffDoc]
    base_release: str | None
    patched_release: str | None


class MemberChangeDoc(TypedDict):
    path: str
    base_offset: int | None
    patched_offset: int | None
    base_size: int | None
    patched_size: int | None
    why: str


class StructChangeDoc(TypedDict):
    name: str
    base_size: int | None
    patched_size: int | None
    why: str
    members: list[MemberChangeDoc]


class LayoutsDoc(TypedDict):
    cc: str
    structs: int
    changes: list[StructChangeDoc]
    notes: list[str]


class ConfigChangeDoc(TypedDict):
    symbol: str
    base: str | None
    patched: str | None


class SummaryDoc(TypedDict):
    count: int
    median: float
    min: float
    max: float


class TimingPointDoc(TypedDict):
    key: str
    status: str
    base: SummaryDoc | None
    patched: SummaryDoc | None
    change: float | None
    speed: float
    line: str


class TimingDoc(TypedDict):
    notes: list[str]
    points: list[TimingPointDoc]


class _JobAdditions(TypedDict, total=False):
    """Keys added within schema version 1: a reader takes a missing one as null. (A base
    class because NotRequired[] is not honoured under ``from __future__ import annotations``
    before Python 3.12.)"""

    layouts: LayoutsDoc | None


class JobDoc(_JobAdditions):
    target: str
    arch: str
    variant: str
    verdict: str
    exit_status: int
    base: SideDoc
    patched: SideDoc
    regressions: list[FindingDoc]
    fixes: list[FindingDoc]
    new: list[FindingDoc]
    removed: list[FindingDoc]
    infra_errors: list[FindingDoc]
    base_problems: list[FindingDoc]
    flaky: list[FindingDoc]
    archive: ArchiveDoc | None
    config_changes: list[ConfigChangeDoc]
    timing: TimingDoc


class DivergenceDoc(TypedDict):
    side: str
    test: str
    passed: list[str]
    failed: list[str]


class ReportDoc(TypedDict):
    schema_version: int
    kind: str
    run: RunDoc
    verdict: str
    exit_status: int
    jobs: list[JobDoc]
    divergences: list[DivergenceDoc]


def run_doc(run: RunInfo) -> RunDoc:
    return cast(RunDoc, asdict(run))


def _outcome(test: TestCase) -> OutcomeDoc:
    doc = OutcomeDoc(outcome=test.outcome, message=test.message)
    if test.kernel:
        doc["kernel"] = list(test.kernel)
    return doc


def _tests(tests: Mapping[str, TestCase]) -> dict[str, OutcomeDoc]:
    return {t.nodeid: _outcome(t) for t in sorted(tests.values(), key=lambda t: t.nodeid)}


def _retry(retry: Retry | None) -> RetryDoc | None:
    if retry is None:
        return None
    return RetryDoc(asked=list(retry.asked), exit_status=retry.exit_status,
                    tests=_tests(retry.tests))


def _side(side: SideResult) -> SideDoc:
    return SideDoc(status=side.status, message=side.message, notes=list(side.notes),
                   tests=_tests(side.tests), exit_status=side.exit_status,
                   rerun_after=side.rerun_after, retry=_retry(side.retry))


def _findings(findings: Sequence[Finding]) -> list[FindingDoc]:
    return [cast(FindingDoc, asdict(f)) for f in findings]


def _archive(diff: ArchiveDiff | None) -> ArchiveDoc | None:
    if diff is None:
        return None
    doc = asdict(diff)
    for key in ("added", "removed", "changed"):
        doc[key] = list(doc[key])
    doc["diffs"] = [HeaderDiffDoc(name=d.name, lines=list(d.lines), omitted=d.omitted)
                    for d in diff.diffs]
    return cast(ArchiveDoc, doc)


def _layouts(diff: LayoutDiff | None) -> LayoutsDoc | None:
    if diff is None:
        return None
    changes = [StructChangeDoc(name=c.name, base_size=c.base_size, patched_size=c.patched_size,
                               why=c.why,
                               members=[cast(MemberChangeDoc, asdict(m)) for m in c.members])
               for c in diff.changes]
    return LayoutsDoc(cc=diff.cc, structs=diff.structs, changes=changes, notes=list(diff.notes))


def _summary(s: Summary | None) -> SummaryDoc | None:
    return None if s is None else SummaryDoc(count=s.count, median=s.median, min=s.min,
                                             max=s.max)


def _timing_point(v: Verdict) -> TimingPointDoc:
    return TimingPointDoc(key=v.key, status=v.status, base=_summary(v.old),
                          patched=_summary(v.new), change=v.change, speed=v.speed,
                          line=v.line())


def job_doc(job: JobReport) -> JobDoc:
    return JobDoc(
        target=job.base.target, arch=job.arch, variant=job.variant,
        verdict=job.verdict, exit_status=EXIT_STATUS[job.verdict],
        base=_side(job.base), patched=_side(job.patched),
        regressions=_findings(job.regressions), fixes=_findings(job.fixes),
        new=_findings(job.new), removed=_findings(job.removed),
        infra_errors=_findings(job.infra), base_problems=_findings(job.base_problems),
        flaky=_findings(job.flaky),
        archive=_archive(job.archive), layouts=_layouts(job.layouts),
        config_changes=[cast(ConfigChangeDoc, asdict(c)) for c in job.config],
        timing=TimingDoc(notes=list(job.timing_notes),
                         points=[_timing_point(v) for v in job.timing]))


def side_of(job: JobDoc, side: str) -> SideDoc:
    return job["base"] if side == "base" else job["patched"]


def _order(name: str, known: Sequence[str]) -> tuple[int, str]:
    return (known.index(name) if name in known else len(known), name)


def _divergences(jobs: Sequence[JobDoc]) -> list[DivergenceDoc]:
    """Across all jobs, per side: the suite's own arches and any a job names."""
    names: Collection[str] = {*arches.names(), *(j["arch"] for j in jobs)}
    found: list[DivergenceDoc] = []
    for side in SIDES:
        outcomes = {ident: t["outcome"] for j in jobs
                    for ident, t in side_of(j, side)["tests"].items()}
        found += [DivergenceDoc(side=d.side, test=d.test, passed=list(d.passed),
                                failed=list(d.failed))
                  for d in divergences(side, outcomes, names)]
    return found


def report_doc(jobs: Sequence[JobDoc], run: RunDoc) -> ReportDoc:
    """One report of ``jobs``: sorted, with the divergences across them and the verdict."""
    ordered = sorted(jobs, key=lambda j: (_order(j["arch"], arches.names()),
                                          _order(j["variant"], variants.names())))
    verdict = report_verdict(j["verdict"] for j in ordered)
    return ReportDoc(schema_version=SCHEMA_VERSION, kind=KIND, run=run, verdict=verdict,
                     exit_status=EXIT_STATUS[verdict], jobs=list(ordered),
                     divergences=_divergences(ordered))


def job_report(job: JobReport, run: RunInfo) -> ReportDoc:
    """The document one matrix job writes: a report of that job alone."""
    return report_doc([job_doc(job)], run_doc(run))
