"""ci/templates/: the GitHub Actions and GitLab CI templates for kheaders-ci, held to the code
they drive, so that drift on either side fails here and not in a kernel repository's CI.

No CI system runs. The YAML is parsed; every kheaders-ci command line, with the CI's
variables replaced by placeholders, goes through kheaders-ci's own argument parser; the
matrix is compared with the suite's arches and variants, the cache paths with the suite's
cache directory, the JUnit globs with where kheaders-ci writes junit.xml; and the shell steps
that decide a job's status run under bash with stand-ins for kheaders-ci and
kheaders-ci-merge. Each check is a function returning its problems, and MUTATIONS shows
each one finding the drift it is there for in an edited copy of its template.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import io
import itertools
import os
import re
import shlex
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from unittest import mock

import pytest
import yaml

from kheaders_suite.catalog import arches, variants
from kheaders_suite.catalog.paths import REPO_ROOT, default_cache_dir
from kheaders_suite.patchci import cli
from kheaders_suite.patchci.render import JSON_NAME, MARKDOWN_NAME
from kheaders_suite.patchci.run import side_paths
from kheaders_suite.records import Target, target_id

TEMPLATES = REPO_ROOT / "ci" / "templates"
GITHUB = TEMPLATES / "github-actions.yml"
GITLAB = TEMPLATES / "gitlab-ci.yml"
MATRIX_JOB, REPORT_JOB = "test", "report"  # the jobs' names, the same in both templates
CI_PROGRAM, MERGE_PROGRAM = "kheaders-ci", "kheaders-ci-merge"
Combo = tuple[str, str]  # (arch, variant)
EXPECTED: frozenset[Combo] = frozenset(itertools.product(arches.names(), variants.names()))
Doc = dict[Any, Any]  # YAML keys: strings, but a bare `on` reads as True
Check = Callable[[str], list[str]]

# What GitHub and GitLab define in every job, as far as the checks need it.
GH_PREDEFINED = {"GITHUB_WORKSPACE": "/__w/linux/linux", "HOME": "/github/home",
                 "github.base_ref || inputs.base": "master", "inputs.range": ""}
GL_PREDEFINED = {"CI_PROJECT_DIR": "/builds/kernel/linux", "CI_PIPELINE_ID": "4242",
                 "CI_COMMIT_SHA": "c" * 40, "CI_MERGE_REQUEST_DIFF_BASE_SHA": "b" * 40}


def load(text: str) -> Doc:
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict), "a template is a YAML mapping"
    return doc


# --- shell text: variables, calls, the real parser -----------------------------------------

_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")  # a GitHub expression: ${{ matrix.arch }}
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_OPERATOR_CHARS = frozenset("();<>|&")


def placeholder(name: str) -> str:
    return "placeholder-" + re.sub(r"[^A-Za-z0-9_.]+", "-", name).strip("-")


def expand(text: str, values: Mapping[str, str], shell: bool = True) -> str:
    """``text`` with GitHub expressions and (``shell``) $NAME / ${NAME} replaced by
    ``values``, keyed by the expression or the name; anything else by a placeholder naming
    it. Repeated while a value brings in another variable. ${NAME:-...} and $? stay."""
    def value(key: str) -> str:
        return values.get(key, placeholder(key))
    for _ in range(5):
        new = _EXPR.sub(lambda m: value(m.group(1)), text)
        if shell:
            new = _VAR.sub(lambda m: value(m.group(1) or m.group(2)), new)
        if new == text:
            break
        text = new
    return text


def is_word(token: str) -> bool:
    return token == "" or not set(token) <= _OPERATOR_CHARS


@dataclass(frozen=True)
class Call:
    program: str  # as the script names it: a path ending in the program's name
    argv: tuple[str, ...]  # its arguments, up to the first shell operator (|| ; > ...)


def calls(script: str, program: str) -> list[Call]:
    """Every call of ``program`` in an (expanded) shell script, continuation lines joined."""
    found = []
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        tokens = list(lexer)
        for i, token in enumerate(tokens):
            if PurePosixPath(token).name == program:
                found.append(Call(token, tuple(itertools.takewhile(is_word, tokens[i + 1:]))))
    return found


def parse_ci(argv: Sequence[str]) -> argparse.Namespace:
    """kheaders-ci's own parser on ``argv``; ValueError with argparse's complaint."""
    complaint = io.StringIO()
    try:
        with contextlib.redirect_stderr(complaint):
            return cli.build_parser().parse_args(list(argv))
    except SystemExit:
        lines = complaint.getvalue().strip().splitlines()
        raise ValueError(lines[-1] if lines else "argparse exited") from None


def ci_call_problems(found: Sequence[tuple[str, Call]], combo: Combo) -> list[str]:
    """Every kheaders-ci call parses; the matrix job has one, passing the matrix's arch and
    variant (``combo`` is what the matrix variables were set to)."""
    if not any(job == MATRIX_JOB for job, _ in found):
        return [f"{MATRIX_JOB}: no {CI_PROGRAM} call"]
    problems = []
    for job, call in found:
        try:
            args = parse_ci(call.argv)
        except ValueError as exc:
            problems.append(f"{job}: {CI_PROGRAM} {shlex.join(call.argv)}: {exc}")
            continue
        if job == MATRIX_JOB and (args.arch, args.variant) != combo:
            problems.append(f"{job} as {target_id(*combo)}: --arch {args.arch} --variant "
                            f"{args.variant}, not the matrix's")
    return problems


def matrix_problems(combos: Sequence[dict[str, Any]], keys: tuple[str, str]) -> list[str]:
    """The matrix is exactly arches.names() x variants.names(), each once."""
    if any(set(c) != set(keys) for c in combos):
        return [f"matrix variables {sorted({k for c in combos for k in c})}, not {list(keys)}"]
    found = [(str(c[keys[0]]), str(c[keys[1]])) for c in combos]
    problems = [f"matrix runs {target_id(*c)} {found.count(c)} times"
                for c in sorted(set(found)) if found.count(c) > 1]
    if missing := sorted(EXPECTED - set(found)):
        problems.append(f"matrix lacks {', '.join(target_id(*c) for c in missing)}")
    if extra := sorted(set(found) - EXPECTED):
        problems.append(f"matrix has {', '.join(target_id(*c) for c in extra)}, which the "
                        "suite does not know")
    return problems


def default_cache() -> str:
    """paths.default_cache_dir() in a CI job that sets neither KHEADERS_SUITE_CACHE nor
    XDG_CACHE_HOME, spelt with ~ for $HOME as actions/cache takes it."""
    home = "/home-of-the-ci-job"
    env = {k: v for k, v in os.environ.items()
           if k not in ("KHEADERS_SUITE_CACHE", "XDG_CACHE_HOME")}
    with mock.patch.dict(os.environ, {**env, "HOME": home}, clear=True):
        found = default_cache_dir().as_posix()
    return "~" + found[len(home):] if within(found, home) else found


def within(path: str, root: str) -> bool:
    path, root = path.rstrip("/"), root.rstrip("/")
    return path == root or path.startswith(root + "/")


def cache_dir_problems(found: Sequence[tuple[str, Call]], cache: str) -> list[str]:
    """A --cache-dir on the command line must be the directory the CI caches."""
    problems = []
    for job, call in found:
        given = parse_ci(call.argv).cache_dir
        if given is not None and not within(str(given), cache):
            problems.append(f"{job}: {CI_PROGRAM} --cache-dir {given}, but {cache} is cached")
    return problems


# --- running a step's shell, with stand-ins -------------------------------------------------

# A stand-in for kheaders-ci or kheaders-ci-merge: records its arguments, writes a report.md
# into its first argument if $STUB_REPORT is set (merge's OUT_DIR), exits with $STUB_STATUS.
STUB = """#!/bin/sh
printf '%s\\n' "$@" > "$0.args"
if [ -n "$STUB_REPORT" ]; then mkdir -p "$1" && printf '%s\\n' "$STUB_REPORT" > "$1/report.md"; fi
exit "$STUB_STATUS"
"""
STUB_REPORT = "## kheaders-suite patch CI: merged (stand-in)"


def install_stub(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(STUB)
    path.chmod(0o755)
    return path


def stub_args(stub: Path) -> list[str]:
    args = Path(f"{stub}.args")
    return args.read_text().splitlines() if args.exists() else []


def run_bash(script: str, cwd: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """As both CI systems run a step here: bash with errexit and pipefail."""
    return subprocess.run(("bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script),
                          cwd=cwd, env={"PATH": os.environ["PATH"], "HOME": str(cwd), **env},
                          capture_output=True, text=True, timeout=60, check=False)


def write_job_reports(out: Path, combos: Sequence[Combo]) -> list[Path]:
    """<out>/jobs/<arch>-<variant>/report.json, where kheaders-ci writes each job's report
    (cli.write_reports)."""
    paths = []
    for arch, variant in combos:
        path = out / "jobs" / Target(arch, variant).id / JSON_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}\n")
        paths.append(path)
    return paths


def status_problems(name: str, run: Callable[[int], int]) -> list[str]:
    """``run(status)`` runs a step whose program exits ``status``: the step must too."""
    return [f"{name}: exits {got} when the program exits {status}"
            for status in (0, 1, 2) if (got := run(status)) != status]


# --- GitHub Actions -------------------------------------------------------------------------

def gh_job(doc: Doc, name: str) -> Doc:
    job = doc.get("jobs", {}).get(name)
    assert isinstance(job, dict), f"no job {name!r} in the workflow"
    return job


def gh_env(doc: Doc, job: Doc, step: Doc) -> dict[str, str]:
    return {k: str(v) for scope in (doc, job, step) for k, v in (scope.get("env") or {}).items()}


def gh_values(doc: Doc, job: Doc, step: Doc, combo: Combo | None,
              extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """What a step's text expands with: the env it sees (also as ${{ env.X }}), the matrix."""
    env = gh_env(doc, job, step)
    values = {**GH_PREDEFINED, **env, **{f"env.{k}": v for k, v in env.items()}, **(extra or {})}
    if combo is not None:
        values |= {"matrix.arch": combo[0], "matrix.variant": combo[1]}
    return values


