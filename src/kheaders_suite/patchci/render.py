"""The report for people: Markdown fit for a mailing-list reply and a CI step summary.

First the verdict and a table arch x variant, so the answer is on the first screen; then the
details a maintainer acts on, most important first: regressions, archive changes, structure
layouts that moved, CONFIG_ changes, timing regressions, arch divergence, and last what is not
blamed on the series (flaky findings, infra errors, a broken base). Plain text where
possible: it is read in mail clients too.
``write_outputs`` writes every file of a report: JSON, Markdown, JUnit (junitreport.py) and KCIDB.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kheaders_suite.patchci.document import (
    SIDES,
    ArchiveDoc,
    FindingDoc,
    JobDoc,
    MemberChangeDoc,
    ReportDoc,
    SideDoc,
    StructChangeDoc,
    side_of,
)
from kheaders_suite.patchci.junitreport import JUNIT_NAME, junit_document
from kheaders_suite.patchci.kcidb import kcidb_document
from kheaders_suite.timing.compare import PointStatus

JSON_NAME, MARKDOWN_NAME, KCIDB_NAME = "report.json", "report.md", "kcidb.json"
MESSAGE_CHARS = 300  # of a failure's first line: long asserts name whole member lists
NAMES_SHOWN = 20  # member names listed per kind of change
EXIT_MEANING = "0 clean or flaky, 1 regression, 2 infra error or broken base"


def _finding(f: FindingDoc, base_only: bool = False) -> str:
    """"- `node id` (pass -> fail): message"; a test absent on a side says so (new,
    removed); a base problem shows the base's outcome alone (the patched one is moot)."""
    where = f"`{f['name']}`" if f["kind"] == "test" else f["kind"]
    if base_only:
        states = [f["base"]] if f["base"] else []
    elif f["kind"] == "test":
        states = [f["base"] or "absent", f["patched"] or "absent"]
    else:
        states = [s for s in (f["base"], f["patched"]) if s]
    retried = f"; retry: {f['retry']}" if f.get("retry") and not base_only else ""
    change = f" ({' -> '.join(states)}{retried})" if states else ""
    message = f["message"][:MESSAGE_CHARS]
    return f"- {where}{change}" + (f": {message}" if message else "")


def _longest_backticks(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text)), default=0)


def fence(body: Sequence[str], info: str = "") -> list[str]:
    """A fenced code block of ``body`` (text from the kernel under test): its fence is longer
    than any backtick run in it, so no line of the body closes it (CommonMark 4.5)."""
    mark = "`" * max(3, 1 + max((_longest_backticks(line) for line in body), default=0))
    return [mark + info, *body, mark]


def code(text: str) -> str:
    """An inline code span of ``text``, which holds no line break and whose backticks
    cannot end the span early (CommonMark 6.1)."""
    flat = text.replace("\r", "\\r").replace("\n", "\\n")
    mark = "`" * (1 + _longest_backticks(flat))
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{mark}{pad}{flat}{pad}{mark}"


def _names(label: str, names: list[str]) -> list[str]:
    if not names:
        return []
    shown = ", ".join(code(n) for n in names[:NAMES_SHOWN])
    more = f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else ""
    return [f"- {label} ({len(names)}): {shown}{more}"]


def _archive_lines(a: ArchiveDoc) -> list[str]:
    delta = a["patched_bytes"] - a["base_bytes"]
    release = f"UTS_RELEASE {a['base_release']!r} -> {a['patched_release']!r}" \
        if a["base_release"] != a["patched_release"] else f"UTS_RELEASE {a['base_release']!r}"
    lines = [f"{a['base_bytes']} -> {a['patched_bytes']} bytes ({delta:+}), "
             f"{a['base_members']} -> {a['patched_members']} members; {release}", ""]
    lines += _names("removed", a["removed"]) + _names("added", a["added"])
    lines += _names("changed", a["changed"])
    for diff in a["diffs"]:
        more = [f"... {diff['omitted']} more diff lines"] if diff["omitted"] else []
        lines += ["", *fence([*diff["lines"], *more], "diff")]
    hidden = len([n for n in a["changed"] if n.endswith(".h")]) - len(a["diffs"])
    if hidden > 0:
        lines += ["", f"({hidden} more changed headers, named above, diff not shown)"]
    return lines


