"""The checks must catch what they claim: the whole tamper catalogue, counted in the summary.

Runs on synthetic builds (no VM; their archives made by the kernel's own gen_kheaders.sh), here
so that every VM run states the count it relies on; the unit tests in tests/test_verify.py
hold the same line and pin the catalogue by name.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kheaders_suite.report.recorder import Recorder
from kheaders_suite.report.results import TamperRecord

# The catalogue is the unit tests' code (tests/synthetic, with kernel scripts from tests/data),
# which a wheel does not install: imported by the test, so that the installed suite collects
# this module with the same ids and skips the test saying why.
CHECKOUT_ONLY = ("the tamper catalogue is the checkout's unit-test code (tests/synthetic), not "
                 "part of an installed suite: run it from a checkout (pytest vmtests)")


def test_tamper_catalogue_caught_in_full(tmp_path: Path, recorder: Recorder) -> None:
    try:
        from tests.synthetic.tamper import CATALOGUE, outcomes
        from tests.test_verify import PINNED_CATALOGUE
    except ImportError:
        pytest.skip(CHECKOUT_ONLY)
    results = outcomes(tmp_path)
    missed = [o for o in results if not o.caught]
    recorder.add(TamperRecord(target="synthetic", caught=len(results) - len(missed),
                              total=len(CATALOGUE)))
    assert tuple(t.name for t in CATALOGUE) == PINNED_CATALOGUE
    assert not missed, "\n\n".join(f"{o.tamper.name}: {o.tamper.description}\n{o.report()}"
                                   for o in missed)
