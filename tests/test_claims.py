"""The parallelism claim (claims.parallel_speedup) on two recorded sweeps from a 2-core host
(tests/data/timing/: TCG, 2 online vCPUs, reduced sweep, no other guest) and on synthetic
sweeps made from them by rewriting the extract-once N=2 samples."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from kheaders_suite.timing import claims, results

DATA = Path(__file__).parent / "data/timing"
RECORDED = ("x86_64-sysfs", "arm64-sysfs")


@cache
def _recorded(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    return doc


def _point(doc: dict[str, Any], n: int) -> dict[str, Any]:
    return next(p for p in doc["points"] if p["compiler"] == "gcc"
                and p["strategy"] == "extract-once" and p["n"] == n)


def _with_batches(factors: list[float], n: int = 2, name: str = "x86_64-sysfs",
                  **overrides: Any) -> dict[str, Any]:
    """The recorded sweep with each extract-once N=n sample replaced by factors[i] x the
    i-th N=1 sample (2.0: the guest ran the two compiles one after the other)."""
    doc = copy.deepcopy(_recorded(name))
    single = _point(doc, 1)["samples"]
    _point(doc, n)["samples"] = [f * s for f, s in zip(factors, single, strict=True)]
    doc.update(overrides)
    assert results.validate(doc) == []
    return doc


@pytest.mark.parametrize("name", RECORDED)
def test_recorded_sweeps_hold_every_claim(name: str) -> None:
    doc = _recorded(name)
    assert results.validate(doc) == []
    assert doc["online_cpus"] == 2
    assert claims.parallel_ns(doc) == [2]  # N=4 > vCPUs: not claimed
    assert claims.parallel_speedup(doc) == []
    assert claims.extract_once_vs_per_invocation(doc) == []


@pytest.mark.parametrize("factors", [
    pytest.param([2.0, 2.0, 2.0], id="serialized"),
    pytest.param([1.9, 2.05, 2.1], id="serialized-noisy"),
    pytest.param([1.0, 2.0, 2.0], id="serialized-one-fast-round"),
    pytest.param([2.7, 2.7, 2.7], id="issue-2.7x"),
])
def test_serialized_batch_is_a_violation(factors: list[float]) -> None:
    problems = claims.parallel_speedup(_with_batches(factors))
    assert len(problems) == 1
    assert problems[0].startswith("N=2: median ")


def test_serialized_arm64_batch_is_a_violation() -> None:
    assert len(claims.parallel_speedup(_with_batches([2.0] * 3, name="arm64-sysfs"))) == 1


@pytest.mark.parametrize("factors", [
    pytest.param([1.0, 1.0, 1.0], id="perfectly-parallel"),
    pytest.param([1.0, 1.05, 2.6], id="one-slow-round"),
    pytest.param([1.45, 1.45, 1.45], id="just-under-the-bound"),
])
def test_overlapping_batch_holds(factors: list[float]) -> None:
    assert claims.parallel_speedup(_with_batches(factors)) == []


def test_bound_is_parallel_share_times_n_serial_compiles() -> None:
    share = 2 * claims.PARALLEL_SHARE
    assert share == 1.5
    assert claims.parallel_speedup(_with_batches([share] * 3)) != []


def test_more_jobs_than_vcpus_is_not_claimed() -> None:
    assert claims.parallel_speedup(_with_batches([10.0] * 3, n=4)) == []


def test_no_parallel_claim_with_one_vcpu() -> None:
    doc = _with_batches([2.0] * 3, online_cpus=1)
    assert claims.parallel_ns(doc) == []
    assert claims.parallel_speedup(doc) == []
