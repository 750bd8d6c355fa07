"""kheaders-ci: test a kernel patch series with the suite, base against patched.

Everything is validated before anything is built: the tree, the refs, the series (it must
apply), the arches and variants, the test selection. A bad input is one line on stderr and
exit status 2, and a clone this run made is removed again. Then, for the base and then the
patched commit (the clone checked out at one path, so the patched build is incremental on
the base's), the suite runs once per arch x variant; each job is compared (compare.py), its
report written to <out>/jobs/<arch>-<variant>/, the jobs merged into <out>/report.{md,json}
and kcidb.json, and the Markdown printed.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from kheaders_suite.build import sandbox
from kheaders_suite.catalog.paths import default_cache_dir
from kheaders_suite.errors import InfraError, SuiteError, UserError
from kheaders_suite.patchci import clone as clones
from kheaders_suite.patchci import series as git_series
from kheaders_suite.patchci.compare import (
    base_problems,
    compare_job,
    needs_rerun,
    retry_candidates,
)
from kheaders_suite.patchci.document import ReportDoc, RunInfo, job_report
from kheaders_suite.patchci.merge import merge
from kheaders_suite.patchci.render import markdown, write_outputs
from kheaders_suite.patchci.run import (
    SWEEPS,
    SideRun,
    SuiteOptions,
    check_select,
    check_selection,
    jobs_for,
    pytest_command,
    rerun_side,
    retry_tests,
    run_side,
    side_paths,
)
from kheaders_suite.patchci.side import SideResult, SideStatus
from kheaders_suite.plugin.faults import FAULT_VARIABLE, parse_fault
from kheaders_suite.records import Target

PROG = "kheaders-ci"
BAD_INPUT = 2
SIDES = ("base", "patched")

EPILOG = """\
the series:
  --range A..B   the commits in B and not in A (git rev-list A..B; no merges), applied
                 onto --base (default: A) with git am. With --base A the patched tree is
                 B's, and the report names B as the patched commit.
  --mbox FILE..  patch files and mboxes (git format-patch output, the .mbx of b4 am),
                 applied onto --base with git am, in the order given; messages without a
                 diff (a cover letter) are skipped, the cover letter names the series.

