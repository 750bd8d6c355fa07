"""One side of one job: the suite's own pytest run on the clone, and what became of it.

Each (side, arch x variant) is one pytest subprocess on the VM suite (vmsuite.py: the
installed kheaders_suite.vmtests, or a checkout's vmtests/), selected with -k by the
target id the suite parametrizes its VM tests with ("x86_64-sysfs"), writing everything to
<out>/<side>/<arch>-<variant>/: junit.xml, results/ (results.json, consoles), pytest.log,
and copies of the build's archive and .config (a later build of the same key would replace
the cache's; the comparison must read what this side built).

The side's status comes from what is on disk afterwards, not from pytest's exit status
(which is 1 for a failing test and for a failed build alike; it is kept with the side, and
compare.py reads it for a run that collected nothing or stopped):

- build-failed: no build.json where ensure_build puts this key, and a test ERRORed;
- boot-failed: the build is there, results.json has no boot record for the target (the
  guest_boot fixture records one when a VM came up), and a test says the target's boot
  failed (plugin.boots.BootFailed: an ERROR when the VM never came up, the kernel's FAIL
  when it reported at boot) or every test that ran ERRORed;
- ok otherwise, including a run that left no JUnit file (the loader makes that "no-results")
  and a carried variant patch that does not fit the tree (errors.PatchFailed: the suite's
  fault, so its ERRORs count as infrastructure errors, never as the series' build failure),
  and a build sandbox that did not start (bwrap's own error, build/sandbox.py: the host's).

Two more runs may follow on the patched side, each its own pytest run with the checkout
unchanged, so the build is the cached one and costs nothing but a boot: the whole side again
when its boot failed without a word from the kernel (its first run kept in
<out>/<side>-first-run/<arch>-<variant>/), then the suspect tests alone, by node id, into
<side>/<arch>-<variant>/retry/ (compare.py says which, and what their second outcome means).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from kheaders_suite import vmsuite
from kheaders_suite.build import sandbox
from kheaders_suite.build.inputs import build_key
from kheaders_suite.build.kernel import BuildOptions, key_inputs
from kheaders_suite.catalog import arches, variants
from kheaders_suite.catalog.paths import build_entry
from kheaders_suite.errors import InfraError, SuiteError, UserError
from kheaders_suite.host.proc import end_group
from kheaders_suite.patchci import side as sides
from kheaders_suite.patchci.side import Outcome, SideStatus
from kheaders_suite.records import Target
from kheaders_suite.report import results
from kheaders_suite.report.results import BootRecord
from kheaders_suite.source.tree import user_source

SWEEPS = ("none", "reduced", "full")
# One side of one job: a cold kernel build (build.kernel.BuildOptions.timeout is 3 h) and the tests.
SIDE_TIMEOUT = 6 * 3600.0
# Lines of the pytest run worth showing while it runs: the suite's own progress (builds,
# boots: minutes each) and pytest's closing summary. Everything goes to pytest.log.
_PROGRESS = re.compile(r"^(\[kheaders\] |=+ .*\b(passed|failed|error|errors|skipped|"
                       r"deselected|no tests ran)\b.* =+$)")
Say = Callable[[str], None]
PYTEST_NO_TESTS, PYTEST_USAGE_ERROR = 5, 4  # pytest.ExitCode, without importing pytest here
# What a -k expression of test names needs: pytest's identifiers (letters, digits and
# _ : + - . [ ] \ /), spaces, parentheses. Not quotes, '=' or ',': pytest's call syntax
# (name(key="value")), whose string literals could hide a parenthesis from check_select.
_SELECT_CHARS = re.compile(r"[\w\s:+\-.\[\]\\/()]*")



def jobs_for(arch_list: str, variant_list: str) -> tuple[Target, ...]:
    """Every arch x variant asked for ("all" or a comma list each); UserError naming the
    valid ones for an unknown name."""
    def names(value: str, known: tuple[str, ...], check: Callable[[str], object]
              ) -> list[str]:
        picked = list(known) if value == "all" else [v.strip() for v in value.split(",")]
        for name in picked:
            check(name)
        return list(dict.fromkeys(picked))
    return tuple(Target(a, v) for a in names(arch_list, arches.names(), arches.get)
                 for v in names(variant_list, variants.names(), variants.get))


@dataclass(frozen=True)
class SuiteOptions:
    """What every pytest run of a kheaders-ci run shares."""

    cache_dir: Path
    select: str = ""  # an extra -k expression, ANDed with the target
    sweep: str = "none"  # "none": no timing tests; "reduced"/"full": pytest's --sweep
    accel: str = "auto"
    python: str = sys.executable
    sandbox: bool = True  # every make in the build sandbox (build/sandbox.py)


def suite_env(opts: SuiteOptions, env: Mapping[str, str] | None) -> dict[str, str]:
    """What a pytest run of the suite gets added to its environment: ``env``, and whether its
    builds run in the sandbox (said either way: never inherited from this process's)."""
    return {**(env or {}), sandbox.SANDBOX_VARIABLE: "1" if opts.sandbox else "0"}


@dataclass(frozen=True)
class SidePaths:
    """Where one side of one job writes: <out>/<side>/<arch>-<variant>/."""

    dir: Path

    @property
    def junit(self) -> Path:
        return self.dir / "junit.xml"

    @property
    def results_dir(self) -> Path:
        return self.dir / "results"

    @property
    def results_json(self) -> Path:
        return self.results_dir / "results.json"

    @property
    def log(self) -> Path:
        return self.dir / "pytest.log"

    @property
    def archive(self) -> Path:
        return self.dir / "kheaders_data.tar.xz"

    @property
    def config(self) -> Path:
        return self.dir / "config"


def side_paths(out: Path, side: str, job: Target) -> SidePaths:
    return SidePaths(out / side / job.id)


def check_select(select: str) -> None:
    """UserError unless ``select`` is a -k expression that keyword() can put in parentheses
    without it reaching out of them ("x) or (y" would select every test of every target):
    names (pytest's identifiers), spaces and parentheses only, the parentheses balanced."""
    depth = 0
    for char in select:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            break
    if depth != 0:
        raise UserError(f"--select {select!r}: its parentheses do not balance; pass one -k "
                        "expression, e.g. 'test_archive or (test_layout and not arm64)'")
    if not _SELECT_CHARS.fullmatch(select):
        raise UserError(f"--select {select!r}: only test names, and, or, not and "
                        "parentheses make a -k expression (no quotes, '=' or ',')")


def keyword(targets: Iterable[str], select: str) -> str:
    """pytest -k: the targets' ids (any of them), and the user's expression if any, which
    check_select has let through (UserError if not)."""
    check_select(select)
    names = list(targets)
    expr = names[0] if len(names) == 1 else "(" + " or ".join(names) + ")"
    return f"{expr} and ({select})" if select else expr


def _selection(opts: SuiteOptions) -> tuple[str, ...]:
    return ("-m", "not timing") if opts.sweep == "none" else ("--sweep", opts.sweep)


def pytest_command(clone: Path, job: Target, opts: SuiteOptions,
                   paths: SidePaths) -> tuple[str, ...]:
    """The suite's run of one side of one job (no xdist: one target, one guest)."""
    return (opts.python, "-m", "pytest", *vmsuite.pytest_args(),
            "--kernel-src", str(clone), "--arch", job.arch,
            "-k", keyword([job.id], opts.select), *_selection(opts),
            "--cache-dir", str(opts.cache_dir), "--accel", opts.accel,
            "--results-dir", str(paths.results_dir), "--junitxml", str(paths.junit),
            "-p", "no:cacheprovider", "-n", "0")


def collect_command(tree: Path, jobs: Sequence[Target], opts: SuiteOptions) -> tuple[str, ...]:
    """The same selection, collected only (no build, no guest): does it select anything?"""
    arch_list = ",".join(dict.fromkeys(j.arch for j in jobs))
    return (opts.python, "-m", "pytest", *vmsuite.pytest_args(),
            "--kernel-src", str(tree), "--arch", arch_list,
            "-k", keyword([j.id for j in jobs], opts.select), *_selection(opts),
            "--cache-dir", str(opts.cache_dir), "--collect-only", "-q", "--no-header",
            "-p", "no:cacheprovider", "-n", "0")


def unselected(collected: str, jobs: Sequence[Target]) -> list[Target]:
    """The jobs none of the collected node ids (pytest --collect-only -q) belongs to."""
    params = [m.group(1) for line in collected.splitlines()
              if "::" in line and (m := re.search(r"\[(.*)\]\s*$", line))]
    return [j for j in jobs if not any(j.id in p for p in params)]


def check_selection(tree: Path, jobs: Sequence[Target], opts: SuiteOptions) -> None:
    """UserError if --select (with the sweep's markers) leaves a job without a test, or is
    not an expression pytest takes: found before anything is built."""
    cmd = collect_command(tree, jobs, opts)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InfraError(f"collecting vmtests: {exc}") from None
    output = done.stdout + done.stderr
    what = f"--select {opts.select!r}" if opts.select else "the selection"
    if done.returncode == PYTEST_USAGE_ERROR:
        complaint = next((line for line in output.splitlines() if "ERROR" in line), "")
        raise UserError(f"{what}: pytest refused it: {complaint.strip()}")
    if done.returncode not in (0, PYTEST_NO_TESTS):
        tail = " | ".join(output.strip().splitlines()[-3:])
        raise InfraError(f"collecting vmtests failed (pytest exit {done.returncode}): {tail}")
    missing = unselected(done.stdout, jobs)
    if missing:
        raise UserError(f"{what} (sweep {opts.sweep}) selects no test for "
                        f"{', '.join(j.id for j in missing)}; pass a -k expression "
                        "naming tests of vmtests/, e.g. test_archive")


def is_progress(line: str) -> bool:
    return bool(_PROGRESS.match(line))


def _pump(stream: IO[str], log: IO[str], label: str, say: Say) -> None:
    for line in stream:
        log.write(line)
        log.flush()
        if is_progress(line):
            say(f"{label}: {line.rstrip()}")


def run_suite(argv: Sequence[str], log: Path, label: str, say: Say,
              timeout: float = SIDE_TIMEOUT, env: Mapping[str, str] | None = None) -> int:
    """Run ``argv`` (here: every path in it is absolute), its output (stdout and stderr,
    merged: one pipe cannot deadlock) into ``log``, progress lines to ``say``; ``env`` is
    added to this process's environment. Its own process group, so a timeout or an
    interrupt ends pytest, make and QEMU together. pytest's exit status (negative: the
    signal that ended it)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    with log.open("w") as sink:
        proc = subprocess.Popen(tuple(argv), env=env, text=True,
                                errors="replace", stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        assert proc.stdout is not None
        pump = threading.Thread(target=_pump, args=(proc.stdout, sink, label, say),
                                daemon=True)
        pump.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            say(f"{label}: no result after {timeout:.0f}s; stopping it")
        finally:
            end_group(proc)
            pump.join(timeout=60)
    return proc.returncode


# --- what became of the side ------------------------------------------------------------------

def build_dir(cache: Path, clone: Path, job: Target) -> Path | None:
    """Where ensure_build puts this side's build: the key of the clone as it is checked out
    now (its identity is its content, source/gittree.py). None if no key can be made (the
    compiler is missing, no carried patch fits): then nothing was built either."""
    try:
        key = build_key(key_inputs(user_source(clone, cache), arches.get(job.arch),
                                   variants.get(job.variant), BuildOptions(cache_dir=cache)))
    except SuiteError:
        return None
    return build_entry(cache, job.arch, job.variant, key)


def _read_tests(junit: Path) -> dict[str, sides.TestCase]:
    try:
        return sides.parse_junit(junit.read_text(errors="replace"))
    except (OSError, ValueError):
        return {}


def booted(results_json: Path, target: str) -> bool:
    """results.json has the guest's boot record for ``target`` (no readable file: no)."""
    try:
        records = results.load(results_json).records
    except results.ResultsError:
        return False
    return any(isinstance(r, BootRecord) and r.target == target for r in records)


def boot_failed(target: str) -> str:
    """What plugin.boots.BootFailed says, for every test of a target whose boot failed."""
    return f"the boot of {target} failed"


def side_status(build: Path | None, junit: Path, results_json: Path,
                target: str) -> tuple[SideStatus, str]:
    """(status, message) of one side from its files (module docstring has the rules)."""
    tests = sorted(_read_tests(junit).values(), key=lambda t: t.nodeid)
    errors = [t for t in tests if t.outcome == Outcome.ERROR]
    first = errors[0].message if errors else ""
    if build is None or not (build / "build.json").is_file():
        if not errors or "PatchFailed" in first or sandbox.DID_NOT_START in first:
            return SideStatus.OK, ""
        return SideStatus.BUILD_FAILED, first
    ran = [t for t in tests if t.outcome != Outcome.SKIP]
    said = [t for t in ran if boot_failed(target) in t.message]
    if ran and (said or len(errors) == len(ran)) and not booted(results_json, target):
        return SideStatus.BOOT_FAILED, (said or errors)[0].message
    return SideStatus.OK, ""


@dataclass(frozen=True)
class SideRun:
    """One side of one job, done: what load_side reads."""

    job: Target
    status: SideStatus
    message: str
    paths: SidePaths
    archive: Path | None  # the copies in paths.dir
    config: Path | None
    exit_status: int | None = None  # pytest's
    retry: sides.Retry | None = None  # the suspect tests' second run (retry_tests)
    rerun_after: str = ""  # the first run's failed boot, when the side was run again

    def load(self) -> sides.SideResult:
        results = self.paths.results_json
        return sides.load_side(self.job.arch, self.job.variant, status=self.status,
                               message=self.message, junit=self.paths.junit,
                               results_json=results if results.is_file() else None,
                               archive=self.archive, config=self.config,
                               exit_status=self.exit_status, retry=self.retry,
                               rerun_after=self.rerun_after)


def copy_outputs(build: Path | None, paths: SidePaths) -> tuple[Path | None, Path | None]:
    """The build's archive and .config, copied next to the side's results."""
    if build is None:
        return None, None
    archive, config = sides.build_outputs(build)
    copies: list[Path | None] = []
    for found, dest in ((archive, paths.archive), (config, paths.config)):
        if found is not None:
            shutil.copy2(found, dest)
        copies.append(dest if found is not None else None)
    return copies[0], copies[1]


def run_side(clone: Path, side: str, job: Target, opts: SuiteOptions, out: Path,
             say: Say, env: Mapping[str, str] | None = None) -> SideRun:
    """Run the suite for one side of one job on the clone as it is checked out, then read
    what it left. Call it with the side's commit checked out, and check out nothing else
    until it returns: the build's key is the checkout's identity."""
    paths = side_paths(out, side, job)
    shutil.rmtree(paths.dir, ignore_errors=True)  # never read an earlier run's files
    paths.dir.mkdir(parents=True)
    label = f"{side} {job.id}"
    say(f"{label}: running the suite, log {paths.log}")
    rc = run_suite(pytest_command(clone, job, opts, paths), paths.log, label, say,
                   env=suite_env(opts, env))
    build = build_dir(opts.cache_dir, clone, job)
    status, message = side_status(build, paths.junit, paths.results_json, job.id)
    archive, config = copy_outputs(build, paths)
    say(f"{label}: {status} (pytest exit {rc})" + (f": {message[:200]}" if message else ""))
    return SideRun(job, status, message, paths, archive, config, rc)


def first_run_dir(out: Path, side: str, job: Target) -> Path:
    """Where a side's first run is kept when the side is run again."""
    return out / f"{side}-first-run" / job.id


def rerun_side(clone: Path, side: str, first: SideRun, opts: SuiteOptions, out: Path,
               say: Say, env: Mapping[str, str] | None = None) -> SideRun:
    """The side once more, its first run moved aside (first_run_dir): for a boot that
    failed with no kernel report (compare.needs_rerun)."""
    keep = first_run_dir(out, side, first.job)
    shutil.rmtree(keep, ignore_errors=True)
    keep.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(first.paths.dir, keep)
    say(f"{side} {first.job.id}: the boot failed with no kernel report; running the side "
        f"again (first run kept in {keep})")
    again = run_side(clone, side, first.job, opts, out, say, env)
    return replace(again, rerun_after=first.message or first.status)


def retry_paths(paths: SidePaths) -> SidePaths:
    return SidePaths(paths.dir / "retry")


def retry_command(clone: Path, job: Target, opts: SuiteOptions, paths: SidePaths,
                  nodeids: Sequence[str]) -> tuple[str, ...]:
    """The side's command on ``nodeids`` alone (each the suite's node id, relative to its
    parent directory, pytest's rootdir there) instead of the whole suite."""
    suite = vmsuite.suite_dir()
    full = pytest_command(clone, job, opts, paths)
    at = full.index(str(suite))
    return (*full[:at], *(str(suite.parent / n) for n in nodeids), *full[at + 1:])


def retry_tests(clone: Path, side: str, run: SideRun, nodeids: Sequence[str],
                opts: SuiteOptions, say: Say, env: Mapping[str, str] | None = None) -> SideRun:
    """Run ``nodeids`` once more (a fresh VM, the same build) into <side dir>/retry/."""
    paths = retry_paths(run.paths)
    shutil.rmtree(paths.dir, ignore_errors=True)
    paths.dir.mkdir(parents=True)
    label = f"{side} {run.job.id} retry"
    say(f"{label}: {len(nodeids)} tests once more, log {paths.log}")
    rc = run_suite(retry_command(clone, run.job, opts, paths, nodeids), paths.log, label, say,
                   env=suite_env(opts, env))
    retry = sides.load_retry(nodeids, paths.junit, rc)
    say(f"{label}: pytest exit {rc}; " + ", ".join(
        f"{n}: {retry.tests[n].outcome if n in retry.tests else 'no result'}" for n in nodeids))
    return replace(run, retry=retry)
