"""results.json as typed records (report/results.py, report/recorder.py): each kind a test adds
is one dataclass, written with a schema version under the field names the file always had, and
read back into the same dataclasses; anything else is an error naming the file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kheaders_suite.report import results
from kheaders_suite.report.recorder import Recorder
from kheaders_suite.report.results import (
    SCHEMA_VERSION,
    Accel,
    BccRecord,
    BootRecord,
    CheckRecord,
    FaultsRecord,
    Record,
    RecordKind,
    Results,
    ResultsError,
    RunMeta,
    Sweep,
    TamperRecord,
    TimingRecord,
)
from kheaders_suite.timing import summary
from kheaders_suite.timing.results import load as load_timing

DATA = Path(__file__).parent / "data"
RECORDED = DATA / "patchci" / "x86_64-sysfs" / "base" / "results.json"
META = RunMeta(host="ci", arches=("x86_64", "arm64"), accel_option="auto")


def _timing(name: str = "x86_64-sysfs.json") -> TimingRecord:
    doc = load_timing(DATA / "timing" / name)
    return TimingRecord.of("x86_64-sysfs", summary.record_fields(doc, Path("/r/t.json")))


def every_kind() -> list[Record]:
    return [
        BootRecord(target="x86_64-sysfs", time=1.0, seconds=21.3, accel=Accel.TCG,
                   release="6.12.117"),
        CheckRecord(target="x86_64-sysfs", time=2.0, check="identity", ok=False,
                    summary="guest archive lacks 431 members", details=("a.h", "b.h")),
        _timing(),
        BccRecord(target="arm64-proc", time=3.0, release="6.12.117", accel=Accel.KVM,
                  cold=(12.0, 11.5), warm=(8.0,), import_seconds=0.4, cache_dir="/tmp/k"),
        TamperRecord(target="synthetic", time=4.0, caught=19, total=19),
        FaultsRecord(target="x86_64-sysfs", time=5.0, panic_seconds=7.5),
    ]


def test_every_kind_is_one_dataclass_and_the_kinds_are_all_covered() -> None:
    assert {r.kind for r in every_kind()} == set(RecordKind)


@pytest.mark.parametrize("record", every_kind(), ids=lambda r: str(r.kind))
def test_a_record_reads_back_as_it_was_written(record: Record) -> None:
    text = json.dumps(results.encode(record))
    assert results.decode_record(json.loads(text), "here") == record


def test_the_json_keeps_the_field_names_and_plain_values() -> None:
    boot, check = every_kind()[:2]
    assert results.encode(boot) == {"kind": "boot", "target": "x86_64-sysfs", "time": 1.0,
                                    "seconds": 21.3, "accel": "tcg", "release": "6.12.117"}
    assert results.encode(check) == {
        "kind": "verify", "target": "x86_64-sysfs", "time": 2.0, "check": "identity",
        "ok": False, "summary": "guest archive lacks 431 members", "details": ["a.h", "b.h"]}


def test_a_timing_summary_is_a_timing_record_and_feeds_the_table() -> None:
    for name in ("x86_64-sysfs.json", "frontend-x86_64-sysfs.json"):
        record = _timing(name)
        assert (record.arch, record.sweep, record.json) == ("x86_64", Sweep.REDUCED, "/r/t.json")
        lines = summary.summary_lines([results.encode(record)])
        assert lines[1] == summary.HEADER


def test_the_recorded_results_file_loads_into_records() -> None:
    loaded = results.load(RECORDED)
    assert loaded.meta == RunMeta(host="ci", arches=("x86_64",), accel_option="auto")
    boot, identity, release, timing = loaded.records
    assert boot == BootRecord(target="x86_64-sysfs", time=1796001400.2, seconds=21.3,
                              accel=Accel.TCG, release="6.12.117")
    assert isinstance(identity, CheckRecord)
    assert (identity.check, identity.ok, release.kind) == ("identity", True, RecordKind.CHECK)
    assert isinstance(timing, TimingRecord)
    assert timing.json == "../../../timing/x86_64-sysfs.json"
    assert timing.rounds is None  # a sweep from before the calibration rounds were kept


def test_the_recorder_writes_what_it_collected_and_merges_a_workers(tmp_path: Path) -> None:
    worker, controller = Recorder(), Recorder()
    for r in every_kind()[:3]:
        worker.add(r)
    controller.add(every_kind()[3])
    controller.merge_json(worker.to_json())
    assert [r.kind for r in controller.of_kind(CheckRecord)] == [RecordKind.CHECK]
    path = tmp_path / "results" / "results.json"
    controller.write(path, META)
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION
    assert results.load(path) == Results(META, tuple(controller.records))


def test_a_record_stamps_its_time() -> None:
    a = TamperRecord(target="synthetic", caught=1, total=1)
    assert a.time > 1.7e9


def _file(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(("doc", "message"), [
    ({"meta": {}, "records": []}, "no schema_version, this suite reads schema_version 1"),
    ({"schema_version": 2, "records": []}, "schema_version 2, this suite reads"),
    ({"schema_version": "1", "records": []}, "schema_version '1', this suite reads"),
    ({"schema_version": True, "records": []}, "schema_version True, this suite reads"),
    ({"schema_version": 1, "records": {}}, '"records" is not a list'),
    ({"schema_version": 1, "meta": [], "records": []}, "meta: not an object"),
    ([1, 2], "unreadable: not a JSON object"),
])
def test_a_file_without_this_schema_version_is_an_error_naming_it(
        tmp_path: Path, doc: object, message: str) -> None:
    path = _file(tmp_path, doc)
    with pytest.raises(ResultsError, match=message) as info:
        results.load(path)
    assert f"results file {path}" in str(info.value)


GOOD = {"kind": "boot", "target": "x86_64-sysfs", "time": 1.0, "seconds": 20,
        "accel": "tcg", "release": "6.12.117"}


@pytest.mark.parametrize(("record", "message"), [
    ({**GOOD, "kind": "reboot"}, "record 0: kind 'reboot' is not one of boot, verify"),
    ({**GOOD, "accel": "hvf"}, r"record 0 \(boot\), field accel: 'hvf' is not one of 'kvm'"),
    ({**GOOD, "seconds": "20"}, "field seconds: expected float, got '20'"),
    ({**GOOD, "seconds": True}, "field seconds: expected float, got True"),
    ({**GOOD, "extra": 1}, r"record 0 \(boot\): unknown field\(s\) extra"),
    ({k: v for k, v in GOOD.items() if k != "time"}, r"missing field\(s\) time"),
    ({k: v for k, v in GOOD.items() if k != "release"}, r"missing field\(s\) release"),
])
def test_a_bad_record_is_an_error_naming_the_file_and_the_record(
        tmp_path: Path, record: dict[str, object], message: str) -> None:
    path = _file(tmp_path, {"schema_version": SCHEMA_VERSION,
                            "meta": {"host": "h", "arches": ["x86_64"], "accel_option": "auto"},
                            "records": [record]})
    with pytest.raises(ResultsError, match=message) as info:
        results.load(path)
    assert f"results file {path}" in str(info.value)


def test_an_int_where_a_float_belongs_is_read_as_a_float(tmp_path: Path) -> None:
    path = _file(tmp_path, {"schema_version": SCHEMA_VERSION,
                            "meta": {"host": "h", "arches": [], "accel_option": "tcg"},
                            "records": [GOOD]})
    (boot,) = results.load(path).records
    assert isinstance(boot, BootRecord)
    assert boot.seconds == 20.0
    assert isinstance(boot.seconds, float)


def test_an_unreadable_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match=f"results file {tmp_path / 'no.json'} unreadable"):
        results.load(tmp_path / "no.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ResultsError, match="unreadable: not JSON"):
        results.load(bad)


RECORDING = '''
from kheaders_suite.report.results import CheckRecord, TamperRecord

def test_a(recorder):
    recorder.add(TamperRecord(target="synthetic", caught=3, total=4))

def test_b(recorder):
    recorder.add(CheckRecord(target="x86_64-sysfs", check="identity", ok=True, summary="same"))
'''


def test_the_plugin_writes_what_tests_recorded_from_its_xdist_workers(tmp_path: Path) -> None:
    """Each worker ships its records to the controller, which writes one file that reads
    back (the file patch CI reads) and prints the records in the summary."""
    (tmp_path / "test_rec.py").write_text(RECORDING)
    out = subprocess.run(
        (sys.executable, "-m", "pytest", "-p", "kheaders_suite.plugin", "-p",
         "no:cacheprovider", "-n", "2", "--accel", "tcg", "--arch", "x86_64", "--cache-dir",
         str(tmp_path / "cache"), "--results-dir", str(tmp_path / "results"), "test_rec.py"),
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    loaded = results.load(tmp_path / "results" / "results.json")
    assert loaded.meta.arches == ("x86_64",)
    assert sorted(r.kind for r in loaded.records) == [RecordKind.TAMPER, RecordKind.CHECK]
    assert "kheaders: tamper catalogue caught 3/4" in out.stdout
    assert "ok   x86_64-sysfs     identity     same" in out.stdout
