"""One side (base or patched) of one matrix job: what the orchestrator hands the comparison.

A side is the JUnit XML pytest wrote (``--junitxml``), the run's results.json, the build's
archive and .config, and a status. The loader never raises on a missing or unreadable file:
a missing JUnit file on a side whose build and boot went fine is itself the finding (pytest
never got to write it), so it becomes status "no-results" with the reason, and the
comparison reports it as an infrastructure error rather than as a pile of "removed" tests.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from kheaders_suite.boot.console import find_reports
from kheaders_suite.records import target_id
from kheaders_suite.report import results
from kheaders_suite.report.results import Record, TimingRecord
from kheaders_suite.text import first_line
from kheaders_suite.timing import results as timing_results


class SideStatus(StrEnum):
    """What became of a side as a whole (run.py's docstring has the rules). NO_RESULTS is
    set by the loader, never passed in. The values are what report.json and report.md say."""

    OK = "ok"
    BUILD_FAILED = "build-failed"
    BOOT_FAILED = "boot-failed"
    NO_RESULTS = "no-results"


class Outcome(StrEnum):
    """A test's outcome. pytest writes <failure> for a failed test body and <error> for a
    failed setup or teardown (a fixture: for this suite, a build or a VM that did not come
    up); an expected failure as <skipped type="pytest.xfail">, and a strict xfail that passed
    as a <failure> "[XPASS(strict)] ..." (a non-strict XPASS is written as a plain pass, so it
    reads as one). The values are what report.json and report.md say."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    SKIP = "skip"
    XFAIL = "xfail"
    XPASS = "xpass"


# When pytest writes two <testcase> for one test (a failed call, then a teardown error), the
# test keeps the outcome that says most about the kernel: the failure of its own body.
_PRECEDENCE = {Outcome.FAIL: 5, Outcome.XPASS: 4, Outcome.ERROR: 3, Outcome.XFAIL: 2,
               Outcome.PASS: 1, Outcome.SKIP: 0}
# An <error> that is the kernel's (kernellog.KernelReported: a BUG/WARNING/panic while booting
# or in a fixture) is a FAIL here: a series that makes the kernel warn at boot regressed. The
# plugin writes such a fault as a <failure> whose message starts with KERNEL_PREFIX; older
# runs wrote it as an <error>, which still reads as a FAIL.
KERNEL_ERROR = "KernelReported: kernel reported"
KERNEL_PREFIX = "kernel: "
XPASS_STRICT = "[XPASS(strict)]"  # pytest's message of a strict xfail that passed
# How the plugin quotes the kernel's reports in a failure or error message
# (kernellog.Scan.describe): this, the phase, then each report, headline first.
KERNEL_REPORTED = "kernel reported during "
MAX_REPORTS = 10  # per test: a warning storm repeats itself
# pytest's message of a set-up or teardown error: failed on setup with "<exception>"
# (its closing quote missing from a first line, or from a message pytest cut short).
_WRAPPED = re.compile(r'failed on \w+ with "(.*?)"?', re.S)


@dataclass(frozen=True)
class TestCase:
    __test__ = False  # a record, not a pytest test class

    nodeid: str  # "vmtests/test_archive.py::test_identity[x86_64-sysfs]"
    outcome: Outcome
    message: str = ""  # first line of the failure, error or skip message
    kernel: tuple[str, ...] = ()  # the kernel's reports the message quotes, headline first


@dataclass(frozen=True)
class Retry:
    """The second pytest run of a side's suspect tests (compare.retry_candidates), on a fresh
    VM and the same build: their outcomes there, by node id, and that run's exit status."""

    asked: tuple[str, ...]  # the node ids re-run
    tests: Mapping[str, TestCase] = field(default_factory=dict)
    exit_status: int | None = None


@dataclass(frozen=True)
class SideResult:
    arch: str
    variant: str
    status: SideStatus
    message: str = ""  # why the status is not "ok" (build log tail, console tail, ...)
    tests: Mapping[str, TestCase] = field(default_factory=dict)
    records: tuple[Record, ...] = ()  # results.json's records
    archive: Path | None = None  # kheaders_data.tar.xz; None when the build failed
    config: Path | None = None  # the build's .config; None when the build failed
    timing: tuple[dict[str, Any], ...] = ()  # compile-timing documents (timing/results.py)
    notes: tuple[str, ...] = ()  # what the loader could not read and did without
    exit_status: int | None = None  # pytest's (run_suite's return); None: not known
    retry: Retry | None = None  # the re-run of the side's suspect tests, if any
    # Why the side's first run was thrown away and the side run again: its boot failed with
    # no kernel report (compare.needs_rerun); "" when the side ran once.
    rerun_after: str = ""

    @property
    def target(self) -> str:
        return target_id(self.arch, self.variant)


def nodeid(classname: str, name: str, file: str | None = None) -> str:
    """pytest's node id back from a JUnit <testcase>. pytest makes ``classname`` from the
    node id ("vmtests/test_archive.py::TestX" -> "vmtests.test_archive.TestX"), so the
    module ends where the first Test* class starts (pytest's default class pattern); xunit1
    reports also carry ``file``, which settles it."""
    parts = classname.split(".") if classname else []
    if file:
        module = file.removesuffix(".py").replace("/", ".").split(".")
        return "::".join([file, *parts[len(module):], name])
    split = next((i for i, p in enumerate(parts) if p.startswith("Test")), len(parts))
    path = "/".join(parts[:split]) + ".py" if split else ""
    return "::".join([p for p in (path, *parts[split:]) if p] + [name])


def kernel_reports(message: str) -> tuple[str, ...]:
    """The BUG/WARNING/Oops/panic reports a failure or error message quotes, each as its
    lines; only after the plugin's "kernel reported during", so a test that merely talks
    about a WARNING is not taken for the kernel's."""
    _, marker, quoted = unwrapped(message).partition(KERNEL_REPORTED)
    if not marker:
        return ()
    return tuple(str(r) for r in find_reports(quoted)[:MAX_REPORTS])


def unwrapped(message: str) -> str:
    """A set-up or teardown error's message without pytest's 'failed on setup with "..."'."""
    wrapped = _WRAPPED.fullmatch(message)
    return wrapped.group(1) if wrapped else message


def is_kernels(message: str) -> bool:
    """A failure or error message that is the kernel's fault (the plugin's forms, new and
    old), not the harness's or the host's."""
    return unwrapped(message).startswith(KERNEL_PREFIX) or KERNEL_ERROR in message


def _outcome(tag: str, child: ET.Element) -> Outcome:
    said = f"{child.get('message') or ''}\n{child.text or ''}"
    if tag == "skipped":
        return Outcome.XFAIL if child.get("type") == "pytest.xfail" else Outcome.SKIP
    if tag == "failure":
        return Outcome.XPASS if said.startswith(XPASS_STRICT) else Outcome.FAIL
    kernels = is_kernels(child.get("message") or "") or KERNEL_ERROR in said
    return Outcome.FAIL if kernels else Outcome.ERROR  # the kernel's, however it is said


def _case(element: ET.Element) -> TestCase:
    ident = nodeid(element.get("classname", ""), element.get("name", ""), element.get("file"))
    for tag in ("failure", "error", "skipped"):
        child = element.find(tag)
        if child is not None:
            outcome = _outcome(tag, child)
            message = first_line(child.get("message")) or first_line(child.text)
            judged = outcome in (Outcome.FAIL, Outcome.ERROR)
            kernel = kernel_reports(child.get("message") or "") if judged else ()
            return TestCase(ident, outcome, message, kernel)
    return TestCase(ident, Outcome.PASS)


def parse_junit(text: str) -> dict[str, TestCase]:
    """Every test in a pytest JUnit report by node id; ValueError if it is not XML."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError(f"not XML: {exc}") from None
    cases: dict[str, TestCase] = {}
    for element in root.iter("testcase"):
        case = _case(element)
        seen = cases.get(case.nodeid)
        if seen is None or _PRECEDENCE[case.outcome] > _PRECEDENCE[seen.outcome]:
            cases[case.nodeid] = case
    return cases


def _read_junit(path: Path | None) -> tuple[dict[str, TestCase], str]:
    """(tests, "") or ({}, why there are none)."""
    if path is None:
        return {}, "no JUnit file was given"
    try:
        return parse_junit(path.read_text(errors="replace")), ""
    except OSError as exc:
        return {}, f"JUnit file {path} unreadable: {exc.strerror or exc}"
    except ValueError as exc:
        return {}, f"JUnit file {path} is {exc}"


def _read_records(path: Path | None) -> tuple[tuple[Record, ...], list[str]]:
    if path is None:
        return (), []
    try:
        return results.load(path).records, []
    except results.ResultsError as exc:  # its message names the file
        return (), [f"{exc}; its records ignored"]


def timing_paths(records: Iterable[Record], results_json: Path) -> list[Path]:
    """The compile-timing documents the run's timing records name (the recorder stores an
    absolute path; a relative one is taken from the results file's directory)."""
    paths = [Path(r.json) for r in records if isinstance(r, TimingRecord) and r.json]
    return [p if p.is_absolute() else results_json.parent / p for p in paths]


def _read_timing(paths: Sequence[Path]) -> tuple[tuple[dict[str, Any], ...], list[str]]:
    docs, notes = [], []
    for path in paths:
        try:
            doc = timing_results.load(path)
        except (OSError, ValueError) as exc:
            notes.append(f"timing file {path} unreadable, not compared: {exc}")
            continue
        problems = timing_results.validate(doc)
        if problems:
            notes.append(f"timing file {path} is not a timing result ({problems[0]}), "
                         "not compared")
        else:
            docs.append(doc)
    return tuple(docs), notes


def load_retry(asked: Sequence[str], junit: Path, exit_status: int | None) -> Retry:
    """The retry run's outcomes of the tests it was asked to re-run (none when its JUnit file
    is missing or unreadable: compare.py then keeps the first run's outcome)."""
    tests, _ = _read_junit(junit)
    return Retry(tuple(asked), {k: v for k, v in tests.items() if k in asked}, exit_status)


def load_side(arch: str, variant: str, *, status: SideStatus = SideStatus.OK,
              message: str = "", junit: Path | None = None, results_json: Path | None = None,
              archive: Path | None = None, config: Path | None = None,
              timing: Sequence[Path] | None = None, exit_status: int | None = None,
              retry: Retry | None = None, rerun_after: str = "") -> SideResult:
    """Read one side from its files. ``timing`` None means: the documents that results.json's
    timing records name. A side said to be "ok" without a readable JUnit file becomes
    "no-results" (pytest did not finish); a failed build or boot keeps its own status."""
    if status not in tuple(SideStatus):  # a caller mypy does not check
        raise ValueError(f"side status {status!r}: expected one of {', '.join(SideStatus)}")
    tests, why = _read_junit(junit)
    records, notes = _read_records(results_json)
    if timing is None:
        timing = timing_paths(records, results_json) if results_json else []
    docs, timing_notes = _read_timing(timing)
    missing = [f"{what} {path} does not exist" for what, path in
               (("archive", archive), ("config", config))
               if path is not None and _existing(path) is None]
    side = SideResult(arch, variant, status, message, tests, records, _existing(archive),
                      _existing(config), docs, (*notes, *timing_notes, *missing),
                      exit_status, retry, rerun_after)
    if why and status == SideStatus.OK:
        return replace(side, status=SideStatus.NO_RESULTS, message=why)
    return side


def _existing(path: Path | None) -> Path | None:
    return path if path is not None and path.is_file() else None


def build_outputs(build_dir: Path) -> tuple[Path | None, Path | None]:
    """(archive, .config) of a build directory as ensure_build leaves it
    (~/.cache/kheaders-suite/builds/<arch>-<variant>-<key>/): build.json names them, the
    plain file names are the fallback for a build that died before writing build.json."""
    try:
        meta = json.loads((build_dir / "build.json").read_text())
        archive, config = meta.get("archive"), meta.get("config")
    except (OSError, ValueError, AttributeError):
        archive, config = None, None
    return (_existing(Path(archive) if archive else build_dir / "kheaders_data.tar.xz"),
            _existing(Path(config) if config else build_dir / "config"))