def gh_calls(doc: Doc, program: str, combo: Combo | None) -> list[tuple[str, Call, Doc]]:
    """(job, call, step) of every call of ``program`` in the workflow's run: steps."""
    found = []
    for name, job in doc.get("jobs", {}).items():
        for step in job.get("steps", []):
            if "run" in step:
                script = expand(step["run"], gh_values(doc, job, step, combo))
                found += [(name, call, step) for call in calls(script, program)]
    return found


def gh_uses(job: Doc, action: str) -> list[Doc]:
    return [s for s in job.get("steps", []) if str(s.get("uses", "")).startswith(action)]


def always(step_or_job: Doc) -> bool:
    return "always()" in str(step_or_job.get("if", ""))


def gh_ci_args(doc: Doc, combo: Combo) -> argparse.Namespace:
    call = next(c for job, c, _ in gh_calls(doc, CI_PROGRAM, combo) if job == MATRIX_JOB)
    return parse_ci(call.argv)


def gh_jobs_problems(text: str) -> list[str]:
    """Triggers, the container ci/setup needs, KVM's --privileged, full history."""
    doc = load(text)
    problems = []
    on = doc.get("on", doc.get(True)) or {}  # YAML 1.1 reads a bare `on` as true
    inputs = (on.get("workflow_dispatch") or {}).get("inputs") or {}
    if "pull_request" not in on or not {"base", "range"} <= set(inputs):
        problems.append("triggers: pull_request, and workflow_dispatch with base and range")
    job = gh_job(doc, MATRIX_JOB)
    container = job.get("container") or {}
    if str(container.get("image", "")) not in ("debian:bookworm", "debian:12"):
        problems.append(f"container {container.get('image')!r}: ci/setup needs Debian 12")
    if "--privileged" not in str(container.get("options", "")):
        problems.append("container options lack --privileged: no /dev/kvm, no binfmt_misc")
    if job.get("strategy", {}).get("fail-fast") is not False:
        problems.append("strategy.fail-fast is not false: one failure cancels the others")
    depths = [s.get("with", {}).get("fetch-depth") for s in gh_uses(job, "actions/checkout")]
    if 0 not in depths:
        problems.append("no checkout with fetch-depth: 0 (the kernel's full history)")
    return problems


