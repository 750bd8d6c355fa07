"""ci/templates/: the cache of the base's builds and object tree, held to the code it relies
on, in the manner of test_ci_templates.py (whose parsing and sandbox this uses).

What it relies on: build entries under <cache>/builds/ and object trees under <cache>/work/
(catalog.paths.build_entry, build.kernel.workspace), the suite's HARNESS_VERSION and the
flavor kheaders-ci builds in the key, an entry's mtime set when a run uses it (the pruning
before a save keeps only what the job built or used), and one source path on every runner
(the object tree is named by it). The key step and the pruning run under bash, the key step
on a git tree with origin/<base>, with this interpreter as the suite's python.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from kheaders_suite import HARNESS_VERSION
from kheaders_suite.build.kernel import BuildOptions, workspace
from kheaders_suite.catalog import arches
from kheaders_suite.catalog.paths import build_entry
from kheaders_suite.source.tree import KernelSource, KernelVersion
from tests.test_ci_templates import (
    CI_PROGRAM,
    EXPECTED,
    GITHUB,
    GITLAB,
    MATRIX_JOB,
    Check,
    Combo,
    Doc,
    always,
    default_cache,
    expand,
    gh_cache_pair,
    gh_calls,
    gh_job,
    gh_step_env,
    gh_uses,
    gh_values,
    gl_caches,
    gl_job,
    gl_raw_variables,
    gl_run,
    gl_values,
    install_stub,
    link_python,
    load,
    mutate,
    run_bash,
)

STAMP = ".job-start"  # where a job marks its start in the cache, for the pruning
FLAVOR = BuildOptions(cache_dir=Path()).flavor  # kheaders-ci passes no --flavor
GIT = ("git", "-c", "user.name=t", "-c", "user.email=t@localhost", "-c", "commit.gpgSign=false")
HOUR = 3600 * 10**9


def suite_dirs() -> tuple[str, str]:
    """The names of the cache's builds/ and work/, as the suite lays them out."""
    cache = Path("/c")
    source = KernelSource(Path("/s"), KernelVersion(6, 12), "git:1:x", "/s")
    builds = build_entry(cache, "x86_64", "sysfs", "k").parent
    work = workspace(BuildOptions(cache_dir=cache), source, arches.get("x86_64")).parent
    return builds.name, work.name


def git_tree(tree: Path) -> str:
    """A git tree with one commit, as origin/master too: the commit."""
    tree.mkdir(parents=True)
    (tree / "Makefile").write_text("VERSION = 6\n")
    for args in (("init", "-q"), ("add", "-A"), ("commit", "-q", "-m", "base"),
                 ("update-ref", "refs/remotes/origin/master", "HEAD")):
        subprocess.run((*GIT, "-C", str(tree), *args), check=True, capture_output=True,
                       timeout=60)
    done = subprocess.run(("git", "-C", str(tree), "rev-parse", "HEAD"), check=True,
                          capture_output=True, text=True, timeout=60)
    return done.stdout.strip()


def prune_case(cache_of: Callable[[Path], Path], stamp: Callable[[Path], object],
               prune: Callable[[Path], subprocess.CompletedProcess[str]],
               others_pass: bool) -> list[str]:
    """In a sandbox <root>: ``stamp(root)`` runs the job's stamping of its start in
    ``cache_of(root)``, ``prune(root)`` its pruning. Of the job's target, an entry older
    than the stamp goes and one built or used since stays; another variant's old entry goes
    too, or passes through (``others_pass``); a job that left no builds/ does not fail."""
    arch, variant = min(EXPECTED)
    other = next(v for a, v in sorted(EXPECTED) if a == arch and v != variant)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        stamp(root)
        cache = cache_of(root)
        if not (cache / STAMP).exists():
            return [f"no stamp of the job's start in the cache ({cache / STAMP})"]
        problems = []
        if (done := prune(root)).returncode != 0:
            problems.append(f"the pruning fails without builds/: {done.stderr.strip()}")
        start = (cache / STAMP).stat().st_mtime_ns
        entries = {"old": (variant, start - HOUR), "used": (variant, start + HOUR),
                   "other": (other, start - HOUR)}
        for key, (of, mtime) in entries.items():
            build_entry(cache, arch, of, key).mkdir(parents=True)
            os.utime(build_entry(cache, arch, of, key), ns=(mtime, mtime))
        prune(root)
        left = sorted(p.name.rsplit("-", 1)[1] for p in build_entry(cache, arch, variant,
                                                                    "k").parent.iterdir())
    wanted = ["other", "used"] if others_pass else ["used"]
    if left != wanted:
        problems.append(f"the pruning leaves {left}, not {wanted} (old: neither built nor "
                        f"used by the job; other: of {arch}-{other})")
    return problems


