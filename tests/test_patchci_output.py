"""patchci outputs: the JSON document, the Markdown summary, the KCIDB file (validated with
KernelCI's own kcidb-io) and kheaders-ci-merge over several matrix jobs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped]
from kcidb_io.schema import LATEST  # type: ignore[import-untyped]

from kheaders_suite.patchci import compare, docread, document, kcidb, merge, render
from kheaders_suite.patchci.compare import JobReport
from kheaders_suite.patchci.document import ReportDoc, RunInfo
from kheaders_suite.patchci.side import SideResult, SideStatus
from kheaders_suite.records import target_id
from tests.test_patchci_compare import (
    IDENTITY,
    MEMBER_LIST,
    recorded,
    slower_extract_once_n4,
    timing_doc,
)

RUN = RunInfo(run_id="gh-4242-1", tree_name="mainline",
              git_url="https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git",
              base_ref="v6.12", base_commit="adc218676eef25575469234709c2d87185ca223a",
              patchset_hash="a" * 64, series="[PATCH 0/2] kheaders: tidy the file list",
              message_id="<20261130.1234-1-dev@example.org>")


def as_variant(s: SideResult, variant: str) -> SideResult:
    """The same side as another variant: node ids follow the target."""
    old, new = f"[{target_id(s.arch, s.variant)}]", f"[{target_id(s.arch, variant)}]"
    tests = {k.replace(old, new): replace(t, nodeid=t.nodeid.replace(old, new))
             for k, t in s.tests.items()}
    return replace(s, variant=variant, tests=tests, timing=())


def x86_job(tmp_path: Path) -> JobReport:
    patched = recorded(tmp_path, "patched")
    patched = replace(patched, timing=(timing_doc(slower_extract_once_n4),))
    return compare.compare_job(recorded(tmp_path, "base"), patched)


def kernel_job(tmp_path: Path) -> JobReport:
    """x86_job's patched side, where the kernel also WARNed and BUGged in two tests
    (tests/data/patchci/x86_64-sysfs/patched-kernel/)."""
    patched = recorded(tmp_path, "patched", junit_dir="patched-kernel")
    patched = replace(patched, timing=(timing_doc(slower_extract_once_n4),))
    return compare.compare_job(recorded(tmp_path, "base"), patched)


def matrix(tmp_path: Path) -> list[JobReport]:
    """Four jobs: x86_64-sysfs and arm64-sysfs regressed, x86_64-module clean, arm64-module's
    base did not build."""
    x86_base, arm_base = recorded(tmp_path, "base"), recorded(tmp_path, "base", arch="arm64")
    broken = replace(as_variant(arm_base, "module"), status=SideStatus.BUILD_FAILED,
                     message="gcc-aarch64-linux-gnu: not found", tests={})
    return [
        x86_job(tmp_path),
        compare.compare_job(arm_base, recorded(tmp_path, "patched", arch="arm64")),
        compare.compare_job(as_variant(x86_base, "module"), as_variant(x86_base, "module")),
        compare.compare_job(broken, as_variant(recorded(tmp_path, "patched", arch="arm64"),
                                               "module")),
    ]


def sections(markdown: str) -> dict[str, str]:
    """### title -> the text under it."""
    parts = re.split(r"^### (.+)$", markdown, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


# --- the JSON document -----------------------------------------------------------------------

def test_job_document_is_versioned_json_that_reads_back(tmp_path: Path) -> None:
    doc = document.job_report(x86_job(tmp_path), RUN)
    again = docread.check_report(json.loads(json.dumps(doc)))
    assert again == doc
    assert doc["schema_version"] == document.SCHEMA_VERSION == 2
    assert set(doc) == {"schema_version", "kind", "run", "verdict", "exit_status", "jobs",
                        "divergences"}
    (job,) = doc["jobs"]
    # the writer writes every key, those added within version 1 (optional to readers) too
    assert set(job) == document.JobDoc.__required_keys__ | document.JobDoc.__optional_keys__
    assert "layouts" in document.JobDoc.__optional_keys__
    assert (doc["verdict"], doc["exit_status"], job["target"]) == ("regression", 1,
                                                                   "x86_64-sysfs")
    assert job["base"]["tests"][IDENTITY] == {"outcome": "pass", "message": ""}
    assert [r["name"] for r in job["regressions"]] == [
        IDENTITY, "vmtests/test_archive.py::test_layouts[x86_64-sysfs]"]  # lost coverage
    assert [p["key"] for p in job["timing"]["points"] if p["status"] == "REGRESSED"] == [
        "x86_64-sysfs gcc extract-once N=4"]
    assert job["archive"] is not None
    assert job["archive"]["removed"] == ["arch/x86/include/asm/page.h"]


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.update(schema_version=3), "schema_version 3, expected one of 1, 2"),
    (lambda d: d.pop("jobs"), "report: missing jobs"),
    (lambda d: d.update(kind="other"), "kind 'other'"),
    (lambda d: d["jobs"][0].pop("patched"), r"jobs\[0\]: missing patched"),
    (lambda d: d["jobs"][0].update(verdict="fine"), "verdict 'fine' is not one of"),
    (lambda d: d.update(jobs=[]), "jobs: not a non-empty list"),
])
def test_check_report_names_what_is_wrong(tmp_path: Path, mutate: Any, message: str) -> None:
    doc: Any = json.loads(json.dumps(document.job_report(x86_job(tmp_path), RUN)))
    mutate(doc)
    with pytest.raises(ValueError, match=message):
        docread.check_report(doc)