def gh_matrix_problems(text: str) -> list[str]:
    matrix = gh_job(load(text), MATRIX_JOB).get("strategy", {}).get("matrix", {})
    combos = [dict(zip(matrix, values, strict=True))
              for values in itertools.product(*matrix.values())]
    return matrix_problems(combos, ("arch", "variant"))


def gh_command_problems(text: str) -> list[str]:
    doc = load(text)
    problems: list[str] = []
    for combo in sorted(EXPECTED):
        found = [(job, call) for job, call, _ in gh_calls(doc, CI_PROGRAM, combo)]
        problems += ci_call_problems(found, combo)
    return list(dict.fromkeys(problems))


def gh_cache_problems(text: str) -> list[str]:
    """actions/cache keeps the suite's cache dir (KHEADERS_SUITE_CACHE if the workflow sets
    it, else paths.py's default under ~), keyed by arch, variant and base, saved always."""
    doc = load(text)
    job = gh_job(doc, MATRIX_JOB)
    cache = gh_env(doc, job, {}).get("KHEADERS_SUITE_CACHE") or default_cache()
    steps = gh_cache_pair(job, "cache")  # the base's builds: test_ci_base_cache.py
    if not steps:
        return ["no actions/cache step"]
    problems = cache_dir_problems(
        [(j, c) for j, c, _ in gh_calls(doc, CI_PROGRAM, min(EXPECTED))], cache)
    paths = [tuple(p.strip() for p in str(s.get("with", {}).get("path", "")).splitlines()
                   if p.strip()) for s in steps]
    problems += [f"cache path {p} is not in the suite's cache {cache}"
                 for p in dict.fromkeys(itertools.chain(*paths)) if not within(p, cache)]
    if len(set(paths)) > 1:
        problems.append(f"the cache steps keep different paths: {sorted(set(paths))}")
    restore = next((s for s in steps if s["uses"].startswith("actions/cache/restore")), None)
    key = str((restore or steps[0]).get("with", {}).get("key", ""))
    problems += [f"cache key {key!r} lacks {part}"
                 for part in ("matrix.arch", "matrix.variant", "base_ref") if part not in key]
    problems += [f"{s.get('name')!r} saves only when the job passes (no if: always())"
                 for s in steps if s["uses"].startswith("actions/cache/save") and not always(s)]
    return problems


def gh_cache_pair(job: Doc, restore_id: str) -> list[Doc]:
    """The actions/cache steps of one cache: the step ``restore_id`` and those saving under
    its key."""
    key = f"steps.{restore_id}.outputs.cache-primary-key"
    return [s for s in gh_uses(job, "actions/cache")
            if s.get("id") == restore_id or key in str(s.get("with", {}).get("key", ""))]


def gh_summary_problems(text: str) -> list[str]:
    """Both jobs write the report's Markdown to the step summary, even when they failed."""
    doc = load(text)
    out = str(gh_ci_args(doc, min(EXPECTED)).out)
    merges = [c for j, c, _ in gh_calls(doc, MERGE_PROGRAM, None) if j == REPORT_JOB]
    merged = merges[0].argv[0] if merges and merges[0].argv else "?"
    problems = []
    for name, report_dir in ((MATRIX_JOB, out), (REPORT_JOB, merged)):
        job = gh_job(doc, name)
        steps = [s for s in job.get("steps", []) if "GITHUB_STEP_SUMMARY" in s.get("run", "")]
        if not steps:
            problems.append(f"{name}: nothing writes $GITHUB_STEP_SUMMARY")
        problems += [f"{name}: {s.get('name')!r} writes the step summary only when the job "
                     "passed (no if: always())" for s in steps if not always(s)]
        wanted = f"{report_dir}/{MARKDOWN_NAME}"
        if not any(wanted in expand(s["run"], gh_values(doc, job, s, min(EXPECTED)))
                   for s in steps):
            problems.append(f"{name}: the step summary does not read {wanted}")
    return problems