the build sandbox (on by default; --no-sandbox turns it off):
  every make of both sides (configure, the image, modules, modules_install) runs in
  bubblewrap (bwrap): the host's file system read-only, writable only the build's work copy
  and object tree, its ccache directory, a private /tmp and the modules' install
  directory; no network (a loopback of its own), no capabilities, every namespace
  unshared. A series' Makefiles, Kconfig, scripts and host programs run there: on for
  --range too, since kheaders-ci cannot tell a range of the user's own from a pull
  request's (the ci/templates pass one), and for the base side, which builds in the
  object tree a series' make wrote to before. Sandboxed builds have a work copy, object
  tree and ccache directory of their own (<cache-dir>/work/*-sandbox,
  <cache-dir>/ccache-sandbox), which no unconfined build uses: the first sandboxed build
  of a tree is a cold one. A write outside those places fails the build, and the report
  quotes make's "Read-only file system" line. Reads are not confined: the build can read
  what this user can read, and put it in what it builds. Needs bwrap (Debian: apt-get
  install bubblewrap) and user namespaces or CAP_SYS_ADMIN; it is tried once before
  anything is built. --no-sandbox: for a series you trust, on a host without bwrap.

what it does:
  --tree is never written to: it is cloned (git clone --shared --no-checkout) into
  <cache-dir>/patchci/clones/<hash of its path>/linux, reused by later runs on the same
  tree. Base, then patched, is checked out there and the VM suite (the installed one, or a
  checkout's vmtests/) runs per arch x variant:
    python -m pytest SUITE --kernel-src CLONE --arch ARCH -k "ARCH-VARIANT [and (SELECT)]"
  with -m "not timing" (--sweep none) or --sweep reduced|full. Outputs, under --out:
    base/, patched/ARCH-VARIANT/  junit.xml, pytest.log, results/, the archive and .config
    patched/ARCH-VARIANT/retry/   the retry's junit.xml, pytest.log, results/
    jobs/ARCH-VARIANT/            report.md, report.json, kcidb.json, junit.xml of the job
    report.md, report.json, kcidb.json, junit.xml   all jobs (the Markdown is also printed)

before a verdict, on the patched side: every regression by a FAIL and every ERROR is run
  once more (pytest on those node ids, a fresh VM, the same build), and a side that did
  not boot with no kernel report is run again whole. What does not repeat is "flaky".

exit status:
  0 clean, or flaky only (the flaky findings are listed in the report);
  1 a regression: a check that held on base fails patched (FAIL, or SKIP: lost
    coverage), a new test fails, the patched kernel does not build, or does not boot
    with a kernel report (a panic), or a timing point is slower beyond the samples'
    noise;
  2 an infrastructure error, a broken base (nothing is blamed on the series), or
    bad input, said in one line on stderr: not a git tree, an unknown ref, a series
    that does not apply or is empty, an unknown arch or variant, a selection with no
    test.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__.split("\n\n")[0], epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, required=True, metavar="PATH",
                        help="kernel git tree (work tree top or bare repository)")
    parser.add_argument("--base", metavar="REF",
                        help="commit the series applies to (required with --mbox; "
                             "default with --range: A)")
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--range", metavar="A..B", help="the series as a commit range")
    given.add_argument("--mbox", type=Path, nargs="+", metavar="FILE",
                       help="the series as patch files or mboxes")
    parser.add_argument("--arch", default="all", metavar="LIST",
                        help="comma list of arches, or all (default)")
    parser.add_argument("--variant", default="all", metavar="LIST",
                        help="comma list of IKHEADERS variants, or all (default)")
    parser.add_argument("--select", default="", metavar="EXPR",
                        help="pytest -k expression ANDed with each job's target, e.g. "
                             "'test_archive.py or test_archive_check' (default: every test)")
    parser.add_argument("--sweep", choices=SWEEPS, default="none",
                        help="compile-timing tests: none (default), reduced or full")
    parser.add_argument("--out", type=Path, default=Path("patchci-results"), metavar="DIR",
                        help="results and reports (default ./patchci-results)")
    parser.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                        help="the suite's build cache (default $KHEADERS_SUITE_CACHE or "
                             "~/.cache/kheaders-suite)")
    parser.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto",
                        help="guest accelerator, as the suite's --accel (default auto)")
    parser.add_argument("--run-id", default="", metavar="ID",
                        help="id of this run in the reports (default: from base and series; "
                             "the same for every matrix job of one series)")
    parser.add_argument("--patched-fault", default="", metavar="SPEC",
                        help=f"set {FAULT_VARIABLE}=SPEC for the patched side's runs only "
                             "(the suite's fault injection, plugin/faults.py, e.g. "
                             "kill-qemu-once:STATE_FILE): to see the retry at work")
    parser.add_argument("--sandbox", action=argparse.BooleanOptionalAction, default=True,
                        help="run every make in the bwrap build sandbox (default; "
                             "see below); --no-sandbox runs make unconfined")
    parser.add_argument("--dry-run", action="store_true",
                        help="validate everything and print the pytest runs; build nothing")
    return parser


def say(message: str) -> None:
    print(f"[{PROG}] {message}", file=sys.stderr, flush=True)


def read_series(args: argparse.Namespace, tree: Path,
                scratch: Path) -> tuple[git_series.Series, str]:
    """The series and the base ref it goes onto."""
    if args.range is not None:
        a_ref, _ = git_series.split_range(args.range)
        found, _ = git_series.range_series(tree, args.range, scratch / "range")
        return found, args.base or a_ref
    if not args.base:
        raise UserError("--mbox needs --base REF: the commit the series applies to")
    return git_series.mbox_series([Path(f) for f in args.mbox], scratch / "mbox"), args.base


def check_inputs(args: argparse.Namespace,
                 scratch: Path) -> tuple[Path, git_series.Series, str, str]:
    """The tree, the series, the base ref and its commit: read-only checks that write
    nothing outside ``scratch``."""
    tree = git_series.check_tree(args.tree)
    found, base_ref = read_series(args, tree, scratch)
    return tree, found, base_ref, git_series.resolve_commit(tree, base_ref, "--base")


def prepare(inputs: tuple[Path, git_series.Series, str, str], clone: Path,
            jobs: Sequence[Target], opts: SuiteOptions) -> clones.Prepared:
    """Clone, apply the series, check both commits and the selection; a clone made here is
    removed again if any of it fails."""
    tree, found, base_ref, base = inputs
    prepared = clones.prepare(tree, clone, base_ref, base, found)
    try:
        check_selection(clone, jobs, opts)
    except SuiteError:
        if prepared.created:
            clones.remove_clone(clone)
        raise
    return prepared


def run_info(prepared: clones.Prepared, run_id: str) -> RunInfo:
    """What was tested, for every report. Patches applied as files are named by their
    patchset hash (KCIDB); a range whose tip is the result, by that commit."""
    found = prepared.series
    patchset = "" if prepared.published else found.patchset_hash
    url = git_series.run_git(git_series.git(prepared.tree, "config", "--get",
                                            "remote.origin.url")).stdout.strip()
    default_id = f"{prepared.base[:12]}-{(prepared.published or patchset)[:12]}"
    return RunInfo(run_id=run_id or default_id, tree_name=prepared.tree.name, git_url=url,
                   base_ref=prepared.base_ref, base_commit=prepared.base,
                   patched_commit=prepared.published, patchset_hash=patchset,
                   series=found.description, message_id=found.message_id)


def print_plan(prepared: clones.Prepared, jobs: Sequence[Target], opts: SuiteOptions,
               out: Path) -> None:
    print(f"series: {prepared.series.description}")
    builds = "every make in the bwrap sandbox" if opts.sandbox else "make unconfined"
    print(f"base {prepared.base}, patched {prepared.patched} in {prepared.clone}; {builds}")
    for side in SIDES:
        for job in jobs:
            cmd = pytest_command(prepared.clone, job, opts, side_paths(out, side, job))
            print(f"{side} {job.id}: {shlex.join(cmd)}")


def run_patched(clone: Path, job: Target, base: SideResult, opts: SuiteOptions, out: Path,
                env: Mapping[str, str]) -> SideRun:
    """The patched side of one job, then what compare.py asks to see again before a verdict:
    the whole side when it did not boot and the kernel said nothing, then its suspect tests
    (each ERROR, each regression by a FAIL) on a fresh VM."""
    done = run_side(clone, "patched", job, opts, out, say, env)
    if needs_rerun(base, done.load()):
        done = rerun_side(clone, "patched", done, opts, out, say, env)
    patched = done.load()
    suspects = retry_candidates(base.tests, patched.tests) \
        if patched.status == SideStatus.OK and not base_problems(base) else []
    return retry_tests(clone, "patched", done, suspects, opts, say, env) if suspects else done


def run_sides(prepared: clones.Prepared, jobs: Sequence[Target], opts: SuiteOptions,
              out: Path, patched_env: Mapping[str, str]) -> dict[str, dict[Target, SideRun]]:
    """Base first, every job; then patched: each side's builds land in the one object tree
    per arch that the clone's path keys, so patched rebuilds only what the series changed.
    ``patched_env``: added to the patched side's pytest environment (--patched-fault)."""
    done: dict[str, dict[Target, SideRun]] = {}
    for side, sha in zip(SIDES, (prepared.base, prepared.patched), strict=True):
        clones.checkout(prepared.clone, sha)
        say(f"{side}: {sha[:12]} checked out in {prepared.clone}")
        done[side] = {}
        for job in jobs:
            start = time.monotonic()
            done[side][job] = run_side(prepared.clone, side, job, opts, out, say) \
                if side == "base" else run_patched(prepared.clone, job,
                                                   done["base"][job].load(), opts, out,
                                                   patched_env)
            say(f"{side} {job.id}: {done[side][job].status} after "
                f"{time.monotonic() - start:.0f}s")
    return done


def write_reports(runs: Mapping[str, Mapping[Target, SideRun]], jobs: Sequence[Target],
                  info: RunInfo, out: Path) -> ReportDoc:
    """Each job's report in <out>/jobs/<target>/, then all of them merged into <out>."""
    reports = []
    for job in jobs:
        compared = compare_job(runs["base"][job].load(), runs["patched"][job].load())
        doc = job_report(compared, info)
        reports.append((write_outputs(out / "jobs" / job.id, doc)[0], doc))
    merged = merge(reports)
    paths = write_outputs(out, merged)
    say(f"verdict {merged['verdict']}; wrote {', '.join(str(p) for p in paths)}")
    return merged


def execute(args: argparse.Namespace) -> int:
    """Validate (cheap checks first), run both sides, report; the exit status."""
    jobs = jobs_for(args.arch, args.variant)
    parse_fault(args.patched_fault)  # a UserError before anything is built
    check_select(args.select)
    cache = (args.cache_dir or default_cache_dir()).expanduser().resolve()
    if args.sandbox:
        sandbox.probe(sandbox.find_bwrap())  # before anything is cloned or built
    opts = SuiteOptions(cache_dir=cache, select=args.select, sweep=args.sweep,
                        accel=args.accel, sandbox=args.sandbox)
    out = args.out.expanduser().resolve()
    with tempfile.TemporaryDirectory(prefix=f"{PROG}-") as scratch:
        inputs = check_inputs(args, Path(scratch))
        clone = clones.clone_path(cache, inputs[0])
        with clones.clone_lock(clone, say):
            prepared = prepare(inputs, clone, jobs, opts)
            say(f"{prepared.series.description}: applies onto {prepared.base[:12]} as "
                f"{prepared.patched[:12]}; {len(jobs)} jobs x 2 sides")
            if args.dry_run:
                print_plan(prepared, jobs, opts, out)
                return 0
            info = run_info(prepared, args.run_id)
            fault = {FAULT_VARIABLE: args.patched_fault} if args.patched_fault else {}
            runs = run_sides(prepared, jobs, opts, out, fault)
    report = write_reports(runs, jobs, info, out)
    print(markdown(report), end="")
    return report["exit_status"]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return execute(args)
    except UserError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
    except InfraError as exc:
        print(f"{PROG}: infrastructure error: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
    return BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