# --- Markdown --------------------------------------------------------------------------------

def test_markdown_table_first_then_details(tmp_path: Path) -> None:
    report = document.report_doc([document.job_doc(j) for j in matrix(tmp_path)],
                                 document.run_doc(RUN))
    md = render.markdown(report)
    head = md.split("###")[0]
    assert "## kheaders-suite patch CI: regression" in head
    assert "| arch | sysfs | module |" in head
    assert "| x86_64 | regression | clean |" in head
    assert "| arm64 | regression | base-broken |" in head
    got = sections(md)
    assert list(got) == ["Regressions", "Fixes", "Archive changes", "Structure layouts",
                         "CONFIG_ changes", "Timing regressions", "Arch divergence",
                         "New and removed tests", "Infrastructure errors", "Base broken"]
    # the synthetic archives are no kernel's: the layout probe cannot measure them, a note
    assert "- note: " in got["Structure layouts"]
    assert f"`{IDENTITY}` (pass -> fail): AssertionError: archive lacks arch/x86/include/" \
           "asm/page.h" in got["Regressions"]
    assert MEMBER_LIST not in got["Regressions"]
    assert f"`{MEMBER_LIST}` (pass -> error): failed on setup" in got["Infrastructure errors"]
    assert "- build (build-failed): gcc-aarch64-linux-gnu: not found" in got["Base broken"]
    # the same archive change in three jobs is shown once, naming the three
    assert "**x86_64-sysfs, arm64-sysfs, arm64-module**" in got["Archive changes"]
    assert got["Archive changes"].count("--- base/include/linux/sched.h") == 1
    assert md.rstrip().endswith("Exit status 1 (0 clean or flaky, 1 regression, 2 infra error or "
                                "broken base).")


def test_markdown_shows_archive_diff_config_and_timing(tmp_path: Path) -> None:
    got = sections(render.markdown(document.job_report(x86_job(tmp_path), RUN)))
    archive = got["Archive changes"]
    assert "- removed (1): `arch/x86/include/asm/page.h`" in archive
    assert "- added (1): `include/linux/pidfd.h`" in archive
    assert "UTS_RELEASE '6.12.117' -> '6.12.117-dirty'" in archive
    assert "```diff\n--- base/include/linux/sched.h\n+++ patched/include/linux/sched.h\n" \
        in archive
    assert "+\tint tgid;" in archive
    assert "- CONFIG_IKHEADERS: y -> m" in got["CONFIG_ changes"]
    assert "- CONFIG_MODULES: y -> absent" in got["CONFIG_ changes"]
    assert re.search(r"REGRESSED x86_64-sysfs gcc extract-once N=4: .* \+25\.0%",
                     got["Timing regressions"])


def test_markdown_of_a_clean_job_has_no_details(tmp_path: Path) -> None:
    base = recorded(tmp_path, "base")
    md = render.markdown(document.job_report(compare.compare_job(base, base), RUN))
    assert sections(md) == {}
    assert "| x86_64 | clean |" in md
    assert "Exit status 0" in md


# --- KCIDB -----------------------------------------------------------------------------------

def merged_matrix(tmp_path: Path) -> ReportDoc:
    return document.report_doc([document.job_doc(j) for j in matrix(tmp_path)],
                               document.run_doc(RUN))