def _archive(job: JobDoc) -> list[str]:
    a = job["archive"]
    if a is None or not (a["added"] or a["removed"] or a["changed"]
                         or a["base_release"] != a["patched_release"]):
        return []
    return _archive_lines(a)


def _struct_line(c: StructChangeDoc) -> str:
    """"- `struct task_struct`: 104 -> 112 bytes (+8)"; one side missing: gone or new."""
    old, new = c["base_size"], c["patched_size"]
    why = f" ({c['why']})" if c["why"] else ""
    if old is None:
        return f"- `struct {c['name']}`: new in patched, {new} bytes{why}"
    if new is None:
        return f"- `struct {c['name']}`: gone from patched (was {old} bytes){why}"
    size = f"{old} -> {new} bytes ({new - old:+})" if old != new else f"{old} bytes"
    return f"- `struct {c['name']}`: {size}"


def _member_line(m: MemberChangeDoc) -> str:
    """"  - `pid`: offset 40 -> 48, size 4 -> 8"; one side missing: gone or new."""
    why = f" ({m['why']})" if m["why"] else ""
    if m["base_offset"] is None:
        return f"  - `{m['path']}`: new in patched at offset {m['patched_offset']}, " \
               f"size {m['patched_size']}{why}"
    if m["patched_offset"] is None:
        return f"  - `{m['path']}`: gone from patched (was offset {m['base_offset']}, " \
               f"size {m['base_size']}){why}"
    moves = [f"{what} {a} -> {b}" for what, a, b in
             (("offset", m["base_offset"], m["patched_offset"]),
              ("size", m["base_size"], m["patched_size"])) if a != b]
    return f"  - `{m['path']}`: {', '.join(moves)}"


def _layouts(job: JobDoc) -> list[str]:
    """Only what moved and the notes; nothing for layouts that did not change (or for a
    document written before the key existed)."""
    doc = job.get("layouts")
    if doc is None:
        return []
    lines = []
    for change in doc["changes"]:
        lines += [_struct_line(change), *(_member_line(m) for m in change["members"])]
    return lines + [f"- note: {note}" for note in doc["notes"]]


def _config(job: JobDoc) -> list[str]:
    return [f"- {c['symbol']}: {c['base'] or 'absent'} -> {c['patched'] or 'absent'}"
            for c in job["config_changes"]]


def _timing(job: JobDoc) -> list[str]:
    regressed = [p["line"] for p in job["timing"]["points"]
                 if p["status"] == PointStatus.REGRESSED]
    if not regressed:
        return []
    return [f"    {line}" for line in [*job["timing"]["notes"], *regressed]]


def _runs(side: str, doc: SideDoc) -> list[str]:
    """How the side's pytest runs went, when there was more than one or one stopped."""
    lines = [f"- {side}: run again after a failed boot: {doc['rerun_after'][:MESSAGE_CHARS]}"] \
        if doc["rerun_after"] else []
    rc = doc["exit_status"]
    if rc is not None and rc not in (0, 1):
        lines.append(f"- {side}: pytest exit {rc}")
    retry = doc["retry"]
    if retry is not None:
        lines.append(f"- {side}: {len(retry['asked'])} tests run again on a fresh VM "
                     f"(pytest exit {retry['exit_status']})")
    return lines


def _notes(job: JobDoc) -> list[str]:
    return [line for side in SIDES for line in
            [*_runs(side, side_of(job, side)),
             *(f"- {side}: {note}" for note in side_of(job, side)["notes"])]]


@dataclass(frozen=True)
class Section:
    title: str
    lines: Callable[[JobDoc], list[str]]
    intro: str = ""