# --- GitHub Actions -------------------------------------------------------------------------

def gh_base_restore(job: Doc) -> Doc | None:
    """The restore step keyed by another step's output: the base's builds and object tree."""
    return next((s for s in gh_uses(job, "actions/cache/restore")
                 if "outputs.key" in str(s.get("with", {}).get("key", ""))), None)


def gh_paths(step: Doc) -> list[str]:
    return [p.strip() for p in str(step.get("with", {}).get("path", "")).splitlines()
            if p.strip()]


def gh_index(job: Doc, step: Doc) -> int:
    return [id(s) for s in job["steps"]].index(id(step))


def gh_key_step(job: Doc, restore: Doc) -> Doc | None:
    match = re.search(r"steps\.([\w-]+)\.outputs\.key", str(restore["with"]["key"]))
    ids = {s.get("id"): s for s in job["steps"]}
    return ids.get(match.group(1)) if match else None


def gh_run_key_step(doc: Doc, job: Doc, step: Doc, combo: Combo
                    ) -> tuple[str, subprocess.CompletedProcess[str], dict[str, str]]:
    """The key step in a workspace with the tree (origin/master) and the suite's python:
    (the base commit, the run, its step outputs)."""
    values = gh_values(doc, job, step, combo)
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        commit = git_tree(ws / values["TREE"])
        src = link_python(ws / values["SUITE"] / ".venv" / "bin")
        env = {**gh_step_env(doc, job, step, ws), "GITHUB_OUTPUT": str(ws / "outputs"),
               "PYTHONPATH": str(src)}
        done = run_bash(expand(step["run"], values, shell=False), ws, env)
        lines = (ws / "outputs").read_text().splitlines() if (ws / "outputs").exists() else []
    return commit, done, dict(line.split("=", 1) for line in lines if "=" in line)


def gh_key_problems(doc: Doc, job: Doc, restore: Doc) -> list[str]:
    """The key is <prefix><base commit>, the prefix naming the arch, the flavor and the
    suite's HARNESS_VERSION; restore-keys is the prefix (another base commit's)."""
    step = gh_key_step(job, restore)
    if step is None or "run" not in step:
        return [f"the base's cache key {restore['with']['key']!r} is no run step's output"]
    problems = []
    if str(restore["with"].get("restore-keys", "")).strip() != \
            f"${{{{ steps.{step['id']}.outputs.prefix }}}}":
        problems.append("no fallback to the newest cache of another base commit (restore-keys "
                        "is not the key step's prefix)")
    for combo in sorted({min(c for c in EXPECTED if c[0] == a) for a, _ in EXPECTED}):
        commit, done, out = gh_run_key_step(doc, job, step, combo)
        prefix, key = out.get("prefix", ""), out.get("key", "")
        if done.returncode != 0:
            return [f"the key step exits {done.returncode}: {done.stderr.strip()}"]
        if key != prefix + commit:
            problems.append(f"key {key!r} is not the prefix and the base commit {commit}")
        problems += [f"key prefix {prefix!r} lacks {what}" for part, what in (
            (f"-{combo[0]}-", "the arch"), (f"-{FLAVOR}-", f"the flavor {FLAVOR}"),
            (f"-h{HARNESS_VERSION}-", f"the suite's HARNESS_VERSION (h{HARNESS_VERSION})"))
            if part not in prefix]
    return list(dict.fromkeys(problems))