def test_kcidb_document_validates_with_kcidb_io(tmp_path: Path) -> None:
    doc = kcidb.kcidb_document(merged_matrix(tmp_path))
    assert LATEST.validate(doc) is doc  # raises ValidationError if not
    assert LATEST.is_compatible(doc)
    assert [c["id"] for c in doc["checkouts"]] == ["kheaders_suite:gh-4242-1:base",
                                                   "kheaders_suite:gh-4242-1:patched"]
    assert doc["checkouts"][1]["patchset_hash"] == "a" * 64
    assert len(doc["builds"]) == 8  # 4 jobs x 2 sides
    ids = [t["id"] for t in doc["tests"]]
    assert len(ids) == len(set(ids))
    assert all(i.startswith("kheaders_suite:gh-4242-1:") for i in ids)
    by_id = {t["id"]: t for t in doc["tests"]}
    identity = by_id[f"kheaders_suite:gh-4242-1:patched:x86_64-sysfs:{IDENTITY}"]
    assert (identity["path"], identity["status"]) == (
        "kheaders.test_archive.test_identity.x86_64-sysfs", "FAIL")
    failed_build = next(b for b in doc["builds"] if b["id"].endswith("base:arm64-module"))
    assert failed_build["status"] == "FAIL"
    assert not any(t["build_id"] == failed_build["id"] for t in doc["tests"])
    assert (doc["issues"], doc["incidents"]) == ([], [])  # the kernel reported nothing


def test_kcidb_leaves_out_what_its_schema_would_refuse(tmp_path: Path) -> None:
    """A ref where a commit hash belongs, a git:// URL, a message id without "@": the
    fields are omitted, and the document still validates."""
    run = replace(RUN, base_commit="v6.12", git_url="git://example.org/linux.git",
                  message_id="no-at-sign", patchset_hash="not-a-sha256")
    report = document.job_report(x86_job(tmp_path), run)
    doc = kcidb.kcidb_document(report)
    LATEST.validate(doc)
    for checkout in doc["checkouts"]:
        assert not {"git_commit_hash", "git_repository_url", "message_id",
                    "patchset_hash"} & checkout.keys()


@pytest.mark.parametrize("break_it", [
    lambda d: d["tests"][0].update(path="vmtests/test_archive.py::test_identity"),
    lambda d: d["tests"][0].update(status="REGRESSION"),
    lambda d: d["builds"][0].update(id="no-origin-prefix"),
    lambda d: d["checkouts"][0].update(git_commit_hash="v6.12"),
])
def test_kcidb_io_rejects_a_broken_document(tmp_path: Path, break_it: Any) -> None:
    """The validation can fail: the same document, broken in one field, is refused."""
    doc = kcidb.kcidb_document(merged_matrix(tmp_path))
    LATEST.validate(doc)
    break_it(doc)
    with pytest.raises(ValidationError):
        LATEST.validate(doc)


def timing_tests(doc: dict[str, Any], side_name: str) -> dict[str, dict[str, Any]]:
    prefix = f"kheaders_suite:gh-4242-1:{side_name}:x86_64-sysfs"
    return {t["path"]: t for t in doc["tests"]
            if t["build_id"] == prefix and t["path"].startswith("kheaders.timing.")}


def test_kcidb_timing_points_are_test_numbers(tmp_path: Path) -> None:
    """Each side's timing points are tests whose "number" is the median in seconds; the point
    that regressed FAILs on the patched side, every other one is DONE."""
    report = document.job_report(x86_job(tmp_path), RUN)
    doc = kcidb.kcidb_document(report)
    LATEST.validate(doc)
    points = {p["key"]: p for p in report["jobs"][0]["timing"]["points"]}
    base, patched = timing_tests(doc, "base"), timing_tests(doc, "patched")
    assert len(base) == len(patched) == len(points) == 7
    slower = points["x86_64-sysfs gcc extract-once N=4"]
    assert slower["patched"] is not None
    assert slower["base"] is not None
    n4 = "kheaders.timing.gcc.extract-once.N4"
    assert patched[n4]["number"] == {"value": slower["patched"]["median"], "unit": "s",
                                     "prefix": "metric"}
    assert (patched[n4]["status"], base[n4]["status"]) == ("FAIL", "DONE")
    assert base[n4]["number"]["value"] == slower["base"]["median"]
    assert patched[n4]["misc"]["comparison"] == "REGRESSED"
    assert [p for p, t in patched.items() if t["status"] == "FAIL"] == [n4]
    assert "kheaders.timing.extraction" in base


