"""The checks must catch what they claim: the whole tamper catalogue, counted in the summary.

Runs on synthetic builds (no VM; their archives made by the kernel's own gen_kheaders.sh), here
so that every VM run states the count it relies on; the unit tests in tests/test_verify.py
hold the same line and pin the catalogue by name.
"""

from __future__ import annotations

from pathlib import Path

from kheaders_suite.report.recorder import Recorder
from kheaders_suite.report.results import TamperRecord
from tests.synthetic.tamper import CATALOGUE, outcomes
from tests.test_verify import PINNED_CATALOGUE


def test_tamper_catalogue_caught_in_full(tmp_path: Path, recorder: Recorder) -> None:
    results = outcomes(tmp_path)
    missed = [o for o in results if not o.caught]
    recorder.add(TamperRecord(target="synthetic", caught=len(results) - len(missed),
                              total=len(CATALOGUE)))
    assert tuple(t.name for t in CATALOGUE) == PINNED_CATALOGUE
    assert not missed, "\n\n".join(f"{o.tamper.name}: {o.tamper.description}\n{o.report()}"
                                   for o in missed)