def gh_artifact_problems(text: str) -> list[str]:
    """Each matrix job uploads its --out dir, always, under a name of its own; the report
    job downloads them all, and uploads the merged report and kcidb.json."""
    doc = load(text)
    job, report = gh_job(doc, MATRIX_JOB), gh_job(doc, REPORT_JOB)
    problems: list[str] = []
    uploads = gh_uses(job, "actions/upload-artifact")
    if len(uploads) != 1 or not always(uploads[0]):
        return [f"{MATRIX_JOB}: not one actions/upload-artifact step with if: always()"]
    names = set()
    for combo in EXPECTED:
        values = gh_values(doc, job, uploads[0], combo)
        names.add(expand(str(uploads[0]["with"].get("name", "")), values))
        path = expand(str(uploads[0]["with"].get("path", "")), values)
        if path.rstrip("/") != str(gh_ci_args(doc, combo).out):
            problems.append(f"{MATRIX_JOB}: uploads {path}, not kheaders-ci's --out")
    if len(names) != len(EXPECTED):
        problems.append(f"{MATRIX_JOB}: artifact names are not one per job: {sorted(names)}")
    pattern = str(next(iter(gh_uses(report, "actions/download-artifact")), {})
                  .get("with", {}).get("pattern", ""))
    if not all(fnmatch.fnmatchcase(n, pattern) for n in names):
        problems.append(f"{REPORT_JOB}: download pattern {pattern!r} misses {sorted(names)}")
    merged = [str(s.get("with", {}).get("path", "")) for s in
              gh_uses(report, "actions/upload-artifact") if always(s)]
    for wanted in (MARKDOWN_NAME, "kcidb.json"):
        if not any(wanted in p for p in merged):
            problems.append(f"{REPORT_JOB}: {wanted} is not uploaded (with if: always())")
    return problems


def gh_merge_problems(text: str) -> list[str]:
    doc = load(text)
    report = gh_job(doc, REPORT_JOB)
    needs = report.get("needs", [])
    problems = []
    if MATRIX_JOB not in ([needs] if isinstance(needs, str) else needs):
        problems.append(f"{REPORT_JOB} does not need {MATRIX_JOB}")
    if not always(report):
        problems.append(f"{REPORT_JOB} runs only when every matrix job passed (no always())")
    merges = [c for j, c, _ in gh_calls(doc, MERGE_PROGRAM, None) if j == REPORT_JOB]
    if not any(len(c.argv) >= 2 for c in merges):
        problems.append(f"{REPORT_JOB}: no {MERGE_PROGRAM} OUT_DIR REPORT... call")
    return problems


def gh_step_env(doc: Doc, job: Doc, step: Doc, ws: Path,
                extra: Mapping[str, str] | None = None) -> dict[str, str]:
    values = gh_values(doc, job, step, None, extra)
    env = {k: expand(v, values, shell=False) for k, v in gh_env(doc, job, step).items()}
    return {**env, "GITHUB_WORKSPACE": str(ws), "GITHUB_STEP_SUMMARY": str(ws / "summary.md")}


def gh_run_step(doc: Doc, job_name: str, program: str, ws: Path, status: int,
                extra: Mapping[str, str] | None = None) -> tuple[int, Path]:
    """Run the step of ``job_name`` that calls ``program``, a stand-in exiting ``status``,
    in workspace ``ws``: (its exit status, the stand-in)."""
    _, call, step = next(f for f in gh_calls(doc, program, min(EXPECTED)) if f[0] == job_name)
    job = gh_job(doc, job_name)
    assert not PurePosixPath(call.program).is_absolute(), \
        f"{call.program}: expected under the workspace, where the stand-in goes"
    stub = install_stub(ws / call.program)
    values = {**gh_values(doc, job, step, min(EXPECTED)), **(extra or {})}
    env = {**gh_step_env(doc, job, step, ws, extra), "STUB_STATUS": str(status),
           "STUB_REPORT": STUB_REPORT}
    return run_bash(expand(step["run"], values, shell=False), ws, env).returncode, stub


def gh_run_status_problems(text: str) -> list[str]:
    """The matrix job's kheaders-ci step exits with kheaders-ci's status."""
    doc = load(text)

    def run(status: int) -> int:
        with tempfile.TemporaryDirectory() as tmp:
            return gh_run_step(doc, MATRIX_JOB, CI_PROGRAM, Path(tmp), status)[0]
    return status_problems(f"{MATRIX_JOB}'s {CI_PROGRAM} step", run)


def gh_summary_run_problems(text: str) -> list[str]:
    """The matrix job's summary step puts report.md in the summary, or says there is none."""
    doc = load(text)
    job = gh_job(doc, MATRIX_JOB)
    step = next(s for s in job["steps"] if "GITHUB_STEP_SUMMARY" in s.get("run", ""))
    out = str(gh_ci_args(doc, min(EXPECTED)).out)
    problems = []
    for report in ("## kheaders-suite patch CI: regression", None):
        with tempfile.TemporaryDirectory() as tmp:
            ws = Path(tmp)
            if report is not None:
                (ws / out).mkdir(parents=True)
                (ws / out / MARKDOWN_NAME).write_text(report + "\n")
            done = run_bash(expand(step["run"], gh_values(doc, job, step, min(EXPECTED)),
                                   shell=False), ws, gh_step_env(doc, job, step, ws))
            summary = (ws / "summary.md").read_text() if (ws / "summary.md").exists() else ""
        if done.returncode != 0:
            problems.append(f"summary step exits {done.returncode}: {done.stderr.strip()}")
        elif report is not None and report not in summary:
            problems.append(f"summary step leaves {out}/{MARKDOWN_NAME} out of the summary")
        elif report is None and not summary.strip():
            problems.append("summary step writes nothing when kheaders-ci left no report")
    return problems


