"""The claims the timing vmtests make about one sweep's result document, as pure functions.

Each returns the list of its violations (empty: the claim holds), so vmtests assert ``== []``
and tests/ check the logic on recorded and synthetic documents. Rounds interleave the Ns and
the strategies, so a busy host slows both sides of a comparison alike. Extract-once against
per-invocation is judged round by round; parallelism is a fixed bound on medians, far from
both the measured ratio and a serialized guest's.
"""

from __future__ import annotations

from typing import Any

from kheaders_suite.timing import compare
from kheaders_suite.timing.stats import summarize
from kheaders_suite.timing.sweep import FRONTEND

# N jobs on N online vCPUs must overlap: the N-job batch's median under this share of N
# serial compiles (N x the N=1 median). Recorded sweeps (tests/data/timing/, TCG, 2 vCPUs,
# no other guest): N=2 medians 1.01 x N=1 (x86_64: 3.49 s vs 3.45 s) and 1.18 x (arm64:
# 4.76 s vs 4.05 s), single samples up to 1.27 x; a guest that runs the batch serially takes
# 2.0 x. The bound, 1.5 x at N=2, leaves the host's noise room and fails a serialized guest.
# With more jobs than vCPUs nothing is claimed: under TCG they can be slower than serial
# (every context switch flushes the soft TLB: measured 14 s of CPU per compile at N=4 on
# 1 vCPU against 8.5 s at N=1), so that comparison is reported only.
PARALLEL_SHARE = 0.75
# Extract-once with more jobs than vCPUs saves 29-34% of per-invocation's time in every
# recorded round (2-core host, TCG, N=4); a third of that is still a clear saving, and an
# extract-once only 0-7% faster (the same batch 1.5 x as long) is not.
CLEAR_SAVING = 0.10


def samples_of(doc: dict[str, Any], compiler: str, strategy: str) -> dict[int, list[float]]:
    """{N: measured samples} of one compiler's points of one strategy."""
    return {int(p["n"]): list(p["samples"]) for p in doc["points"]
            if p["compiler"] == compiler and p["strategy"] == strategy and p["samples"]}


def gcc_samples(doc: dict[str, Any], strategy: str) -> dict[int, list[float]]:
    """{N: measured samples} of one strategy's gcc points."""
    return samples_of(doc, "gcc", strategy)


def extraction_median(doc: dict[str, Any]) -> float:
    return summarize(doc["extraction"]["samples"]).median


def per_invocation_ns(doc: dict[str, Any]) -> list[int]:
    """N > 1 where both extract-once and per-invocation were measured."""
    once, per = gcc_samples(doc, "extract-once"), gcc_samples(doc, "per-invocation")
    return sorted(n for n in once.keys() & per.keys() if n > 1)


def extract_once_totals(doc: dict[str, Any], batches: list[float]) -> list[float]:
    """One extraction + the N-compile batch, round by round: sample i of the extraction and
    of every point come from the same round (when the counts differ, the median extraction)."""
    extraction = list(doc["extraction"]["samples"])
    if len(extraction) != len(batches):
        extraction = [extraction_median(doc)] * len(batches)
    return [e + b for e, b in zip(extraction, batches, strict=True)]


def clearly_faster(slow: list[float], fast: list[float]) -> bool:
    """Paired by round (sample i of both from round i): ``fast`` won every round, and its
    median saving is at least CLEAR_SAVING of ``slow``'s median."""
    if len(slow) != len(fast) or len(slow) < compare.MIN_SAMPLES:
        return False
    savings = [s - f for s, f in zip(slow, fast, strict=True)]
    return min(savings) > 0 and summarize(savings).median >= CLEAR_SAVING * summarize(slow).median


def extract_once_vs_per_invocation(doc: dict[str, Any]) -> list[str]:
    """Extract-once's whole cost (one extraction + N parallel compiles) against
    per-invocation's (N parallel jobs, each an extraction + the same compile), at every
    N > 1 measured for both.

    With more jobs than online vCPUs the N extractions per-invocation adds compete for CPU
    with the compiles, so extract-once must be clearly faster (``clearly_faster``: round by
    round, so a busy host, which slows both sides of one round alike, cannot hide the
    saving; the recorded sweeps in tests/data/timing/, 2026-11-29, 2-core host, TCG,
    2 vCPUs, 6.12.117, N=4: 9.5-9.8 s against 13.7-14.7 s on x86_64, 10.7-13.0 s against
    16.3-18.4 s on arm64, saving 29-34% in every round). With N <= vCPUs the extractions
    can run side by side on idle vCPUs and the saving may vanish, so there extract-once need
    only be not clearly slower (kheaders-compare's rule, compare.judge)."""
    once, per = gcc_samples(doc, "extract-once"), gcc_samples(doc, "per-invocation")
    cpus, problems = int(doc["online_cpus"]), []
    for n in per_invocation_ns(doc):
        total = extract_once_totals(doc, once[n])
        if n > cpus:
            ok, fault = (clearly_faster(per[n], total),
                         f"not faster by {CLEAR_SAVING:.0%} in every round than")
        else:
            ok, fault = (compare.judge(per[n], total) != compare.PointStatus.REGRESSED,
                         "clearly slower (REGRESSED) than")
        if not ok:
            problems.append(f"N={n} ({cpus} vCPUs): extract-once {fault} "
                            f"per-invocation: extraction + batch "
                            f"{[round(t, 3) for t in total]}, per-invocation {per[n]}")
    return problems


