"""kheaders-ci-merge OUT_DIR JOB.json...: join the reports of a CI matrix into one.

Each matrix job (one arch x variant) writes its own report (render.write_outputs); this
command reads their report.json files, refuses what cannot be one report (a file it cannot
read, a schema_version it does not read (1 and 2 it does), two reports of the same arch x
variant, jobs of different runs), recomputes what spans jobs (arch divergence, the overall
verdict) and writes report.json, report.md, kcidb.json and junit.xml to OUT_DIR. Exit
status: the report's, 0 clean or flaky, 1 regression, 2 infra error or broken base; 2 also
for bad input, with a one-line error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from kheaders_suite.errors import UserError
from kheaders_suite.patchci.docread import check_report
from kheaders_suite.patchci.document import JobDoc, ReportDoc, report_doc
from kheaders_suite.patchci.render import EXIT_MEANING, write_outputs

PROG = "kheaders-ci-merge"
BAD_INPUT = 2


def load_report(path: Path) -> ReportDoc:
    """One job's report, or UserError naming the file and what is wrong with it."""
    try:
        return check_report(json.loads(path.read_text()))
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:  # JSONDecodeError is one
        raise UserError(f"{path}: not a kheaders-suite patch CI report: {exc}") from None


def merge(reports: Sequence[tuple[Path, ReportDoc]]) -> ReportDoc:
    """One report of every job in ``reports`` (path, report); UserError on a duplicate
    arch x variant or on reports of different runs."""
    if not reports:
        raise UserError("no reports to merge")
    first_path, first = reports[0]
    jobs: dict[str, tuple[Path, JobDoc]] = {}
    for path, report in reports:
        if report["run"]["run_id"] != first["run"]["run_id"]:
            raise UserError(f"{path}: run {report['run']['run_id']!r}, but {first_path} is "
                            f"run {first['run']['run_id']!r}: merge the jobs of one run")
        for job in report["jobs"]:
            seen = jobs.get(job["target"])
            if seen is not None:
                raise UserError(f"{path}: job {job['target']} is already in {seen[0]}")
            jobs[job["target"]] = (path, job)
    return report_doc([job for _, job in jobs.values()], first["run"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__.split("\n\n")[0],
        epilog=f"Exit status: {EXIT_MEANING}; 2 also for unreadable or mismatched input.")
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    parser.add_argument("jobs", type=Path, nargs="+", metavar="JOB.json",
                        help="report.json of one matrix job (or of an earlier merge)")
    args = parser.parse_args(argv)
    try:
        report = merge([(path, load_report(path)) for path in args.jobs])
        paths = write_outputs(args.out_dir, report)
    except UserError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return BAD_INPUT
    except OSError as exc:
        print(f"{PROG}: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return BAD_INPUT
    print(f"{PROG}: {len(report['jobs'])} jobs, verdict {report['verdict']}; "
          f"wrote {', '.join(str(p) for p in paths)}")
    return report["exit_status"]


if __name__ == "__main__":
    sys.exit(main())
