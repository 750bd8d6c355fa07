"""The records of the run's results.json: one frozen dataclass per kind a test adds, written
with a schema version and read back into the same dataclasses (by the plugin for its summary,
by patch CI for its sides).

    {"schema_version": 1,
     "meta": {"host": ..., "arches": [...], "accel_option": ...},
     "records": [{"kind": "boot", "target": "x86_64-sysfs", "time": ..., ...}, ...]}

A record's JSON is its fields by name, "kind" first; enums are written as their values, so
the file reads as plain JSON. Reading is strict: an unknown kind, an unknown or missing
field, or a value of the wrong type is a ResultsError naming the file and the record, and so
is a file without this schema version. SCHEMA_VERSION changes with any change to the fields
that an older reader would misread.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from enum import Enum, StrEnum
from pathlib import Path
from time import time as now
from types import NoneType, UnionType
from typing import Any, ClassVar, TypeVar

SCHEMA_VERSION = 1
# A timing summary's nested parts (extraction, points, overhead, ...): their shape is
# kheaders_suite.timing.summary's, which makes them and prints them.
JsonObject = dict[str, Any]


class ResultsError(ValueError):
    """A results file (or record) this suite cannot read; the message names it."""


class RecordKind(StrEnum):
    BOOT = "boot"
    CHECK = "verify"  # one archive check (identity, member list, ..., BTF layouts)
    TIMING = "timing"
    BCC = "bcc"
    TAMPER = "tamper"
    FAULTS = "faults"


class Accel(StrEnum):
    """The accelerator a guest ran under (boot.accel decides it)."""

    KVM = "kvm"
    TCG = "tcg"


class Sweep(StrEnum):
    """The size of a timing sweep (--sweep)."""

    REDUCED = "reduced"
    FULL = "full"


@dataclass(frozen=True, kw_only=True)
class Record:
    """What every record has. ``KIND`` is the JSON's "kind"."""

    KIND: ClassVar[RecordKind]
    target: str  # "<arch>-<variant>"; "synthetic" for what runs on no kernel
    # When it was recorded, seconds since the epoch: stamped when made, required when read.
    time: float = field(default_factory=now, metadata={"required_on_read": True})

    @property
    def kind(self) -> RecordKind:
        return self.KIND


@dataclass(frozen=True, kw_only=True)
class BootRecord(Record):
    """A target's guest came up (patch CI: the side booted)."""

    KIND = RecordKind.BOOT
    seconds: float  # launch of vng to the first command answered
    accel: Accel
    release: str  # the kernel's release, as the build has it


@dataclass(frozen=True, kw_only=True)
class CheckRecord(Record):
    """One archive check against the build (verify.CheckResult)."""

    KIND = RecordKind.CHECK
    check: str  # the check's name: identity, member_list, content, ..., layouts
    ok: bool
    summary: str
    details: tuple[str, ...] = ()  # the first of the check's details


@dataclass(frozen=True, kw_only=True)
class TimingRecord(Record):
    """One target's compile-timing sweep, condensed (timing.summary.record_fields)."""

    KIND = RecordKind.TIMING
    arch: str
    variant: str
    release: str
    accel: Accel
    guest_cpus: int
    online_cpus: int
    sweep: Sweep
    workload: tuple[str, ...]  # the programs each job compiles
    json: str | None  # the full result document (timing/results.py), if written
    total_seconds: float | None
    extraction: JsonObject
    points: tuple[JsonObject, ...]
    overhead: tuple[JsonObject, ...]
    failures: int  # failed compile jobs
    compilers_skipped: dict[str, str]  # compiler -> why
    rounds: JsonObject | None = None  # the calibration loop's rounds; older sweeps lack it
    resident: JsonObject | None = None  # the parse-only comparison, when it ran

    @classmethod
    def of(cls, target: str, summary: Mapping[str, Any]) -> TimingRecord:
        """The record of ``summary``, what timing.summary.record_fields made."""
        return decode(cls, {"target": target, "time": now(), **summary},
                      f"the timing summary of {target}")


@dataclass(frozen=True, kw_only=True)
class BccRecord(Record):
    """bcc compiling against the archive, cold (extract + compile) and warm (reused)."""

    KIND = RecordKind.BCC
    release: str
    accel: Accel
    cold: tuple[float, ...]  # seconds per run
    warm: tuple[float, ...]
    import_seconds: float
    cache_dir: str  # where bcc extracted the headers in the guest


@dataclass(frozen=True, kw_only=True)
class TamperRecord(Record):
    """How much of the tamper catalogue the checks caught (synthetic builds, no VM)."""

    KIND = RecordKind.TAMPER
    caught: int
    total: int


@dataclass(frozen=True, kw_only=True)
class FaultsRecord(Record):
    """The fault-injection run: how long the guest took to panic once out of memory."""

    KIND = RecordKind.FAULTS
    panic_seconds: float