def parallel_ns(doc: dict[str, Any]) -> list[int]:
    """N in (1, online vCPUs] where extract-once was measured (and N=1 too)."""
    once = gcc_samples(doc, "extract-once")
    if 1 not in once:
        return []
    return sorted(n for n in once if 1 < n <= int(doc["online_cpus"]))


def parallel_speedup(doc: dict[str, Any]) -> list[str]:
    """For N in (1, online vCPUs]: the median N-job extract-once batch is under
    PARALLEL_SHARE x N x the median single compile, i.e. the N compiles ran in parallel.

    Medians, not kheaders-compare's every-sample rule: a serialized run with one fast
    outlier must still fail, and one slow round must not."""
    once = gcc_samples(doc, "extract-once")
    problems = []
    for n in parallel_ns(doc):
        single, batch = summarize(once[1]).median, summarize(once[n]).median
        bound = PARALLEL_SHARE * n * single
        if batch >= bound:
            problems.append(f"N={n}: median {batch:.2f}s ({batch / single:.2f} x N=1) >= "
                            f"{PARALLEL_SHARE} x {n} x {single:.2f}s = {bound:.2f}s: "
                            f"N={n} {once[n]}, N=1 {once[1]}")
    return problems


# --- the review's own proposal: clang's front end on headers in memory ---------------------

def in_memory_ns(doc: dict[str, Any]) -> list[int]:
    """N where libclang ran both in-memory and extract-once."""
    memory = samples_of(doc, FRONTEND, "in-memory")
    once = samples_of(doc, FRONTEND, "extract-once")
    return sorted(memory.keys() & once.keys())


def in_memory_costs_more(doc: dict[str, Any]) -> list[str]:
    """"You have to uncompress it on every compiler invocation", with the proposal itself:
    at every N measured, the median batch of N libclang runs that each decompress the archive
    into memory takes longer than the one-time extraction plus the median batch of the same
    N runs against the extracted tree. Medians, not kheaders-compare's every-sample rule: at
    N > vCPUs under TCG one slow extract-once batch (a host hiccup) overlaps the in-memory
    samples (arm64, 6.12: 22.6-35.4 s against 31.3-38.7 s), while the medians stay apart
    (26.7 + 2.2 s against 34.9 s)."""
    memory = samples_of(doc, FRONTEND, "in-memory")
    once = samples_of(doc, FRONTEND, "extract-once")
    extraction = extraction_median(doc)
    problems = []
    for n in in_memory_ns(doc):
        mem, total = summarize(memory[n]).median, extraction + summarize(once[n]).median
        if mem <= total:
            problems.append(f"N={n}: in-memory median {mem:.2f}s <= extraction "
                            f"{extraction:.2f}s + extract-once median "
                            f"{total - extraction:.2f}s: in-memory {memory[n]}, "
                            f"extract-once {once[n]}")
    return problems


def resident_samples(doc: dict[str, Any], source: str) -> dict[int, list[float]]:
    """{N: samples} of the parse-only comparison for headers in ``source``."""
    return {int(p["n"]): list(p["samples"])
            for p in (doc.get("resident") or {}).get("points", [])
            if p["source"] == source and p["samples"]}


def memory_not_faster_than_tmpfs(doc: dict[str, Any]) -> list[str]:
    """"Access to such in-memory 'files' is obviously faster than doing open/read syscalls",
    decompression excluded: at every N, a parse with the headers already in the front end's
    memory (every member, or only those the program includes) is not clearly faster
    (kheaders-compare's rule) than one reading them from tmpfs."""
    tmpfs = resident_samples(doc, "tmpfs")
    problems = []
    for source in ("memory", "memory-used"):
        memory = resident_samples(doc, source)
        problems += [f"N={n}: headers {source} {memory[n]} clearly faster than on tmpfs "
                     f"{tmpfs[n]}" for n in sorted(memory.keys() & tmpfs.keys())
                     if compare.judge(tmpfs[n], memory[n]) == compare.PointStatus.IMPROVED]
    return problems
