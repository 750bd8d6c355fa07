"""How big a sweep is (pure): N values, rounds, files; and the config the guest script reads.

reduced (CI): N in {1, vCPUs, 2 x vCPUs}; one warm-up batch per strategy at N=1, then 3
measured rounds; one workload file (execsnoop.c) per job; pre-installed at N=1 only (its
parallel points are in the full sweep: the parallel question is per-invocation against
extract-once), and at N = vCPUs extract-once alone (what parallel-vs-serial needs).
Measured under TCG on the 2-core host with 2 vCPUs: a compile of execsnoop.c ~2.6 s, over
9p ~6.5 s, an extraction ~1.5 s, a batch of 4 per-invocation jobs ~13 s: ~130 s of guest
time per variant when the host is quiet (149 s measured with one hiccup; pre-installed at
every N would take ~190 s); a second file would add ~100 s.
libclang, reduced: in-memory and extract-once at 2 x vCPUs (what the
decompress-on-every-run claim compares), and the parse-only comparison (frontend.py resident)
at N=1 for headers in memory (only those the program uses) against tmpfs; measured on x86_64
under TCG, the libclang part of a reduced sweep with every source and N=1 too took ~7.5 min,
this one ~4.5.
clang-bpf (bcc's compiler, workload.clang_bpf_template), reduced: N=1 per-invocation and
extract-once, a compile after an extraction and a compile against an extracted tree, which
are what bcc's cold and warm runs do; full: every point gcc runs.
full: every power of two up to 2 x vCPUs (and 2 x vCPUs itself), a warm-up round at every N,
5 measured rounds, every workload file in each job; libclang at every strategy and N, the
parse-only comparison at every N.

vCPUs means the CPUs the guest has online (what parallelism can use), not what was asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kheaders_suite.errors import UserError
from kheaders_suite.timing import workload

STRATEGIES = ("extract-once", "per-invocation", "pre-installed")
# clang's front end (libclang, inguest/frontend.py) also runs the review's own proposal:
# "in-memory" decompresses the archive into the compiler's memory on every run.
FRONTEND = "libclang"
FRONTEND_STRATEGIES = ("in-memory", *STRATEGIES)
CLANG_BPF_REDUCED = (("per-invocation", 1), ("extract-once", 1))
# frontend.py's SOURCES; the reduced sweep (CI) keeps the pair its claim compares most sharply
RESIDENT_SOURCES = ("memory", "memory-used", "tmpfs", "shared")
RESIDENT_REDUCED = ("memory-used", "tmpfs")
# A fixed CPU-bound loop in the guest's /bin/sh (~0.6 s under TCG), run once per round: it
# involves nothing of the kernel under test, so it tracks how fast the host lets the guest
# run; kheaders-compare divides that drift out between two runs.
CALIBRATION = ("sh", "-c", 'i=0; while [ "$i" -lt 40000 ]; do i=$((i + 1)); done')
SWEEPS = ("reduced", "full")


@dataclass(frozen=True)
class SweepPlan:
    sweep: str
    ns: tuple[int, ...]
    reps: int  # measured rounds per point, after the warm-up
    warmup: int  # warm-up rounds (discarded), each at every N in ``warmup_ns``
    warmup_ns: tuple[int, ...]
    extract_reps: int  # measured one-time extractions (extract-once's fixed cost)
    files: tuple[Path, ...]
    strategies: tuple[str, ...] = STRATEGIES
    skip: tuple[tuple[str, int], ...] = ()  # (strategy, N) points not run
    frontend: tuple[tuple[str, int], ...] = ()  # (strategy, N) points of libclang
    clang_bpf: tuple[tuple[str, int], ...] = ()  # (strategy, N) points of clang-bpf
    resident_ns: tuple[int, ...] = ()  # N of the headers-already-in-memory comparison
    resident_sources: tuple[str, ...] = RESIDENT_SOURCES  # where its headers come from

    def points(self) -> tuple[tuple[str, int], ...]:
        """(strategy, N) of every measured point."""
        return grid(self.ns, self.strategies, self.skip)

    def compiles(self) -> int:
        """Compiler runs in the whole sweep, for time bounds."""
        warm = self.warmup * sum(self.warmup_ns) * (len(self.strategies) + 3)
        measured = sum(n for _, n in (*self.points(), *self.frontend, *self.clang_bpf))
        return (warm + self.reps * measured) * len(self.files)

    def resident_parses(self) -> int:
        """Parses in the headers-already-in-memory comparison (one per source per job, and
        one to find the headers a program uses)."""
        rounds = self.warmup * sum(self.warmup_ns) + self.reps * sum(self.resident_ns)
        return (len(self.resident_sources) * rounds + 1) * len(self.files)


def grid(ns: tuple[int, ...], strategies: tuple[str, ...],
         skip: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
    """(strategy, N) for every N and strategy, in that order, but those in ``skip``."""
    return tuple((s, n) for n in ns for s in strategies if (s, n) not in skip)


def parallelism(cpus: int, full: bool) -> tuple[int, ...]:
    """Powers of two up to 2 x cpus, plus 2 x cpus itself; reduced keeps 1, cpus and
    2 x cpus."""
    top = 2 * max(1, cpus)
    ns = sorted({1 << i for i in range(top.bit_length()) if 1 << i <= top} | {top})
    return tuple(ns) if full else tuple(sorted({1, max(1, cpus), top}))


def reduced_skips(ns: tuple[int, ...]) -> tuple[tuple[str, int], ...]:
    """pre-installed only at N=1; per-invocation only at the ends."""
    top = max(ns)
    return (tuple(("pre-installed", n) for n in ns if n > 1)
            + tuple(("per-invocation", n) for n in ns if 1 < n < top))


def frontend_points(ns: tuple[int, ...], full: bool) -> tuple[tuple[str, int], ...]:
    """libclang's points: in full, every strategy at every N; reduced (CI), in-memory and
    extract-once at 2 x vCPUs, what the decompress-every-run claim compares where it matters
    (N=1 costs ~110 s more under TCG, measured: the full sweep has it)."""
    if full:
        return tuple((s, n) for n in ns for s in FRONTEND_STRATEGIES)
    return tuple((s, max(ns)) for s in ("in-memory", "extract-once"))


def plan_for(sweep: str, cpus: int, frontend: bool = True) -> SweepPlan:
    """The plan for ``cpus`` online vCPUs; ``frontend``: time clang too, its front end on
    the headers in memory (libclang) and bcc's clang (clang-bpf): --frontend-arch picks the
    arches, so CI's reduced sweep times clang on x86_64 only."""
    if sweep not in SWEEPS:
        raise UserError(f"--sweep {sweep!r}: choose from {', '.join(SWEEPS)}")
    full = sweep == "full"
    ns = parallelism(cpus, full)
    skip = () if full else reduced_skips(ns)
    return SweepPlan(sweep=sweep, ns=ns, reps=5 if full else 3, warmup=1,
                     warmup_ns=ns if full else (1,), extract_reps=5 if full else 3,
                     files=workload.sources(sweep), skip=skip,
                     clang_bpf=(grid(ns, STRATEGIES, skip) if full else CLANG_BPF_REDUCED)
                     if frontend else (),
                     frontend=frontend_points(ns, full) if frontend else (),
                     resident_ns=(ns if full else (1,)) if frontend else (),
                     resident_sources=RESIDENT_SOURCES if full else RESIDENT_REDUCED)


