"""One batch of jobs, run and timed inside the guest (stdlib only: compilebench.py imports it).

A sample is the wall time of one batch: N jobs started together, the batch ending when
the last one exits. A job is a list of steps (one process each); this process spawns a job's
next step as soon as its previous one is reaped (os.wait4, which also gives each step's
rusage, so maxrss covers cc1 under the gcc driver and xz under tar). Between the two clock
readings only the steps and this loop run; every batch records the loop's own busy
time ("loop_seconds": the harness's share) and the time inside posix_spawn ("spawn_seconds":
process creation and exec).

Uploaded beside compilebench.py as kheaders_suite/inguest/batch.py (inguest.BENCH_FILES), so
the guest's python3 imports it by the same name as the host does.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Step:
    phase: str  # "extract", "compile", "cleanup"
    argv: list[str]
    mkdir: str | None = None  # created just before the step is spawned


@dataclass
class Job:
    steps: list[Step]
    stderr: str
    next: int = 0
    rc: int = 0
    failed: str = ""
    end: float = 0.0
    started: float = 0.0
    maxrss_kb: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    cpu: float = 0.0


class TmpfsUsage:
    """Peak bytes used on the scratch tmpfs during a batch, read with statvfs at every reap.

    Usage only grows while steps extract and compile, and only shrinks in cleanup steps, so
    its maximum falls on a step boundary: reading it there (and at the end) finds the exact
    peak with no sampling thread competing for the vCPUs."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.baseline = self.peak = self.used()

    def used(self) -> int:
        st = os.statvfs(self.path)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def begin(self) -> None:
        self.baseline = self.peak = self.used()

    def look(self) -> None:
        self.peak = max(self.peak, self.used())

    def end(self) -> int:
        self.look()
        return self.peak - self.baseline


def spawn(step: Step, stderr: str) -> int:
    if step.mkdir:
        os.makedirs(step.mkdir, exist_ok=True)
    actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
               (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
               (os.POSIX_SPAWN_OPEN, 2, stderr, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)]
    return os.posix_spawn(step.argv[0], step.argv, os.environ, file_actions=actions)


def reaped(job: Job, status: int, usage: Any, now: float) -> Step | None:
    """Account for the step that just ended; the job's next step, if it should run."""
    step = job.steps[job.next]
    job.seconds[step.phase] = job.seconds.get(step.phase, 0.0) + now - job.started
    job.maxrss_kb[step.phase] = max(job.maxrss_kb.get(step.phase, 0), usage.ru_maxrss)
    job.cpu += usage.ru_utime + usage.ru_stime
    job.rc = os.waitstatus_to_exitcode(status)
    job.next += 1
    if job.rc != 0:
        job.failed = f"{step.phase}: {' '.join(step.argv)}"
    if job.rc == 0 and job.next < len(job.steps):
        job.started = now
        return job.steps[job.next]
    return None


class Clock:
    """Where this process's time goes during a batch: bookkeeping (the harness's own cost)
    versus posix_spawn calls (vfork: they return once the child has exec'd, so they hold
    process creation and exec, which any job runner -- a shell, make -- pays as well)."""

    def __init__(self) -> None:
        self.spawn = self.busy = 0.0

    def spawned(self, step: Step, stderr: str) -> int:
        t = time.perf_counter()
        pid = spawn(step, stderr)
        self.spawn += time.perf_counter() - t
        return pid


def run_batch(jobs: list[Job], usage: TmpfsUsage) -> dict[str, Any]:
    """Start every job, run each to its end; wall time from first spawn to last reap."""
    usage.begin()
    clock = Clock()
    running: dict[int, Job] = {}
    t0 = time.perf_counter()
    for job in jobs:
        job.started = time.perf_counter()
        running[clock.spawned(job.steps[0], job.stderr)] = job
    clock.busy = time.perf_counter() - t0
    while running:
        pid, status, rusage = os.wait4(-1, 0)
        now = time.perf_counter()
        usage.look()
        job = running.pop(pid)
        following = reaped(job, status, rusage, now)
        if following is not None:
            running[clock.spawned(following, job.stderr)] = job
        else:
            job.end = now - t0
        clock.busy += time.perf_counter() - now
    wall = time.perf_counter() - t0
    return {"wall": wall, "tmpfs_peak": usage.end(), "jobs": jobs,
            "harness": {"loop_seconds": round(clock.busy - clock.spawn, 6),
                        "spawn_seconds": round(clock.spawn, 5)}}


def summarize_jobs(jobs: list[Job]) -> dict[str, Any]:
    phases: dict[str, list[float]] = {}
    rss: dict[str, int] = {}
    for job in jobs:
        for phase, seconds in job.seconds.items():
            phases.setdefault(phase, []).append(round(seconds, 4))
        for phase, kb in job.maxrss_kb.items():
            rss[phase] = max(rss.get(phase, 0), kb)
    return {"job_end": [round(j.end, 4) for j in jobs], "phase_seconds": phases,
            "maxrss_kb": rss, "cpu_seconds": round(sum(j.cpu for j in jobs), 4)}
