"""The checks must catch what they claim: the whole tamper catalogue, counted in the summary.

Runs on synthetic builds (no VM), here so that every VM run states the count it relies on;
the unit tests in tests/test_verify.py hold the same line.
"""

from __future__ import annotations

from pathlib import Path

from kheaders_suite.report import Recorder
from kheaders_suite.verify.tamper import CATALOGUE, outcomes


def test_tamper_catalogue_caught_in_full(tmp_path: Path, recorder: Recorder) -> None:
    results = outcomes(tmp_path)
    missed = [o for o in results if not o.caught]
    recorder.add("tamper", "synthetic", caught=len(results) - len(missed), total=len(CATALOGUE))
    assert len(CATALOGUE) >= 12
    assert not missed, "\n\n".join(f"{o.tamper.name}: {o.tamper.description}\n{o.report()}"
                                   for o in missed)