def gh_saves_problems(job: Doc, restore: Doc, run: Doc) -> list[str]:
    """Saved after kheaders-ci, the same paths under the restore's key, also when the job
    failed, and not on a hit (a key cannot be overwritten)."""
    saves = [s for s in gh_cache_pair(job, str(restore.get("id")))
             if s["uses"].startswith("actions/cache/save")]
    if not saves:
        return ["the base's builds and object tree are never saved"]
    problems = []
    for save in saves:
        name = repr(save.get("name"))
        if gh_paths(save) != gh_paths(restore):
            problems.append(f"{name} saves {gh_paths(save)}, not {gh_paths(restore)}")
        if not always(save):
            problems.append(f"{name} saves only when the job passes (no if: always())")
        if "cache-hit != 'true'" not in str(save.get("if", "")):
            problems.append(f"{name} saves on a cache hit too")
        if gh_index(job, save) < gh_index(job, run):
            problems.append(f"{name} comes before {CI_PROGRAM}")
    return problems


def gh_prune_problems(job: Doc, restore: Doc, run: Doc) -> list[str]:
    """The job stamps its start between the restore and kheaders-ci; before the save, the
    entries not newer than the stamp go."""
    runs = [s for s in job["steps"] if STAMP in s.get("run", "")]
    stamps = [s for s in runs if "touch" in s["run"]]
    prunes = [s for s in runs if "-newer" in s["run"]]
    if len(stamps) != 1 or len(prunes) != 1:
        return [f"not one step stamping the job's start ({len(stamps)}) and one pruning "
                f"the builds by it ({len(prunes)})"]
    problems = []
    if not gh_index(job, restore) < gh_index(job, stamps[0]) < gh_index(job, run):
        problems.append("the job's start is not stamped between the restore and kheaders-ci")
    if not always(prunes[0]) or gh_index(job, prunes[0]) < gh_index(job, run):
        problems.append("the pruning is not after kheaders-ci with if: always()")
    def in_sandbox(root: Path, step: Doc) -> subprocess.CompletedProcess[str]:
        return run_bash(step["run"], root, {"HOME": str(root / "home")})
    return problems + prune_case(
        lambda root: root / "home" / default_cache().removeprefix("~/"),
        lambda root: in_sandbox(root, stamps[0]), lambda root: in_sandbox(root, prunes[0]),
        others_pass=False)


def gh_base_cache_problems(text: str) -> list[str]:
    """The base's builds and object tree: restored before kheaders-ci under a key of the
    base commit, arch, flavor and HARNESS_VERSION; pruned and saved after it."""
    doc = load(text)
    job = gh_job(doc, MATRIX_JOB)
    restore = gh_base_restore(job)
    if restore is None:
        return ["no actions/cache/restore step keyed by a step's output (the base's cache)"]
    run = next(st for j, _, st in gh_calls(doc, CI_PROGRAM, min(EXPECTED)) if j == MATRIX_JOB)
    wanted = sorted(f"{default_cache()}/{name}" for name in suite_dirs())
    problems = []
    if sorted(gh_paths(restore)) != wanted:
        problems.append(f"the base's cache keeps {sorted(gh_paths(restore))}, not {wanted}")
    if gh_index(job, restore) > gh_index(job, run):
        problems.append(f"the base's cache is restored after {CI_PROGRAM}")
    problems += gh_key_problems(doc, job, restore)
    problems += gh_saves_problems(job, restore, run)
    return problems + gh_prune_problems(job, restore, run)


# --- GitLab CI ------------------------------------------------------------------------------

def gl_key_problems(doc: Doc, job: Doc, wanted: dict[str, dict[str, str]]) -> list[str]:
    """A cache for each path of ``wanted``, saved always, its key naming the arch, the
    flavor, HARNESS_VERSION and the path's own parts (part -> what it is)."""
    by_path = {str(p): c for c in gl_caches(job) for p in c.get("paths", [])}
    problems = []
    for combo in (min(EXPECTED), max(EXPECTED)):
        values = gl_values(doc, MATRIX_JOB, combo, {"KHEADERS_CI_BASE": ""})
        for path, extra in wanted.items():
            cache = by_path.get(path)
            if cache is None:
                problems.append(f"no cache keeps {path}")
                continue
            key = expand(str(cache.get("key", "")), values)
            needs = {f"-{combo[0]}-": "the arch", f"-{FLAVOR}-": f"the flavor {FLAVOR}",
                     f"-h{HARNESS_VERSION}": f"HARNESS_VERSION (h{HARNESS_VERSION})", **extra}
            problems += [f"the key of {path} ({key}) lacks {what}"
                         for part, what in needs.items() if part not in key]
            if cache.get("when") != "always":
                problems.append(f"{path} is saved only when the job passes (when: always)")
    return list(dict.fromkeys(problems))