@pytest.mark.parametrize(("headline", "signature"), [
    ("WARNING: CPU: 1 PID: 212 at kernel/kheaders.c:52 ikheaders_read+0x3c/0x60",
     "WARNING: at kernel/kheaders.c:52 ikheaders_read"),
    ("Oops: 0000 [#1] PREEMPT SMP NOPTI", "Oops: 0000 PREEMPT SMP NOPTI"),
    ("BUG: kernel NULL pointer dereference, address: 0000000000000008",
     "BUG: kernel NULL pointer dereference, address: <address>"),
    ("general protection fault, probably for non-canonical address 0xdffffc0000000001: "
     "0000 [#2] SMP KASAN",
     "general protection fault, probably for non-canonical address <address>: 0000 SMP KASAN"),
    ("Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b",
     "Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b"),
])
def test_kcidb_issue_signature_drops_what_differs_between_occurrences(headline: str,
                                                                      signature: str) -> None:
    assert kcidb.issue_signature(headline) == signature


def test_kcidb_kernel_reports_are_issues_and_incidents(tmp_path: Path) -> None:
    """Three reports in two tests: the WARNING twice (other CPU and PID) is one issue with two
    incidents, the BUG another; each incident names its test, and the test's excerpt quotes
    the reports."""
    doc = kcidb.kcidb_document(document.job_report(kernel_job(tmp_path), RUN))
    LATEST.validate(doc)
    warning = "WARNING: at kernel/kheaders.c:52 ikheaders_read"
    bug = "BUG: sleeping function called from invalid context at kernel/module/main.c:3047"
    assert [(i["id"], i["comment"], i["version"]) for i in doc["issues"]] == [
        (kcidb.issue_id(warning), warning, 0), (kcidb.issue_id(bug), bug, 0)]
    tests = {t["id"]: t for t in doc["tests"]}
    prefix = "kheaders_suite:gh-4242-1:patched:x86_64-sysfs:"
    release = f"{prefix}vmtests/test_archive.py::test_release[x86_64-sysfs]"
    unload = f"{prefix}vmtests/test_kheaders_ko.py::TestModule::test_unload[x86_64-sysfs]"
    assert [(i["test_id"], i["issue_id"]) for i in doc["incidents"]] == [
        (release, kcidb.issue_id(warning)), (unload, kcidb.issue_id(warning)),
        (unload, kcidb.issue_id(bug))]
    assert all(i["present"] and i["misc"]["report"].startswith(i["comment"])
               for i in doc["incidents"])
    assert len({i["id"] for i in doc["incidents"]}) == 3
    assert tests[release]["status"] == tests[unload]["status"] == "FAIL"
    assert "WARNING: CPU: 1 PID: 212 at kernel/kheaders.c:52" in tests[release]["log_excerpt"]


def first_timing(doc: dict[str, Any]) -> dict[str, Any]:
    return next(t for t in doc["tests"] if "number" in t)


@pytest.mark.parametrize("break_it", [
    lambda d: first_timing(d)["number"].update(value="1.82"),
    lambda d: first_timing(d)["number"].pop("value"),
    lambda d: first_timing(d)["number"].update(prefix="decimal"),
    lambda d: first_timing(d)["number"].update(units="s"),
    lambda d: first_timing(d).update(number=1.82),
    lambda d: d["issues"][0].update(version=-1),
    lambda d: d["issues"][0].update(culprit={"kernel": True}),
    lambda d: d["incidents"][0].pop("issue_id"),
    lambda d: d["incidents"][0].update(test_id="no-origin-prefix"),
])
def test_kcidb_io_rejects_a_malformed_number_issue_or_incident(tmp_path: Path,
                                                               break_it: Any) -> None:
    doc = kcidb.kcidb_document(document.job_report(kernel_job(tmp_path), RUN))
    LATEST.validate(doc)
    break_it(doc)
    with pytest.raises(ValidationError):
        LATEST.validate(doc)


@pytest.mark.parametrize(("nodeid", "path"), [
    ("vmtests/test_archive.py::test_identity[x86_64-sysfs]",
     "kheaders.test_archive.test_identity.x86_64-sysfs"),
    ("vmtests/test_kheaders_ko.py::TestModule::test_unload[arm64-proc]",
     "kheaders.test_kheaders_ko.TestModule.test_unload.arm64-proc"),
    ("vmtests/test_x.py::test_y[a/b c]", "kheaders.test_x.test_y.a_b_c"),
    ("tests/test_a.py::test_b", "kheaders.test_a.test_b"),
])
def test_kcidb_paths_fit_kcidb_pattern(nodeid: str, path: str) -> None:
    assert kcidb.kcidb_path(nodeid) == path
    assert re.fullmatch(r"[a-zA-Z0-9_-]+(\.[a-zA-Z0-9_-]+)*", path)


