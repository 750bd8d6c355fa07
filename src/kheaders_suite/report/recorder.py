"""The run's results, collected as typed records (report/results.py) during a session and
merged across xdist workers: each worker ships its records to the controller, which writes
one results.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from kheaders_suite.report import results
from kheaders_suite.report.results import Record, Results, RunMeta

WORKER_KEY = "kheaders_suite_records"
R = TypeVar("R", bound=Record)


@dataclass
class Recorder:
    """Collects result records during a session."""

    records: list[Record] = field(default_factory=list)

    def add(self, record: Record) -> None:
        self.records.append(record)

    def of_kind(self, cls: type[R]) -> list[R]:
        return [r for r in self.records if isinstance(r, cls)]

    def to_json(self) -> str:
        """The records for the controller (an xdist worker's output)."""
        return json.dumps([results.encode(r) for r in self.records])

    def merge_json(self, text: str) -> None:
        """Add the records a worker shipped (to_json)."""
        self.records.extend(results.decode_record(r, f"an xdist worker's record {i}")
                            for i, r in enumerate(json.loads(text)))

    def write(self, path: Path, meta: RunMeta) -> None:
        results.write(path, Results(meta, tuple(self.records)))
