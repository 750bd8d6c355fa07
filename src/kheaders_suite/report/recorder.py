"""The run's JSON results file: every check and measurement as a record, merged across
xdist workers (each worker ships its records to the controller, which writes one file).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WORKER_KEY = "kheaders_suite_records"


@dataclass
class Recorder:
    """Collects result records during a session."""

    records: list[dict[str, Any]] = field(default_factory=list)

    def add(self, kind: str, target: str, **data: Any) -> None:
        self.records.append({"kind": kind, "target": target, "time": time.time(), **data})

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["kind"] == kind]

    def to_json(self) -> str:
        return json.dumps(self.records, default=str)

    def merge_json(self, text: str) -> None:
        self.records.extend(json.loads(text))

    def write(self, path: Path, meta: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"meta": meta, "records": self.records}, indent=1,
                                   default=str))