def gl_variables_problems(doc: Doc, job: Doc) -> list[str]:
    raw = gl_raw_variables(doc, job)
    problems = []
    if not raw.get("GIT_CLONE_PATH", "").startswith("$CI_BUILDS_DIR/"):
        problems.append("no GIT_CLONE_PATH under $CI_BUILDS_DIR: the project directory, and "
                        "with it the object tree's name, may differ between runners")
    if raw.get("KHEADERS_SUITE_HARNESS") != HARNESS_VERSION:
        problems.append(f"KHEADERS_SUITE_HARNESS {raw.get('KHEADERS_SUITE_HARNESS')!r} is "
                        f"not the suite's HARNESS_VERSION {HARNESS_VERSION!r}")
    if raw.get("KHEADERS_FLAVOR") != FLAVOR:
        problems.append(f"KHEADERS_FLAVOR {raw.get('KHEADERS_FLAVOR')!r} is not {FLAVOR!r}, "
                        "the flavor kheaders-ci builds")
    return problems


def gl_script_problems(doc: Doc) -> list[str]:
    """The script warns when KHEADERS_SUITE_HARNESS is not the suite's and still exits with
    kheaders-ci's status; it stamps the job's start, by which after_script prunes."""
    problems = []
    for harness, status in ((HARNESS_VERSION, 0), ("0", 1)):
        with tempfile.TemporaryDirectory() as tmp:
            done = gl_script_run(doc, Path(tmp), status, harness)
        warned = f"HARNESS_VERSION {HARNESS_VERSION}" in done.stderr
        if done.returncode != status:
            problems.append(f"the script exits {done.returncode}, not {status}: {done.stderr}")
        if warned != (harness != HARNESS_VERSION):
            problems.append(f"KHEADERS_SUITE_HARNESS {harness}: the script "
                            f"{'warns' if warned else 'does not warn'}")
    return problems + prune_case(
        lambda root: root / "project" / gl_cache_rel(doc),
        lambda root: gl_script_run(doc, root, 0, HARNESS_VERSION),
        lambda root: gl_run(doc, MATRIX_JOB, ("after_script",), root, min(EXPECTED),
                            {"CI_JOB_STATUS": "success"}), others_pass=True)


def gl_script_run(doc: Doc, root: Path, status: int, harness: str
                  ) -> subprocess.CompletedProcess[str]:
    """The test job's script in sandbox ``root``, kheaders-ci a stand-in exiting ``status``."""
    install_stub(root / "suite" / ".venv" / "bin" / CI_PROGRAM)
    return gl_run(doc, MATRIX_JOB, ("script",), root, min(EXPECTED),
                  {"STUB_STATUS": str(status), "KHEADERS_SUITE_HARNESS": harness})


def gl_cache_rel(doc: Doc) -> str:
    """KHEADERS_SUITE_CACHE relative to the project directory."""
    var = gl_raw_variables(doc, gl_job(doc, MATRIX_JOB)).get("KHEADERS_SUITE_CACHE", "")
    return re.sub(r"^\$\{?CI_PROJECT_DIR\}?/", "", var)


def gl_base_cache_problems(text: str) -> list[str]:
    """builds/ by base commit, arch, flavor and HARNESS_VERSION; work/ (the object tree) by
    arch, flavor and HARNESS_VERSION; one project directory on every runner."""
    doc = load(text)
    job = gl_job(doc, MATRIX_JOB)
    builds, work = (f"{gl_cache_rel(doc)}/{name}" for name in suite_dirs())
    base = {"-" + "b" * 40: "the base commit"}  # GL_PREDEFINED's merge base
    problems = gl_variables_problems(doc, job)
    problems += gl_key_problems(doc, job, {builds: base, work: {}})
    return problems + gl_script_problems(doc)