def gh_merge_run_problems(text: str) -> list[str]:
    """The report job's merge step passes every job's report.json to kheaders-ci-merge and
    exits with its status; 2 when a matrix job failed without a report, or none left one."""
    doc = load(text)
    job, report = gh_job(doc, MATRIX_JOB), gh_job(doc, REPORT_JOB)
    upload = gh_uses(job, "actions/upload-artifact")[0]
    download = str(gh_uses(report, "actions/download-artifact")[0]["with"]["path"])
    problems = []
    cases = [(0, "success", True, 0), (1, "failure", True, 1), (2, "failure", True, 2),
             (0, "failure", True, 2), (0, "failure", False, 2)]
    for status, result, with_reports, expected in cases:
        with tempfile.TemporaryDirectory() as tmp:
            ws = Path(tmp)
            reports = [] if not with_reports else [
                p for combo in sorted(EXPECTED) for p in write_job_reports(
                    ws / download / expand(str(upload["with"]["name"]),
                                           gh_values(doc, job, upload, combo)), [combo])]
            rc, stub = gh_run_step(doc, REPORT_JOB, MERGE_PROGRAM, ws, status,
                                   {"needs.test.result": result})
            got = stub_args(stub)
        case = f"merge exits {status}, matrix {result}, reports {with_reports}"
        if rc != expected:
            problems.append(f"{case}: the step exits {rc}, not {expected}")
        if with_reports and sorted(ws / p for p in got[1:]) != sorted(reports):
            problems.append(f"{case}: {MERGE_PROGRAM} got {got[1:]}, not every job's report")
    return problems


# --- GitLab CI ------------------------------------------------------------------------------

def gl_job(doc: Doc, name: str) -> Doc:
    job = doc.get(name)
    assert isinstance(job, dict), f"no job {name!r} in the pipeline"
    return job


def gl_raw_variables(doc: Doc, job: Doc) -> dict[str, str]:
    def value(v: Any) -> str:
        return str(v.get("value", "")) if isinstance(v, dict) else str(v)
    return {k: value(v) for scope in (doc, job) for k, v in (scope.get("variables") or {}).items()}


