"""Time parallel compiles against the kheaders archive, inside the guest; print JSON.

Run in the guest: python3 compilebench.py CONFIG.json (stdlib only, Python >= 3.11). The
config (written by kheaders_suite.timing.runner) names the archive, the pre-installed tree,
the workload sources, one argv template per compiler, the strategies, N values and rounds.

Every sample is the wall time of one batch: N jobs started together, the batch ending when
the last one exits. A job is a list of steps (one process each); this process spawns a job's
next step as soon as its previous one is reaped (os.wait4, which also gives each step's
rusage, so maxrss covers cc1 under the gcc driver and xz under tar). Between the two clock
readings only the steps and this loop run; every batch records the loop's own busy
time ("loop_seconds": the harness's share) and the time inside posix_spawn ("spawn_seconds":
process creation and exec). Separately the same jobs run with every step replaced by `true`
("overhead"): what process creation alone costs in this guest, a floor for any job runner.

Strategy "in-memory" (the 2019 review's own proposal) has one step per source: a compiler
that decompresses the archive into its own memory and compiles from there
(cfg["in_memory"][compiler], with {archive} and {src}: inguest/frontend.py with libclang).
cfg["points"] names, per compiler, the (strategy, N) points it runs; a compiler not named runs
every point not in cfg["skip"].

Rounds are interleaved (for each round: for each N: for each strategy) so drift on a busy host
lands on every strategy alike; the first ``warmup`` rounds (at the N in ``warmup_ns`` only)
warm the page cache and are reported apart.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import Any

STDERR_TAIL = 2000


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


def fill(template: list[str], **values: str) -> list[str]:
    out = []
    for arg in template:
        for key, value in values.items():
            arg = arg.replace("{" + key + "}", value)
        out.append(arg)
    return out


class Bench:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.work = str(cfg["workdir"])
        self.archive = str(cfg["archive"])
        self.once = os.path.join(self.work, "once")
        self.tar = self._which("tar")
        self.rm = self._which("rm")
        self.true = self._which("true")
        self.compilers: dict[str, list[str]] = {}
        self.failures: list[dict[str, Any]] = []
        self.batch_no = 0

    @staticmethod
    def _which(name: str) -> str:
        found = shutil.which(name)
        if found is None:
            raise SystemExit(f"compilebench: {name} not found in the guest")
        return found

    def scratch(self, name: str) -> str:
        path = os.path.join(self.work, name)
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
        return path

    def extract_step(self, dest: str) -> Step:
        return Step("extract", [self.tar, "-xJf", self.archive, "-C", dest], mkdir=dest)

    def compile_step(self, compiler: str, root: str, src: str, out: str) -> Step:
        argv = fill(self.compilers[compiler], root=root, src=src, out=out)
        return Step("compile", argv)

    def job(self, strategy: str, compiler: str, j: int, empty: bool = False) -> Job:
        outdir = os.path.join(self.work, "out")
        steps: list[Step] = []
        for k, src in enumerate(self.cfg["sources"]):
            out = os.path.join(outdir, f"{j}-{k}.o")
            if strategy == "in-memory":
                # the program the probe resolved for this compiler, with in-memory arguments
                template = [self.compilers[compiler][0], *self.cfg["in_memory"][compiler][1:]]
                steps.append(Step("compile", fill(template, archive=self.archive, src=src,
                                                  out=out)))
            elif strategy == "per-invocation":
                private = os.path.join(self.work, "priv", f"{j}-{k}")
                steps += [self.extract_step(private),
                          self.compile_step(compiler, private, src, out),
                          Step("cleanup", [self.rm, "-rf", private])]
            else:
                root = self.once if strategy == "extract-once" else str(self.cfg["preinstalled"])
                steps.append(self.compile_step(compiler, root, src, out))
        if empty:
            steps = [Step(s.phase, [self.true], s.mkdir) for s in steps]
        self.batch_no += 1
        return Job(steps, os.path.join(self.work, "err", f"{self.batch_no}-{j}.txt"))

    def runs(self, compiler: str, strategy: str, n: int) -> bool:
        """Whether ``compiler`` measures (strategy, n)."""
        named = self.cfg.get("points", {}).get(compiler)
        if named is not None:
            return [strategy, n] in named
        return strategy != "in-memory" and [strategy, n] not in self.cfg["skip"]

    def batch(self, jobs: list[Job], usage: TmpfsUsage, where: dict[str, Any]) -> Any:
        self.scratch("out")
        self.scratch("priv")
        result = run_batch(jobs, usage)
        for j, job in enumerate(result["jobs"]):
            if job.rc != 0:
                self.failures.append({**where, "job": j, "rc": job.rc, "step": job.failed,
                                      "stderr": tail(job.stderr)})
        return result


def tail(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read()[-STDERR_TAIL:].decode(errors="replace")
    except OSError:
        return ""


def first_line(argv: list[str]) -> str:
    import subprocess

    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except OSError as exc:
        return f"unavailable: {exc}"
    return (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else ""


def version_argv(template: list[str]) -> list[str]:
    """How to ask a compiler its version (frontend.py: libclang's, not python's)."""
    if len(template) > 1 and template[1].endswith("frontend.py"):
        return [*template[:2], "version"]
    return [template[0], "--version"]


def fstype(path: str) -> str:
    best, kind = "", "?"
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            parts = line.split()
            mnt = parts[1]
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, kind = mnt, parts[2]
    return kind


def tree_size(root: str) -> tuple[int, int]:
    files = size = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            files += 1
            size += os.lstat(os.path.join(dirpath, name)).st_size
    return files, size


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


def extraction(bench: Bench, usage: TmpfsUsage, rounds: int) -> dict[str, Any]:
    """The one-time cost of extract-once, sampled like any point (warm-up first)."""
    samples: list[float] = []
    result: dict[str, Any] = {}
    for r in range(rounds):
        shutil.rmtree(bench.once, ignore_errors=True)
        step = bench.extract_step(bench.once)
        result = bench.batch([Job([step], os.path.join(bench.work, "err", f"x{r}.txt"))],
                             usage, {"strategy": "extraction", "round": r})
        samples.append(round(result["wall"], 4))
    files, size = tree_size(bench.once)
    return {"warmup": samples[:1], "samples": samples[1:], "tmpfs_bytes": result["tmpfs_peak"],
            "files": files, "bytes": size, **summarize_jobs(result["jobs"])}


def probe(bench: Bench, usage: TmpfsUsage,
          templates: dict[str, list[str]]) -> dict[str, str]:
    """Compile every source once with every compiler present; keep those that work."""
    skipped: dict[str, str] = {}
    for name, template in templates.items():
        path = shutil.which(template[0])
        if path is None:
            skipped[name] = f"{template[0]} not installed in the guest"
            continue
        bench.compilers[name] = [path, *template[1:]]
        failures = len(bench.failures)
        bench.batch([bench.job("extract-once", name, 0)], usage,
                    {"strategy": "probe", "compiler": name})
        if len(bench.failures) > failures:
            bad = bench.failures[failures:]
            if name != "gcc":  # gcc must work: its failure stays in "failures"
                del bench.failures[failures:]
                del bench.compilers[name]
            skipped[name] = f"probe compile failed: {bad[0]['stderr'][-500:]}"
    return skipped


def overhead(bench: Bench, usage: TmpfsUsage, ns: list[int],
             reps: int) -> list[dict[str, Any]]:
    """The same jobs with every step `true`: what the loop itself adds to a sample."""
    out = []
    for strategy in bench.cfg["strategies"]:
        for n in sorted({ns[0], ns[-1]}):
            if not bench.runs("gcc", strategy, n):
                continue
            samples = []
            for _ in range(reps + 1):
                jobs = [bench.job(strategy, "gcc", j, empty=True) for j in range(n)]
                samples.append(round(bench.batch(jobs, usage, {})["wall"], 5))
            out.append({"strategy": strategy, "n": n, "steps": len(jobs[0].steps),
                        "warmup": samples[:1], "samples": samples[1:]})
    return out


def calibrate(bench: Bench, usage: TmpfsUsage, r: int) -> float:
    """One run of a fixed CPU-bound loop with nothing of the kernel under test in it: how
    fast this guest runs right now (kheaders-compare divides host-speed drift out)."""
    argv = list(bench.cfg["calibration"])
    job = Job([Step("calibration", [bench._which(argv[0]), *argv[1:]])],
              os.path.join(bench.work, "err", f"cal{r}.txt"))
    wall: float = bench.batch([job], usage, {"strategy": "calibration", "round": r})["wall"]
    return round(wall, 4)


def sweep(bench: Bench, usage: TmpfsUsage) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    cfg = bench.cfg
    points: dict[tuple[str, str, int], dict[str, Any]] = {}
    calibration: dict[str, Any] = {"argv": cfg["calibration"], "warmup": [], "samples": []}
    for r in range(cfg["warmup"] + cfg["reps"]):
        calibration["warmup" if r < cfg["warmup"] else "samples"].append(
            calibrate(bench, usage, r))
        for n in cfg["ns"] if r >= cfg["warmup"] else cfg["warmup_ns"]:
            for strategy in cfg["strategies"]:
                for compiler in bench.compilers:
                    if not bench.runs(compiler, strategy, n):
                        continue
                    jobs = [bench.job(strategy, compiler, j) for j in range(n)]
                    where = {"strategy": strategy, "compiler": compiler, "n": n, "round": r}
                    result = bench.batch(jobs, usage, where)
                    point = points.setdefault((compiler, strategy, n), {
                        "compiler": compiler, "strategy": strategy, "n": n,
                        "warmup": [], "samples": [], "tmpfs_peak_bytes": [], "batches": []})
                    key = "warmup" if r < cfg["warmup"] else "samples"
                    point[key].append(round(result["wall"], 4))
                    point["tmpfs_peak_bytes"].append(result["tmpfs_peak"])
                    point["batches"].append({**summarize_jobs(result["jobs"]),
                                             "wall": round(result["wall"], 4),
                                             **result["harness"]})
    return list(points.values()), calibration


def environment(bench: Bench) -> dict[str, Any]:
    with open("/proc/meminfo") as meminfo:
        mem_kb = int(meminfo.readline().split()[1])
    return {"release": platform.release(), "machine": platform.machine(),
            "python": platform.python_version(), "cpus": os.cpu_count(),
            "mem_total_kb": mem_kb, "workdir_fstype": fstype(bench.work),
            "loadavg_before": os.getloadavg()[0],
            "compiler_versions": {n: first_line(version_argv(t))
                                  for n, t in bench.compilers.items()}}


def main(config_path: str) -> None:
    with open(config_path) as handle:
        cfg = json.load(handle)
    bench = Bench(cfg)
    shutil.rmtree(bench.work + "/out", ignore_errors=True)
    for sub in ("err", "out", "priv"):
        bench.scratch(sub)
    start = time.perf_counter()
    usage = TmpfsUsage(bench.work)
    extracted = extraction(bench, usage, cfg["warmup"] + cfg["extract_reps"])
    skipped = probe(bench, usage, cfg["compilers"])
    env = environment(bench)
    over = overhead(bench, usage, cfg["ns"], cfg["reps"])
    points, calibration = sweep(bench, usage) if "gcc" in bench.compilers else ([], {})
    shutil.rmtree(bench.once, ignore_errors=True)
    json.dump({"environment": {**env, "loadavg_after": os.getloadavg()[0]},
               "extraction": extracted, "overhead": over, "points": points,
               "calibration": calibration,
               "compilers_skipped": skipped, "failures": bench.failures,
               "total_seconds": round(time.perf_counter() - start, 2)}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: compilebench.py CONFIG.json")
    main(sys.argv[1])