# --- the tests ------------------------------------------------------------------------------

CHECKS: dict[str, tuple[Path, Check]] = {
    "gh-base-cache": (GITHUB, gh_base_cache_problems),
    "gl-base-cache": (GITLAB, gl_base_cache_problems),
}

# (check, text in its template, what it becomes, a part of the problem the check must report)
MUTATIONS: list[tuple[str, str, str, str]] = [
    ("gh-base-cache", 'echo "key=$prefix$commit"', 'echo "key=$prefix"', "the base commit"),
    ("gh-base-cache", '-$FLAVOR-h$harness-"', '-$FLAVOR-"', "HARNESS_VERSION"),
    ("gh-base-cache", "kheaders-suite-base-${{ matrix.arch }}-", "kheaders-suite-base-",
     "lacks the arch"),
    ("gh-base-cache", "          restore-keys: ${{ steps.base-key.outputs.prefix }}\n", "",
     "no fallback"),
    ("gh-base-cache", "            ~/.cache/kheaders-suite/work\n          key: ${{ steps.base-key",
     "          key: ${{ steps.base-key", "the base's cache keeps"),
    ("gh-base-cache", "if: always() && steps.base-cache.outputs.cache-hit",
     "if: steps.base-cache.outputs.cache-hit", "only when the job passes"),
    ("gh-base-cache", " && steps.base-cache.outputs.cache-hit != 'true'", "",
     "on a cache hit"),
    ("gh-base-cache", '! -newer "$stamp"', '-newer "$stamp"', "the pruning leaves"),
    ("gh-base-cache", '[ -d "$builds" ] && ', "", "fails without builds/"),
    ("gl-base-cache", f'KHEADERS_SUITE_HARNESS: "{HARNESS_VERSION}"',
     'KHEADERS_SUITE_HARNESS: "0"', "is not the suite's HARNESS_VERSION"),
    ("gl-base-cache", "    GIT_CLONE_PATH: $CI_BUILDS_DIR/kheaders-ci/$CI_PROJECT_PATH\n", "",
     "no GIT_CLONE_PATH"),
    ("gl-base-cache", "-$CI_MERGE_REQUEST_DIFF_BASE_SHA$KHEADERS_CI_BASE", "",
     "lacks the base commit"),
    ("gl-base-cache", "objects-$ARCH-$KHEADERS_FLAVOR", "objects-$KHEADERS_FLAVOR",
     "lacks the arch"),
    ("gl-base-cache", "        - .kheaders-suite-cache/work\n",
     "        - .kheaders-suite-cache/w\n", "no cache keeps .kheaders-suite-cache/work"),
    ("gl-base-cache", 'touch "$KHEADERS_SUITE_CACHE/.job-start"', "true", "no stamp"),
    ("gl-base-cache", 'if [ "$harness" != "$KHEADERS_SUITE_HARNESS" ]; then', "if false; then",
     "does not warn"),
    ("gl-base-cache", '! -newer "$stamp"', '-newer "$stamp"', "the pruning leaves"),
    ("gl-base-cache", ' -name "$ARCH-$VARIANT-*"', "", "the pruning leaves ['used'], not"),
]


# Each check on its template as it is (no mutation: no problem), then on each mutation of it
# (the problem it names), and every check shown to fail at least once.
CASES = [(name, None, None, None) for name in CHECKS] + MUTATIONS


@pytest.mark.parametrize(("name", "old", "new", "expected"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_base_cache_check(name: str, old: str | None, new: str | None,
                          expected: str | None) -> None:
    template, check = CHECKS[name]
    text = template.read_text()
    if old is None or new is None or expected is None:
        assert check(text) == []
        assert name in {m[0] for m in MUTATIONS}, f"{name}: no mutation shows it failing"
        return
    problems = check(mutate(text, old, new))
    assert any(expected in p for p in problems), problems