# What the series changed, then (after the arch divergence) what is not blamed on it.
FINDINGS = (
    Section("Regressions", lambda j: [_finding(f) for f in j["regressions"]],
            "A check that held on base fails patched (FAIL; SKIP: lost coverage), a new test "
            "fails, or the series broke the build or the boot; failures confirmed by a retry "
            "on a fresh VM."),
    Section("Fixes", lambda j: [_finding(f) for f in j["fixes"]]),
    Section("Archive changes", _archive),
    Section("Structure layouts", _layouts,
            "Sizes and member offsets in bytes, base -> patched, of the structures the layout "
            "probe measures (gcc -S against each archive). Information: no verdict."),
    Section("CONFIG_ changes", _config),
    Section("Timing regressions", _timing,
            "Points slower beyond the samples' noise (kheaders-compare's rule)."),
)
CAVEATS = (
    Section("New and removed tests", lambda j: [_finding(f) for f in j["new"] + j["removed"]]),
    Section("Flaky", lambda j: [_finding(f) for f in j["flaky"]],
            "Failed once on the patched side, then not on a retry (a fresh VM, the same "
            "build): both outcomes shown; not blamed on the series, not clean either."),
    Section("Infrastructure errors", lambda j: [_finding(f) for f in j["infra_errors"]],
            "Not blamed on the series: ERRORs of fixtures, boots, missing results."),
    Section("Base broken",
            lambda j: [_finding(f, base_only=True) for f in j["base_problems"]],
            "The base itself failed: nothing in these jobs is blamed on the series."),
    Section("Notes", _notes),
)


def _section(report: ReportDoc, section: Section) -> list[str]:
    """The section's lines per job; jobs with the same lines are named together (the
    variants of one arch pack the same archive, so its diff is shown once, not four times)."""
    targets: dict[tuple[str, ...], list[str]] = {}
    for job in report["jobs"]:
        lines = tuple(section.lines(job))
        if lines:
            targets.setdefault(lines, []).append(job["target"])
    if not targets:
        return []
    body: list[str] = []
    for lines, names in targets.items():
        body += [f"**{', '.join(names)}**", "", *lines, ""]
    intro = [section.intro, ""] if section.intro else []
    return [f"### {section.title}", "", *intro, *body]


def table(report: ReportDoc) -> list[str]:
    """Arches down, variants across, the job's verdict in each cell ("-": not run)."""
    arches = list(dict.fromkeys(j["arch"] for j in report["jobs"]))
    variants = list(dict.fromkeys(j["variant"] for j in report["jobs"]))
    cell = {(j["arch"], j["variant"]): j["verdict"] for j in report["jobs"]}
    lines = ["| arch | " + " | ".join(variants) + " |",
             "|---" * (len(variants) + 1) + "|"]
    lines += [f"| {a} | " + " | ".join(cell.get((a, v), "-") for v in variants) + " |"
              for a in arches]
    return lines


def _divergences(report: ReportDoc) -> list[str]:
    lines = [f"- {d['side']}: `{d['test']}` passes on {', '.join(d['passed'])}, "
             f"fails on {', '.join(d['failed'])}" for d in report["divergences"]]
    return ["### Arch divergence", "", *lines, ""] if lines else []


def _heading(report: ReportDoc) -> list[str]:
    run = report["run"]
    what = [f"series: {run['series']}" if run["series"] else "",
            f"base: {run['base_ref'] or run['base_commit']}"
            if run["base_ref"] or run["base_commit"] else "",
            f"run: {run['run_id']}"]
    return [f"## kheaders-suite patch CI: {report['verdict']}", "",
            "; ".join(w for w in what if w), ""]


def markdown(report: ReportDoc) -> str:
    lines = [*_heading(report), *table(report), ""]
    for section in FINDINGS:
        lines += _section(report, section)
    lines += _divergences(report)
    for section in CAVEATS:
        lines += _section(report, section)
    lines.append(f"Exit status {report['exit_status']} ({EXIT_MEANING}).")
    return "\n".join(lines) + "\n"


def write_outputs(out_dir: Path, report: ReportDoc) -> tuple[Path, Path, Path, Path]:
    """report.json, report.md, kcidb.json and junit.xml in ``out_dir`` (made if missing)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = (out_dir / JSON_NAME, out_dir / MARKDOWN_NAME, out_dir / KCIDB_NAME,
             out_dir / JUNIT_NAME)
    paths[0].write_text(json.dumps(report, indent=1) + "\n")
    paths[1].write_text(markdown(report))
    paths[2].write_text(json.dumps(kcidb_document(report), indent=1) + "\n")
    paths[3].write_text(junit_document(report))
    return paths