def gl_values(doc: Doc, job_name: str, combo: Combo | None,
              overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The job's variables, each expanded as GitLab does (they may name others)."""
    raw = gl_raw_variables(doc, gl_job(doc, job_name))
    if combo is not None:
        raw |= {"ARCH": combo[0], "VARIANT": combo[1]}
    raw |= overrides or {}
    known = {**GL_PREDEFINED, **raw}
    return {**GL_PREDEFINED, **{k: expand(v, known) for k, v in raw.items()}}


def gl_script(job: Doc, parts: Sequence[str] = ("before_script", "script", "after_script")
              ) -> str:
    lines = []
    for part in parts:
        value = job.get(part) or []
        lines += [value] if isinstance(value, str) else [str(line) for line in value]
    return "\n".join(lines)


def gl_calls(doc: Doc, program: str, combo: Combo | None) -> list[tuple[str, Call]]:
    found = []
    for name in (MATRIX_JOB, REPORT_JOB):
        script = expand(gl_script(gl_job(doc, name)), gl_values(doc, name, combo))
        found += [(name, call) for call in calls(script, program)]
    return found


def gl_ci_out(doc: Doc, combo: Combo) -> str:
    """kheaders-ci's --out in the matrix job, relative to the project directory."""
    call = next(c for j, c in gl_calls(doc, CI_PROGRAM, combo) if j == MATRIX_JOB)
    out = str(parse_ci(call.argv).out)
    project = GL_PREDEFINED["CI_PROJECT_DIR"]
    return out[len(project) + 1:] if within(out, project) else out


def gl_jobs_problems(text: str) -> list[str]:
    doc = load(text)
    problems = []
    stages = doc.get("stages", [])
    job, report = gl_job(doc, MATRIX_JOB), gl_job(doc, REPORT_JOB)
    if job.get("stage") not in stages or report.get("stage") not in stages or \
            stages.index(job["stage"]) >= stages.index(report["stage"]):
        problems.append(f"stages {stages}: {MATRIX_JOB} must come before {REPORT_JOB}")
    if str(job.get("image", "")) not in ("debian:bookworm", "debian:12"):
        problems.append(f"image {job.get('image')!r}: ci/setup needs Debian 12")
    if gl_raw_variables(doc, job).get("GIT_DEPTH") != "0":
        problems.append("GIT_DEPTH is not 0: the kernel's history is cut short")
    rules = " ".join(str(r.get("if", "")) for r in job.get("rules", []))
    if "merge_request_event" not in rules:
        problems.append(f"{MATRIX_JOB} does not run in merge request pipelines")
    return problems


def gl_matrix_problems(text: str) -> list[str]:
    entries = gl_job(load(text), MATRIX_JOB).get("parallel", {}).get("matrix", [])
    combos = []
    for entry in entries:
        lists = {k: v if isinstance(v, list) else [v] for k, v in entry.items()}
        combos += [dict(zip(lists, values, strict=True))
                   for values in itertools.product(*lists.values())]
    return matrix_problems(combos, ("ARCH", "VARIANT"))


def gl_command_problems(text: str) -> list[str]:
    doc = load(text)
    problems: list[str] = []
    for combo in sorted(EXPECTED):
        problems += ci_call_problems(gl_calls(doc, CI_PROGRAM, combo), combo)
    return list(dict.fromkeys(problems))


def gl_cache_problems(text: str) -> list[str]:
    """KHEADERS_SUITE_CACHE is under $CI_PROJECT_DIR (GitLab caches nothing outside it);
    the cache keeps paths in it, per arch, also for failed jobs."""
    doc = load(text)
    job = gl_job(doc, MATRIX_JOB)
    var = gl_raw_variables(doc, job).get("KHEADERS_SUITE_CACHE", "")
    match = re.fullmatch(r"\$\{?CI_PROJECT_DIR\}?/(.+)", var)
    if match is None:
        return [f"KHEADERS_SUITE_CACHE {var!r} is not under $CI_PROJECT_DIR"]
    cache = next(iter(gl_caches(job)), {})  # the others: test_ci_base_cache.py
    paths = [str(p) for p in cache.get("paths", [])]
    problems = [f"cache path {p} is not in KHEADERS_SUITE_CACHE ({var})"
                for p in paths if not within(p, match.group(1))]
    if not paths:
        problems.append("the job caches nothing")
    if not re.search(r"\$\{?ARCH\b", str(cache.get("key", ""))):
        problems.append(f"cache key {cache.get('key')!r} is not per $ARCH")
    if cache.get("when") != "always":
        problems.append("the cache is saved only when the job passes (when: always)")
    expanded = expand(var, GL_PREDEFINED)
    return problems + cache_dir_problems(gl_calls(doc, CI_PROGRAM, min(EXPECTED)), expanded)


def gl_caches(job: Doc) -> list[Doc]:
    """The job's caches: ``cache:`` is one mapping or a list of them."""
    caches = job.get("cache") or []
    return [caches] if isinstance(caches, dict) else list(caches)


def gl_artifact_problems(text: str) -> list[str]:
    """The out dir is kept, always; the JUnit globs find both sides' junit.xml where
    kheaders-ci writes them (run.side_paths)."""
    doc = load(text)
    artifacts = gl_job(doc, MATRIX_JOB).get("artifacts") or {}
    problems = []
    if artifacts.get("when") != "always":
        problems.append("artifacts are kept only when the job passes (when: always)")
    junit = artifacts.get("reports", {}).get("junit", [])
    globs = [junit] if isinstance(junit, str) else [str(g) for g in junit]
    for combo in sorted(EXPECTED):
        out = gl_ci_out(doc, combo)
        if not any(within(out, str(p)) for p in artifacts.get("paths", [])):
            problems.append(f"artifacts:paths do not hold kheaders-ci's --out {out}")
        for side in cli.SIDES:
            path = PurePosixPath(side_paths(Path(out), side, Target(*combo)).junit.as_posix())
            if not any(len(PurePosixPath(g).parts) == len(path.parts) and path.match(g)
                       for g in globs):
                problems.append(f"no reports:junit glob matches {path}")
    return list(dict.fromkeys(problems))


def gl_merge_problems(text: str) -> list[str]:
    doc = load(text)
    report = gl_job(doc, REPORT_JOB)
    problems = []
    needs = [n if isinstance(n, str) else n.get("job") for n in report.get("needs", [])]
    if MATRIX_JOB not in needs:
        problems.append(f"{REPORT_JOB} does not need {MATRIX_JOB}")
    rules = report.get("rules") or [{}]
    if report.get("when") != "always" and not all(r.get("when") == "always" for r in rules):
        problems.append(f"{REPORT_JOB} runs only when every {MATRIX_JOB} job passed")
    merges = [c for j, c in gl_calls(doc, MERGE_PROGRAM, None) if j == REPORT_JOB]
    if not any(len(c.argv) >= 2 for c in merges):
        problems.append(f"{REPORT_JOB}: no {MERGE_PROGRAM} OUT_DIR REPORT... call")
    return problems


def gl_run(doc: Doc, job_name: str, parts: Sequence[str], tmp: Path, combo: Combo | None,
           env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """The job's script ``parts`` in project dir <tmp>/project, the suite in <tmp>/suite."""
    project, suite = tmp / "project", tmp / "suite"
    project.mkdir(exist_ok=True)
    values = gl_values(doc, job_name, combo, {"CI_PROJECT_DIR": str(project),
                                              "KHEADERS_SUITE_DIR": str(suite)})
    python = {"PYTHONPATH": str(link_python(suite / ".venv" / "bin"))}
    return run_bash(gl_script(gl_job(doc, job_name), parts), project,
                    {**values, **python, **env})


def link_python(venv_bin: Path) -> Path:
    """The suite's .venv/bin/python in a sandbox: this interpreter. Returns the suite's
    src/, for PYTHONPATH."""
    venv_bin.mkdir(parents=True, exist_ok=True)
    if not (venv_bin / "python").exists():
        (venv_bin / "python").symlink_to(sys.executable)
    return REPO_ROOT / "src"


def gl_run_status_problems(text: str) -> list[str]:
    """The test job's script exits with kheaders-ci's status."""
    doc = load(text)

    def run(status: int) -> int:
        with tempfile.TemporaryDirectory() as tmp:
            install_stub(Path(tmp, "suite", ".venv", "bin", CI_PROGRAM))
            return gl_run(doc, MATRIX_JOB, ("script",), Path(tmp), min(EXPECTED),
                          {"STUB_STATUS": str(status)}).returncode
    return status_problems(f"{MATRIX_JOB}'s script", run)


def gl_merge_case(doc: Doc, tmp: Path, status: int, missing: Combo | None,
                  with_reports: bool = True) -> tuple[int, list[Path], list[str], str]:
    """Every test job's after_script run (it leaves a marker of how the job ended), their
    reports where kheaders-ci puts them (but ``missing``'s), then the report job's script
    with kheaders-ci-merge exiting ``status``: (exit status, reports, merge's argv, log)."""
    stub = install_stub(tmp / "suite" / ".venv" / "bin" / MERGE_PROGRAM)
    reports = []
    for combo in sorted(EXPECTED):
        ended = "failed" if combo == missing else "success"
        gl_run(doc, MATRIX_JOB, ("after_script",), tmp, combo, {"CI_JOB_STATUS": ended})
        if with_reports and combo != missing:
            reports += write_job_reports(tmp / "project" / gl_ci_out(doc, combo), [combo])
    done = gl_run(doc, REPORT_JOB, ("script",), tmp, None,
                  {"STUB_STATUS": str(status), "STUB_REPORT": STUB_REPORT})
    return done.returncode, reports, stub_args(stub), done.stdout + done.stderr


def gl_merge_run_problems(text: str) -> list[str]:
    """The report job merges every job's report.json, prints the merged Markdown and exits
    with kheaders-ci-merge's status; 2 when a job ended without a report, or none left one."""
    doc = load(text)
    problems = []
    cases: list[tuple[int, Combo | None, bool, int]] = [
        (0, None, True, 0), (1, None, True, 1), (2, None, True, 2),
        (0, max(EXPECTED), True, 2), (0, None, False, 2)]
    for status, missing, with_reports, expected in cases:
        with tempfile.TemporaryDirectory() as tmp:
            rc, reports, got, log = gl_merge_case(doc, Path(tmp), status, missing,
                                                  with_reports)
            project = Path(tmp, "project")
            merged_inputs = sorted(project / p for p in got[1:])
        case = f"merge exits {status}, job without report {missing}, reports {with_reports}"
        if rc != expected:
            problems.append(f"{case}: the job exits {rc}, not {expected}: {log.strip()}")
        if with_reports and merged_inputs != sorted(reports):
            problems.append(f"{case}: {MERGE_PROGRAM} got {got[1:]}, not every job's report")
        if with_reports and STUB_REPORT not in log:
            problems.append(f"{case}: the merged report.md is not in the job's log")
        if missing is not None and Target(*missing).id not in log:
            problems.append(f"{case}: the job without a report is not named")
    return problems


# --- the tests ------------------------------------------------------------------------------

CHECKS: dict[str, tuple[Path, Check]] = {
    "gh-jobs": (GITHUB, gh_jobs_problems),
    "gh-matrix": (GITHUB, gh_matrix_problems),
    "gh-command": (GITHUB, gh_command_problems),
    "gh-cache": (GITHUB, gh_cache_problems),
    "gh-summary": (GITHUB, gh_summary_problems),
    "gh-artifacts": (GITHUB, gh_artifact_problems),
    "gh-merge": (GITHUB, gh_merge_problems),
    "gh-run-status": (GITHUB, gh_run_status_problems),
    "gh-summary-run": (GITHUB, gh_summary_run_problems),
    "gh-merge-run": (GITHUB, gh_merge_run_problems),
    "gl-jobs": (GITLAB, gl_jobs_problems),
    "gl-matrix": (GITLAB, gl_matrix_problems),
    "gl-command": (GITLAB, gl_command_problems),
    "gl-cache": (GITLAB, gl_cache_problems),
    "gl-artifacts": (GITLAB, gl_artifact_problems),
    "gl-merge": (GITLAB, gl_merge_problems),
    "gl-run-status": (GITLAB, gl_run_status_problems),
    "gl-merge-run": (GITLAB, gl_merge_run_problems),
}

# (check, text in its template, what it becomes, a part of the problem the check must report)
MUTATIONS: list[tuple[str, str, str, str]] = [
    ("gh-jobs", "options: --privileged", "options: --rm", "--privileged"),
    ("gh-jobs", "fetch-depth: 0", "fetch-depth: 1", "full history"),
    ("gh-jobs", "image: debian:bookworm", "image: ubuntu:24.04", "Debian 12"),
    ("gh-matrix", "variant: [sysfs, module, proc, debugfs]", "variant: [sysfs, module, proc]",
     "x86_64-debugfs"),
    ("gh-matrix", "arch: [x86_64, arm64]", "arch: [x86_64, arm64, riscv64]",
     "riscv64-sysfs"),
    ("gh-command", '--arch "${{ matrix.arch }}"', "--arch x86_64", "arm64-sysfs: --arch x86_64"),
    ("gh-command", '--out "$OUT"', '--output-dir "$OUT"', "unrecognized arguments"),
    ("gh-command", '--range "$range" \\', "\\", "one of the arguments --range --mbox"),
    ("gh-cache", "~/.cache/kheaders-suite/ccache", "~/.ccache", "not in the suite's cache"),
    ("gh-cache", "kheaders-suite-${{ matrix.arch }}-${{ matrix.variant }}-${{ github.base_ref",
     "kheaders-suite-${{ matrix.arch }}-${{ github.base_ref", "lacks matrix.variant"),
    ("gh-cache", "if: always() && steps.run.outcome", "if: steps.run.outcome",
     "saves only when the job passes"),
    ("gh-cache", '--out "$OUT"', '--out "$OUT" --cache-dir /tmp/c', "--cache-dir /tmp/c"),
    ("gh-summary", "if: always()  # a regression", "# a regression", "only when the job"),
    ("gh-summary", '"$OUT/report.md"', '"$OUT/summary.md"',
     "does not read kheaders-ci-out/report.md"),
    ("gh-artifacts", "name: kheaders-ci-job-${{ matrix.arch }}-${{ matrix.variant }}",
     "name: kheaders-ci-job-${{ matrix.arch }}", "not one per job"),
    ("gh-artifacts", "pattern: kheaders-ci-job-*", "pattern: kheaders-ci-jobs-*",
     "misses"),
    ("gh-artifacts", "            merged/kcidb.json\n", "", "kcidb.json is not uploaded"),
    ("gh-merge", "if: always()  # the merged", "# the merged", "runs only when"),
    ("gh-merge", 'kheaders-ci-merge" merged', 'kheaders-ci-merger" merged', "no kheaders-ci"),
    ("gh-merge", "needs: test", "needs: []", "does not need test"),
    ("gh-run-status", '--out "$OUT"\n', '--out "$OUT" || true\n', "exits 0 when the program"),
    ("gh-summary-run", 'cat "$OUT/report.md" >> "$GITHUB_STEP_SUMMARY"',
     'cat "$OUT/report.md"', "out of the summary"),
    ("gh-merge-run", 'exit "$status"', "exit 0", "the step exits 0, not 1"),
    ("gh-merge-run", "reports=(job-outputs/*/jobs/*/report.json)",
     "reports=(job-outputs/*/report.json)", "exits 2, not 0"),
    ("gh-merge-run", '[ "$TEST_RESULT" != success ]', "false", "exits 0, not 2"),
    ("gl-jobs", 'GIT_DEPTH: "0"', 'GIT_DEPTH: "50"', "GIT_DEPTH"),
    ("gl-jobs", "stages: [test, report]", "stages: [report, test]", "must come before"),
    ("gl-matrix", "ARCH: [x86_64, arm64]", "ARCH: [x86_64]", "lacks arm64-debugfs"),
    ("gl-matrix", "VARIANT: [sysfs, module, proc, debugfs]",
     "VARIANT: [sysfs, module, proc, debugfs, sysfs]", "2 times"),
    ("gl-command", '--variant "$VARIANT"', "--variant sysfs", "--variant sysfs, not the"),
    ("gl-command", '--tree "$CI_PROJECT_DIR"', '--trees "$CI_PROJECT_DIR"', "--tree"),
    ("gl-cache", "KHEADERS_SUITE_CACHE: $CI_PROJECT_DIR/.kheaders-suite-cache",
     "KHEADERS_SUITE_CACHE: /root/.cache/kheaders-suite", "not under $CI_PROJECT_DIR"),
    ("gl-cache", "      - .kheaders-suite-cache/ccache", "      - .ccache",
     "cache path .ccache"),
    ("gl-cache", "key: kheaders-suite-$ARCH", "key: kheaders-suite", "not per $ARCH"),
    ("gl-cache", "    when: always  # a failing job", "    # a failing job",
     "saved only when"),
    ("gl-artifacts", "kheaders-ci-out/*/patched/*/junit.xml",
     "kheaders-ci-out/*/patched/junit.xml", "matches kheaders-ci-out/4242/patched/"),
    ("gl-artifacts", "  artifacts:\n    when: always\n    # report.json",
     "  artifacts:\n    # report.json", "kept only when"),
    ("gl-artifacts", "      - kheaders-ci-out/\n", "      - kheaders-ci-outs/\n",
     "do not hold"),
    ("gl-merge", "    - if: $KHEADERS_CI_BASE\n      when: always",
     "    - if: $KHEADERS_CI_BASE", "runs only when"),
    ("gl-merge", 'kheaders-ci-merge" kheaders-ci-report', 'merge" kheaders-ci-report',
     "no kheaders-ci-merge"),
    ("gl-run-status", '--out "$KHEADERS_CI_OUT"\n', '--out "$KHEADERS_CI_OUT" || true\n',
     "exits 0 when the program"),
    ("gl-merge-run", '[ "$status" -ne 0 ] || status=2', ":", "exits 0, not 2"),
    ("gl-merge-run", 'ci-jobs/$ARCH-$VARIANT"', 'ci-jobs/$ARCH"', "exits 2, not 0"),
    ("gl-merge-run", "then cat kheaders-ci-report/report.md; fi", "then :; fi",
     "not in the job's log"),
]


def mutate(text: str, old: str, new: str) -> str:
    """``text`` with ``old`` (which must be there, or the mutation tests nothing) replaced."""
    assert old in text, f"the template no longer has {old!r}: update the mutation"
    return text.replace(old, new)


@pytest.mark.parametrize("name", CHECKS)
def test_template_passes_check(name: str) -> None:
    template, check = CHECKS[name]
    assert check(template.read_text()) == []


@pytest.mark.parametrize(("name", "old", "new", "expected"), MUTATIONS,
                         ids=[f"{m[0]}-{i}" for i, m in enumerate(MUTATIONS)])
def test_check_finds_drift(name: str, old: str, new: str, expected: str) -> None:
    template, check = CHECKS[name]
    problems = check(mutate(template.read_text(), old, new))
    assert any(expected in p for p in problems), problems


def test_every_check_is_shown_to_fail() -> None:
    assert {m[0] for m in MUTATIONS} == set(CHECKS)


def test_program_names_are_the_packages_commands() -> None:
    """The templates call kheaders-ci and kheaders-ci-merge by the names pyproject.toml
    installs, and those are the entry points whose parser and behaviour are checked here."""
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[CI_PROGRAM] == "kheaders_suite.patchci.cli:main"
    assert scripts[MERGE_PROGRAM] == "kheaders_suite.patchci.merge:main"


def test_calls_are_cut_at_shell_operators() -> None:
    script = 'x=1\n"$S/bin/kheaders-ci" --tree t \\\n  --range "a..b" || status=$?  # kheaders-ci\n'
    assert calls(script, "kheaders-ci") == [Call("$S/bin/kheaders-ci",
                                                 ("--tree", "t", "--range", "a..b"))]


def test_expand_leaves_shell_defaults_and_names_the_unknown() -> None:
    text = '${{ matrix.arch }} $OUT ${OUT}/x ${RANGE:-a..b} $? ${{ github.sha }}'
    assert expand(text, {"matrix.arch": "arm64", "OUT": "o"}) == \
        "arm64 o o/x ${RANGE:-a..b} $? placeholder-github.sha"