@dataclass(frozen=True)
class RunMeta:
    """Where and how the run ran."""

    host: str
    arches: tuple[str, ...]
    accel_option: str  # --accel as given: auto, kvm or tcg


@dataclass(frozen=True)
class Results:
    """One results file."""

    meta: RunMeta
    records: tuple[Record, ...]


KINDS: dict[str, type[Record]] = {
    cls.KIND.value: cls
    for cls in (BootRecord, CheckRecord, TimingRecord, BccRecord, TamperRecord, FaultsRecord)
}
T = TypeVar("T")


def _plain(value: object) -> object:
    """``value`` as JSON holds it: enums by value, tuples as lists."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def encode(record: Record) -> dict[str, Any]:
    """``record`` as its JSON object, "kind" first."""
    return {"kind": record.KIND.value,
            **{f.name: _plain(getattr(record, f.name)) for f in fields(record)}}


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))


def _scalar(hint: type, value: object, where: str) -> object:
    if issubclass(hint, Enum):
        try:
            return hint(value)
        except ValueError:
            choices = ", ".join(repr(m.value) for m in hint)
            raise ResultsError(f"{where}: {value!r} is not one of {choices}") from None
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    raise ResultsError(f"{where}: expected {_type_name(hint)}, got {value!r}")


def _value(hint: Any, value: object, where: str) -> object:
    """``value`` read as type ``hint`` (the field's annotation), or ResultsError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin is UnionType or origin is typing.Union:
        if value is None and NoneType in args:
            return None
        (inner,) = [a for a in args if a is not NoneType]
        return _value(inner, value, where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ResultsError(f"{where}: expected a list, got {value!r}")
        return tuple(_value(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ResultsError(f"{where}: expected an object, got {value!r}")
        return {k: _value(args[1], v, f"{where}.{k}") for k, v in value.items()}
    return _scalar(hint, value, where)


def decode(cls: type[T], data: object, where: str) -> T:
    """The dataclass ``cls`` from its JSON object ``data`` ("kind" aside), checked field by
    field against the annotations."""
    if not isinstance(data, Mapping):
        raise ResultsError(f"{where}: not an object: {data!r}")
    hints = typing.get_type_hints(cls)
    # T is any dataclass: the typing module has no public bound that says so.
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known) - {"kind"})
    if unknown:
        raise ResultsError(f"{where}: unknown field(s) {', '.join(unknown)}")
    missing = [name for name, f in known.items() if name not in data and (
        f.metadata.get("required_on_read")
        or (f.default is MISSING and f.default_factory is MISSING))]
    if missing:
        raise ResultsError(f"{where}: missing field(s) {', '.join(missing)}")
    values = {name: _value(hints[name], data[name], f"{where}, field {name}")
              for name in known if name in data}
    return cls(**values)


def decode_record(data: object, where: str) -> Record:
    """A record from its JSON object, its class chosen by "kind"."""
    if not isinstance(data, Mapping):
        raise ResultsError(f"{where}: not an object: {data!r}")
    cls = KINDS.get(str(data.get("kind")))
    if cls is None:
        raise ResultsError(f"{where}: kind {data.get('kind')!r} is not one of "
                           f"{', '.join(KINDS)}")
    return decode(cls, data, f"{where} ({cls.KIND.value})")


def dumps(results: Results) -> str:
    return json.dumps({"schema_version": SCHEMA_VERSION,
                       "meta": _plain({f.name: getattr(results.meta, f.name)
                                       for f in fields(results.meta)}),
                       "records": [encode(r) for r in results.records]}, indent=1)


def loads(text: str, name: str) -> Results:
    """The results in ``text``, read from the file ``name`` (for the messages)."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ResultsError(f"results file {name} unreadable: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ResultsError(f"results file {name} unreadable: not a JSON object")
    version = doc.get("schema_version")
    if type(version) is not int or version != SCHEMA_VERSION:  # not True, not 1.0
        said = "no schema_version" if version is None else f"schema_version {version!r}"
        raise ResultsError(f"results file {name}: {said}, this suite reads schema_version "
                           f"{SCHEMA_VERSION} (the version its recorder writes)")
    records = doc.get("records")
    if not isinstance(records, list):
        raise ResultsError(f"results file {name}: \"records\" is not a list")
    meta = decode(RunMeta, doc.get("meta"), f"results file {name}, meta")
    return Results(meta, tuple(decode_record(r, f"results file {name}, record {i}")
                               for i, r in enumerate(records)))


def load(path: Path) -> Results:
    """The results file at ``path``; ResultsError (naming it) if it cannot be read as one."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ResultsError(f"results file {path} unreadable: {exc.strerror or exc}") from None
    return loads(text, str(path))


def write(path: Path, results: Results) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(results))