def guest_config(plan: SweepPlan, *, workdir: str, archive: str, preinstalled: str,
                 sources: tuple[str, ...], srcarch: str, frontend: str = "",
                 headers_root: Path | None = None) -> dict[str, Any]:
    """What compilebench.py reads: paths as the guest sees them. ``frontend`` is the guest
    path of frontend.py (no libclang points without it); its clang arguments sit beside it
    in clang-args.json (frontend_args)."""
    compilers = {k: list(v) for k, v in workload.templates(srcarch, headers_root).items()}
    extra: dict[str, Any] = {"points": {workload.CLANG_BPF: [list(p) for p in plan.clang_bpf]},
                             "in_memory": {}}
    with_frontend = bool(frontend and plan.frontend)
    if with_frontend:
        args = f"{frontend.rpartition('/')[0]}/clang-args.json"
        compilers[FRONTEND] = ["python3", frontend, "parse", args, "{src}", "--root", "{root}"]
        extra["in_memory"][FRONTEND] = ["python3", frontend, "parse", args, "{src}",
                                        "--archive", "{archive}"]
        extra["points"][FRONTEND] = [list(p) for p in plan.frontend]
    return {"workdir": workdir, "archive": archive, "preinstalled": preinstalled,
            "sources": list(sources), "compilers": compilers, **extra,
            "strategies": list(FRONTEND_STRATEGIES if with_frontend else plan.strategies),
            "ns": list(plan.ns), "reps": plan.reps,
            "warmup": plan.warmup, "warmup_ns": list(plan.warmup_ns),
            "extract_reps": plan.extract_reps, "skip": [list(p) for p in plan.skip],
            "calibration": list(CALIBRATION)}


def frontend_args(srcarch: str, headers_root: Path | None = None) -> list[str]:
    """clang's arguments for frontend.py ({root} left for it to fill)."""
    return list(workload.frontend_args(srcarch, headers_root))


def resident_config(plan: SweepPlan, *, workdir: str, archive: str, preinstalled: str,
                    sources: tuple[str, ...], args: list[str]) -> dict[str, Any]:
    """What ``frontend.py resident`` reads."""
    return {"workdir": workdir, "archive": archive, "preinstalled": preinstalled,
            "sources": list(sources), "args": args, "ns": list(plan.resident_ns),
            "headers": list(plan.resident_sources),
            "warmup": plan.warmup, "warmup_ns": list(plan.warmup_ns), "reps": plan.reps}