# --- kheaders-ci-merge -----------------------------------------------------------------------

def write_jobs(tmp_path: Path, jobs: list[JobReport], run: RunInfo = RUN) -> list[Path]:
    """Each job's outputs in its own directory, as each CI matrix job leaves them."""
    return [render.write_outputs(tmp_path / f"job{i}", document.job_report(job, run))[0]
            for i, job in enumerate(jobs)]


def test_merge_joins_matrix_jobs_into_one_report(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    files = write_jobs(tmp_path, matrix(tmp_path))
    out = tmp_path / "merged"
    assert merge.main([str(out), *map(str, reversed(files))]) == 1
    report = docread.check_report(json.loads((out / "report.json").read_text()))
    assert [j["target"] for j in report["jobs"]] == [
        "x86_64-sysfs", "x86_64-module", "arm64-sysfs", "arm64-module"]
    # across jobs: arm64-module's patched side is arm64-sysfs's patched run renamed, so
    # against the clean x86_64-module it diverges where arm64 fails
    assert [(d["side"], d["test"]) for d in report["divergences"]] == [
        ("base", "vmtests/test_archive.py::test_identity[*-sysfs]"),
        ("patched", "vmtests/test_archive.py::test_identity[*-module]"),
        ("patched", "vmtests/test_archive.py::test_release[*-module]"),
        ("patched", "vmtests/test_archive.py::test_release[*-sysfs]")]
    assert "| arm64 | regression | base-broken |" in (out / "report.md").read_text()
    LATEST.validate(json.loads((out / "kcidb.json").read_text()))
    assert "4 jobs, verdict regression" in capsys.readouterr().out


def test_merge_status_is_the_combined_verdict(tmp_path: Path) -> None:
    base = recorded(tmp_path, "base")
    clean = compare.compare_job(base, base)
    broken = compare.compare_job(replace(as_variant(base, "proc"), status=SideStatus.BOOT_FAILED),
                                 as_variant(base, "proc"))
    assert merge.main([str(tmp_path / "a"), *map(str, write_jobs(tmp_path / "a", [clean]))]) == 0
    files = write_jobs(tmp_path / "b", [clean, broken])
    assert merge.main([str(tmp_path / "b"), *map(str, files)]) == 2


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("kheaders-ci-merge: ")
    return err


def test_merge_refuses_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = x86_job(tmp_path)
    (good,) = write_jobs(tmp_path / "good", [job])
    out = str(tmp_path / "out")
    assert merge.main([out, str(good), str(tmp_path / "missing.json")]) == 2
    assert "missing.json: cannot read" in one_line_error(capsys)
    old = tmp_path / "old.json"
    old.write_text(json.dumps({**json.loads(good.read_text()), "schema_version": 0}))
    assert merge.main([out, str(old)]) == 2
    assert "old.json: not a kheaders-suite patch CI report: schema_version 0" in \
        one_line_error(capsys)
    (again,) = write_jobs(tmp_path / "again", [job])
    assert merge.main([out, str(good), str(again)]) == 2
    assert "job x86_64-sysfs is already in" in one_line_error(capsys)
    (other,) = write_jobs(tmp_path / "other", [job], replace(RUN, run_id="gh-4243-1"))
    assert merge.main([out, str(good), str(other)]) == 2
    assert "merge the jobs of one run" in one_line_error(capsys)
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{")
    assert merge.main([out, str(garbage)]) == 2
    assert "garbage.json: not a kheaders-suite patch CI report" in one_line_error(capsys)
    assert not (tmp_path / "out").exists()  # nothing written on bad input


def test_merge_runs_as_a_command(tmp_path: Path) -> None:
    files = write_jobs(tmp_path, [x86_job(tmp_path)])
    run = subprocess.run([sys.executable, "-m", "kheaders_suite.patchci.merge",
                          str(tmp_path / "out"), *map(str, files)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 1, run.stderr
    assert (tmp_path / "out" / "report.md").read_text().startswith(
        "## kheaders-suite patch CI: regression")


def test_write_outputs_writes_the_four_files(tmp_path: Path) -> None:
    report: dict[str, Any] = dict(document.job_report(x86_job(tmp_path), RUN))
    paths = render.write_outputs(tmp_path / "o", docread.check_report(report))
    assert [p.name for p in paths] == ["report.json", "report.md", "kcidb.json", "junit.xml"]
    assert all(p.stat().st_size > 0 for p in paths)
