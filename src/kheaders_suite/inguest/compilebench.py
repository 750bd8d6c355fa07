"""Time parallel compiles against the kheaders archive, inside the guest; print JSON.

Run in the guest: python3 compilebench.py CONFIG.json (stdlib only, Python >= 3.11), with
kheaders_suite/inguest/batch.py beside it (inguest.BENCH_FILES lays them out). The config
(written by kheaders_suite.timing.runner) names the archive, the pre-installed tree, the
workload sources, one argv template per compiler, the strategies, N values and rounds.

Every sample is the wall time of one batch of N jobs started together (batch.py: how a
batch runs and what it records). Separately the same jobs run with every step replaced by
`true` ("overhead"): what process creation alone costs in this guest, a floor for any job
runner.

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
from typing import Any

from kheaders_suite.inguest.batch import Job, Step, TmpfsUsage, run_batch, summarize_jobs

STDERR_TAIL = 2000


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
    """Compile every source once with every compiler present. A compiler that is missing
    is skipped (the host-side test decides whether it had to be there); one that fails
    against the archive stays in "failures" and out of the sweep: a compile error against
    the headers is a finding, whichever compiler hit it."""
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
        if len(bench.failures) > failures and name != "gcc":  # gcc stays: every point fails
            del bench.compilers[name]
            skipped[name] = "probe compile failed (see failures)"
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
