"""Benchmark: build, boot and read figures, printed and written as JSON.

    .venv/bin/python benchmarks/bench.py [--arch x86_64,arm64|all] [--cold] [--boots 3]
                                         [--suite] [--timing]

Per arch it reports:
- build seconds of each variant as recorded when it was built (the first variant of an arch
  is a full build, the others reuse its object tree), and the all-variants cost ratio
  (sum of the four / the first); with --cold everything is rebuilt in a fresh cache dir first,
  so the figures are this run's;
- the cached lookup time (a second request for a built key: no build at all);
- boot-to-SSH-ready seconds (launch of vng to a working paramiko session), --boots times;
- reading the archive in the guest (median of 5 whole reads, timed inside the guest);
- the accelerator everything ran under;
- with --suite: the warm VM suite of that arch, timing sweeps excluded (``pytest vmtests
  --arch A -m "not timing" -n 0``, builds already cached), wall seconds and exit status;
- with --timing: the timing harness's own figures on the arch's sysfs build: a
  sweep at N=1 only, every strategy, 5 measured rounds after a warm-up; per strategy the
  measuring loop's share of each sample (target < 2%) and the spread (max-min)/median
  (target < 10% on an idle machine), with the host's load average before and after, so an
  "idle machine" figure shows whether it was one.

- with --ci cold|warm: ``ci/test`` (what .ci/run runs) in a fresh clone of this checkout's
  HEAD, with an empty cache (cold: a fresh HOME too, so virtme-ng's keys are made anew) or
  the current one (warm), wall seconds and exit status;
- with --first-result: a fresh cache, then ``pytest vmtests -k proc -x`` on the host arch
  until pytest reports its first test result;
- with --patch-ci: the kheaders-ci end-to-end tests, each side's wall seconds (target: a
  patched side with the base built <= 5 min under TCG);
- with --debug-boots N: N idle boots of the debug flavor CI runs (x86_64 sysfs of
  linux-source-7.3 with KASAN, lockdep, UBSAN; built first if the cache lacks it), each
  with its stages;
- with --edit c|header (--edits times each, after one warm-up edit): the developer's loop,
  one file of a copy of the default source edited (a function added to kernel/sys.c, a
  macro to include/linux/crc-itu-t.h), then ``pytest vmtests -k x86_64-proc --kernel-src
  COPY`` to its exit: wall seconds, and where they go (finding the key, each build stage,
  the boot, the tests).

Every figure is printed beside its target with median, min and max where there are
several samples, the machine (cores, CPU model) and the accelerator. The targets:
boot to SSH ready on an idle host x86_64 <= 3 s, arm64 <= 3.5 s (median of 5), <= 1.5 s under
KVM, the debug flavor <= 12 s; edit -> verdict <= 60 s for a .c edit, <= 120 s for a header;
cold CI <= 45 min, warm <= 15 min; a fresh machine's first -k proc result <= 8 min;
warm x86_64 suite without sweeps <= 3 min; all four variants <= 1.10x the first build.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kheaders_suite.boot import accel
from kheaders_suite.build.kernel import BuildOptions, ensure_build
from kheaders_suite.catalog import arches, variants
from kheaders_suite.catalog.arches.arch import Arch
from kheaders_suite.catalog.flavors import FLAVOR_TIMEOUT_FACTOR
from kheaders_suite.catalog.paths import REPO_ROOT, default_cache_dir
from kheaders_suite.records import BootProfile, KernelBuild
from kheaders_suite.session.connect import BootOptions, boot
from kheaders_suite.source.tree import embedded_source
from kheaders_suite.timing import results, runner, summary, sweep, workload
from kheaders_suite.timing.stats import summarize

READ_SNIPPET = (
    "import time,statistics,sys\n"
    "t=[]\n"
    "for _ in range(5):\n"
    "    s=time.perf_counter(); open(sys.argv[1],'rb').read(); t.append(time.perf_counter()-s)\n"
    "print(statistics.median(t))\n"
)
BOOT_TARGET = {"x86_64": 3.0, "arm64": 3.5}
BOOT_TARGET_KVM = 1.5
DEBUG_BOOT_TARGET = 12.0
DEBUG_PACKAGE = "linux-source-7.3"  # the kernel of ci/test's debug phase
SUITE_TARGET = {"x86_64": 180.0}
VARIANTS_RATIO_TARGET = 1.10
CI_TARGET = {"cold": 45 * 60.0, "warm": 15 * 60.0}
EDIT_TARGET = {"c": 60.0, "header": 120.0}
EDIT_FILES = {"c": "kernel/sys.c", "header": "include/linux/crc-itu-t.h"}  # 20 .c include it
EDIT_MARK = "kheaders-bench edit"
FIRST_RESULT_TARGET = 8 * 60.0
OVERHEAD_TARGET = 0.02
SPREAD_TARGET = 0.10
PATCHED_TARGET = 5 * 60.0  # a patched side, the base already built


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_all(cache: Path, arch: Arch) -> tuple[list[KernelBuild], dict[str, Any]]:
    src = embedded_source(cache)
    opts = BuildOptions(cache_dir=cache)
    builds = [ensure_build(src, arch, v, opts, say) for v in variants.VARIANTS]
    start = time.monotonic()
    ensure_build(src, arch, variants.VARIANTS[0], opts, say)
    cached_lookup = time.monotonic() - start
    seconds = {b.variant: b.seconds for b in builds}
    return builds, {
        "build_seconds": seconds,
        "all_variants_ratio": round(sum(seconds.values()) / builds[0].seconds, 3),
        "cached_lookup_seconds": round(cached_lookup, 3),
    }


def boot_and_read(build: KernelBuild, opts: BootOptions, out: Path,
                  boots: int) -> dict[str, Any]:
    """``boots`` boots to the first command answered, each with its profile."""
    profiles: list[BootProfile] = []
    read_median = None
    for i in range(boots):
        guest = boot(build, opts, out / "consoles" / f"bench-{build.arch}-{i}.log", say)
        try:
            assert guest.profile is not None
            profiles.append(guest.profile)
            if read_median is None:
                guest.write_bytes("/tmp/readtime.py", READ_SNIPPET.encode())
                timed = guest.run(("python3", "/tmp/readtime.py", "/sys/kernel/kheaders.tar.xz"),
                                  check=True)
                read_median = round(float(timed.stdout), 4)
        finally:
            guest.close()
    stages: dict[str, list[float]] = {}
    for profile in profiles:
        for name, value in profile.stages():
            if value is not None:
                stages.setdefault(name, []).append(round(value, 2))
    return {"boot_to_ssh_seconds": [round(p.ready, 2) for p in profiles],
            "boot_to_ssh_median": statistics.median(p.ready for p in profiles),
            "boot_stages_median": {k: statistics.median(v) for k, v in stages.items()},
            "archive_read_seconds_median": read_median}


def debug_boots(cache: Path, out: Path, boots: int) -> dict[str, Any]:
    """``boots`` idle boots of ci/test's debug flavor: x86_64 sysfs of DEBUG_PACKAGE."""
    src = embedded_source(cache, DEBUG_PACKAGE)
    build = ensure_build(src, arches.get("x86_64"), variants.get("sysfs"),
                         BuildOptions(cache_dir=cache, flavor="debug"), say)
    opts = BootOptions(cache_dir=cache, timeout_factor=FLAVOR_TIMEOUT_FACTOR["debug"])
    return {"release": build.release,
            **boot_and_read(build, opts, out / "debug", boots)}


def warm_suite(name: str, cache: Path, out: Path) -> dict[str, Any]:
    """The arch's VM suite without the sweeps, builds cached: wall seconds, exit status."""
    cmd = [sys.executable, "-m", "pytest", "vmtests", "-q", "-n", "0", "--arch", name,
           "-m", "not timing", "--cache-dir", str(cache),
           "--results-dir", str(out / f"suite-{name}")]
    say(f"bench: {' '.join(cmd)}")
    start = time.monotonic()
    rc = subprocess.run(cmd, cwd=REPO_ROOT, check=False).returncode
    return {"warm_suite_seconds": round(time.monotonic() - start, 1), "warm_suite_exit": rc}


def ci_run(kind: str, out: Path) -> dict[str, Any]:
    """.ci/run in a fresh clone of HEAD; cold: an empty HOME (so an empty ~/.cache)."""
    top = Path(tempfile.mkdtemp(prefix=f"kheaders-ci-{kind}-"))
    subprocess.run(("git", "clone", "-q", str(REPO_ROOT), str(top / "repo")), check=True)
    env = {**os.environ, "CI": "true"}
    if kind == "cold":
        (top / "home").mkdir()
        env["HOME"] = str(top / "home")
        env.pop("KHEADERS_SUITE_CACHE", None)
        env.pop("XDG_CACHE_HOME", None)
    log = out / f"ci-{kind}.log"
    say(f"bench: .ci/run ({kind}) in {top / 'repo'}, log {log}")
    start = time.monotonic()
    with log.open("w") as sink:
        rc = subprocess.run(("bash", ".ci/run"), cwd=top / "repo", env=env, stdout=sink,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
    seconds = round(time.monotonic() - start, 1)
    shutil.rmtree(top, ignore_errors=True)  # the clone and, cold, its caches (~4.5 GB)
    return {"seconds": seconds, "exit": rc, "log": str(log)}


RESULT_WORDS = (" PASSED", " FAILED", " ERROR", " SKIPPED", " XFAIL", " XPASS")


def first_result(out: Path) -> dict[str, Any]:
    """A fresh cache to the first result of `pytest vmtests -k proc` on the host arch."""
    cache = Path(tempfile.mkdtemp(prefix="kheaders-first-"))
    cmd = (sys.executable, "-m", "pytest", "vmtests", "-v", "-k", "proc", "-x", "-n", "0",
           "-p", "no:cacheprovider", "--cache-dir", str(cache),
           "--results-dir", str(out / "first-result"))
    say(f"bench: {' '.join(cmd)}")
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert proc.stdout is not None
    line = next((ln for ln in proc.stdout if any(w in ln for w in RESULT_WORDS)), "")
    seconds = round(time.monotonic() - start, 1)
    os.killpg(proc.pid, signal.SIGINT)  # pytest ends its VMs on the way out
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    shutil.rmtree(cache, ignore_errors=True)
    return {"seconds": seconds, "first_line": line.strip()}


SIDE_LINE = re.compile(r"\[kheaders-ci\] (base|patched) (\S+): (\S+) after (\d+)s")


def patch_ci(out: Path) -> dict[str, Any]:
    """The kheaders-ci end-to-end tests (vmtests/test_patch_ci.py): each side's wall seconds
    as kheaders-ci reports them. The first test's base is a first build of its tree (ccache
    warm or not, as the cache is); the second's base reuses that object tree."""
    cmd = (sys.executable, "-m", "pytest", "vmtests", "-m", "patch_ci", "-n", "0", "-s",
           "-p", "no:cacheprovider", "--results-dir", str(out / "patch-ci"))
    say(f"bench: {' '.join(cmd)}")
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    sides = [{"side": m[0], "target": m[1], "status": m[2], "seconds": int(m[3])}
             for m in SIDE_LINE.findall(done.stdout + done.stderr)]
    return {"seconds": round(time.monotonic() - start, 1), "exit": done.returncode,
            "sides": sides}


EVENT = re.compile(r"\[kheaders\] x86_64-proc: (building |built in |booting |ready after "
                   r"|(sync source|configure|make|modules_install) \(\d+s\)$)")


def edit_tree(cache: Path) -> Path:
    """A copy of the default source at a fixed place, so its object tree stays between runs."""
    tree = cache / "bench" / "edit-linux"
    if not (tree / "Makefile").exists():
        shutil.rmtree(tree, ignore_errors=True)
        tree.parent.mkdir(parents=True, exist_ok=True)
        src = embedded_source(cache).path
        subprocess.run(("cp", "-a", "--reflink=auto", str(src), str(tree)), check=True)
    return tree


def apply_edit(tree: Path, kind: str, tag: int) -> None:
    """Replace the previous bench edit of ``kind``'s file with a new one, unique to ``tag``."""
    path = tree / EDIT_FILES[kind]
    lines = [ln for ln in path.read_text().splitlines(keepends=True) if EDIT_MARK not in ln]
    if kind == "c":
        lines.append(f"static void __used kheaders_bench_{tag}(void) {{}} /* {EDIT_MARK} */\n")
    else:
        last = max(i for i, ln in enumerate(lines) if ln.startswith("#endif"))
        lines.insert(last, f"#define KHEADERS_BENCH_EDIT {tag} /* {EDIT_MARK} */\n")
    path.write_text("".join(lines))


PHASE_OF = {"building ": "build setup", "built in ": "after build", "booting ": "boot",
            "ready after ": "tests"}


def phases(events: list[tuple[float, str]], end: float) -> dict[str, float]:
    """Seconds from each event to the next: where a run's wall time went."""
    marks = [(0.0, "collect+key"), *events, (end, "")]
    spent: dict[str, float] = {}
    for (t, what), (t_next, _) in itertools.pairwise(marks):
        name = PHASE_OF.get(what, what.split(" (")[0])
        spent[name] = round(spent.get(name, 0.0) + t_next - t, 1)
    return spent


def edit_run(tree: Path, kind: str, out: Path) -> dict[str, Any]:
    apply_edit(tree, kind, time.time_ns())
    cmd = (sys.executable, "-m", "pytest", "vmtests", "-q", "-n", "0", "-k", "x86_64-proc",
           "-p", "no:cacheprovider", "--kernel-src", str(tree),
           "--results-dir", str(out / f"edit-{kind}"))
    start = time.monotonic()
    events: list[tuple[float, str]] = []
    with (out / f"edit-{kind}.log").open("a") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if (m := EVENT.search(line.rstrip())) is not None:
                events.append((time.monotonic() - start, m[1]))
        rc = proc.wait()
    seconds = round(time.monotonic() - start, 1)
    return {"seconds": seconds, "exit": rc, "phases": phases(events, seconds)}


def edit_loop(kind: str, runs: int, cache: Path, out: Path) -> dict[str, Any]:
    """One warm-up edit (a new tree's first build is whole), then ``runs`` timed ones."""
    tree = edit_tree(cache)
    say(f"bench: {kind} edit loop in {tree}: a warm-up edit, then {runs}")
    warmup = edit_run(tree, kind, out)
    timed = [edit_run(tree, kind, out) for _ in range(runs)]
    return {"file": EDIT_FILES[kind], "warmup": warmup, "runs": timed}


def harness_plan() -> sweep.SweepPlan:
    return sweep.SweepPlan(sweep="bench", ns=(1,), reps=5, warmup=1, warmup_ns=(1,),
                           extract_reps=5, files=workload.sources("reduced"))


def harness_figures(doc: dict[str, Any]) -> dict[str, Any]:
    """Per strategy at N=1: the loop's share of the samples and their spread."""
    loop = {o["strategy"]: o["harness"] for o in summary.overhead_fields(doc)}
    out: dict[str, Any] = {}
    for p in doc["points"]:
        if p["compiler"] == "gcc" and p["samples"]:
            spread = summarize(p["samples"]).spread
            out[p["strategy"]] = {"overhead": loop.get(p["strategy"]),
                                  "spread": round(spread, 4),
                                  "median": summarize(p["samples"]).median}
    env = doc["environment"]
    return {"points": out, "host_loadavg": [env.get("host_loadavg_before"),
                                            env.get("host_loadavg_after")]}


def timing_harness(build: KernelBuild, opts: BootOptions, out: Path) -> dict[str, Any]:
    guest = boot(build, opts, out / "consoles" / f"bench-timing-{build.arch}.log", say)
    try:
        doc = runner.measure(guest, build, harness_plan(), guest_cpus=opts.guest_cpus,
                             online=runner.online_cpus(guest))
    finally:
        guest.close()
    results.write(doc, out / "bench-timing")
    return harness_figures(doc)


def bench_arch(name: str, opts: BootOptions, out: Path,
               args: argparse.Namespace) -> dict[str, Any]:
    arch = arches.get(name)
    builds, figures = build_all(opts.cache_dir, arch)
    figures["accel"] = accel.detect(opts.accel, arch, opts.cache_dir, builds[0].image).name
    figures.update(boot_and_read(builds[0], opts, out, args.boots))
    if args.suite:
        figures.update(warm_suite(name, opts.cache_dir, out))
    if args.timing:
        figures["timing_harness"] = timing_harness(builds[0], opts, out)
    return figures


def print_timing(results: dict[str, dict[str, Any]]) -> None:
    for name, figures in results.items():
        harness = figures.get("timing_harness")
        if not harness:
            continue
        load = ", ".join(f"{x:.2f}" for x in harness["host_loadavg"] if x is not None)
        print(f"timing harness, {name} sysfs, N=1, 5 rounds (host loadavg {load}; "
              f"targets: loop < {OVERHEAD_TARGET:.0%}, spread < {SPREAD_TARGET:.0%} idle):")
        for strategy, p in harness["points"].items():
            loop = p["overhead"]
            ok = "met" if (loop is not None and loop < OVERHEAD_TARGET
                           and p["spread"] < SPREAD_TARGET) else "MISSED"
            shown = "-" if loop is None else f"{loop:.2%}"
            print(f"  {strategy:<15} median {p['median']:7.3f}s  loop {shown:>6}  "
                  f"spread {p['spread']:6.1%}  {ok}")


def machine() -> str:
    model = next((ln.split(":", 1)[1].strip() for ln in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.machine())
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({model}), {memory:.0f} GiB, {platform.machine()}"


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}]"


def target_rows(results: dict[str, dict[str, Any]],
                extra: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(what, measured, target, met) for every target this run measured."""
    rows = []
    for name, f in results.items():
        boot_target = BOOT_TARGET_KVM if f["accel"] == "kvm" else BOOT_TARGET.get(name, 0.0)
        boots = f["boot_to_ssh_seconds"]
        rows.append((f"{name} boot to SSH ready ({f['accel']}, median of {len(boots)})",
                     spread(boots), f"<= {boot_target:.1f} s",
                     statistics.median(boots) <= boot_target))
        rows.append((f"{name} all four variants / first build",
                     f"{f['all_variants_ratio']:.2f}", f"<= {VARIANTS_RATIO_TARGET:.2f}",
                     f["all_variants_ratio"] <= VARIANTS_RATIO_TARGET))
        if "warm_suite_seconds" in f and name in SUITE_TARGET:
            rows.append((f"{name} warm suite, no sweeps (exit {f['warm_suite_exit']})",
                         f"{f['warm_suite_seconds']:.0f} s", f"<= {SUITE_TARGET[name]:.0f} s",
                         f["warm_suite_seconds"] <= SUITE_TARGET[name]
                         and f["warm_suite_exit"] == 0))
    for kind, run in extra.get("ci", {}).items():
        rows.append((f".ci/run {kind} (exit {run['exit']})", f"{run['seconds'] / 60:.1f} min",
                     f"<= {CI_TARGET[kind] / 60:.0f} min",
                     run["seconds"] <= CI_TARGET[kind] and run["exit"] == 0))
    patched = [x["seconds"] for x in extra.get("patch_ci", {}).get("sides", [])
               if x["side"] == "patched"]
    if patched:
        rows.append((f"kheaders-ci patched side, base cached (exit {extra['patch_ci']['exit']})",
                     spread([float(x) for x in patched]), f"<= {PATCHED_TARGET / 60:.0f} min",
                     max(patched) <= PATCHED_TARGET))
    rows.extend(edit_rows(extra.get("edit", {})))
    if "debug_boots" in extra:
        boots = extra["debug_boots"]["boot_to_ssh_seconds"]
        rows.append((f"x86_64 debug flavor ({extra['debug_boots']['release']}) boot to SSH "
                     f"ready (median of {len(boots)})", spread(boots),
                     f"<= {DEBUG_BOOT_TARGET:.1f} s",
                     statistics.median(boots) <= DEBUG_BOOT_TARGET))
    if "first_result" in extra:
        first = extra["first_result"]
        rows.append(("fresh cache to first -k proc result", f"{first['seconds'] / 60:.1f} min",
                     f"<= {FIRST_RESULT_TARGET / 60:.0f} min",
                     first["seconds"] <= FIRST_RESULT_TARGET))
    return rows


def edit_rows(edits: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    rows = []
    for kind, loop in edits.items():
        seconds = [r["seconds"] for r in loop["runs"]]
        ok = all(r["exit"] == 0 for r in loop["runs"])
        rows.append((f"edit {loop['file']} -> -k x86_64-proc verdict (n={len(seconds)}"
                     f"{'' if ok else ', a run failed'})", spread(seconds),
                     f"<= {EDIT_TARGET[kind]:.0f} s",
                     ok and statistics.median(seconds) <= EDIT_TARGET[kind]))
    return rows


def print_edits(edits: dict[str, Any]) -> None:
    for loop in edits.values():
        runs = [r["phases"] for r in loop["runs"]]
        names = dict.fromkeys(n for r in runs for n in r)
        shown = ", ".join(f"{n} {statistics.median(r.get(n, 0.0) for r in runs):.1f}"
                          for n in names)
        print(f"edit {loop['file']}: where the seconds go, median: {shown}")


def print_targets(results: dict[str, dict[str, Any]], extra: dict[str, Any]) -> None:
    print(f"machine: {machine()}")
    for name, f in results.items():
        stages = ", ".join(f"{k} {v:.1f}" for k, v in f["boot_stages_median"].items())
        print(f"{name} boot stages, median s: {stages}")
        print(f"{name} builds, s: {f['build_seconds']}; archive read in guest "
              f"{f['archive_read_seconds_median']} s")
    if "debug_boots" in extra:
        stages = ", ".join(f"{k} {v:.1f}"
                           for k, v in extra["debug_boots"]["boot_stages_median"].items())
        print(f"x86_64 debug flavor boot stages, median s: {stages}")
    rows = target_rows(results, extra)
    width = max(len(r[0]) for r in rows)
    for what, measured, target, met in rows:
        print(f"{what:<{width}}  {measured:>20}  {target:>10}  {'met' if met else 'MISSED'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="x86_64")
    parser.add_argument("--cold", action="store_true", help="rebuild in a fresh cache dir")
    parser.add_argument("--boots", type=int, default=5)
    parser.add_argument("--suite", action="store_true",
                        help="also time the warm VM suite (not timing) per arch")
    parser.add_argument("--timing", action="store_true",
                        help="also measure the timing harness's overhead and spread at N=1")
    parser.add_argument("--ci", choices=("cold", "warm"), action="append", default=[],
                        help="also time .ci/run in a fresh clone (cold: empty ~/.cache)")
    parser.add_argument("--first-result", action="store_true",
                        help="also time a fresh cache to the first `-k proc` result")
    parser.add_argument("--patch-ci", action="store_true",
                        help="also time kheaders-ci end to end (base and patched sides)")
    parser.add_argument("--edit", choices=tuple(EDIT_FILES), action="append", default=[],
                        help="also time the edit -> `-k x86_64-proc` verdict loop")
    parser.add_argument("--edits", type=int, default=3, help="timed edits of each --edit")
    parser.add_argument("--debug-boots", type=int, default=0,
                        help=f"also boot the debug flavor ({DEBUG_PACKAGE}, x86_64) N times")
    parser.add_argument("--out", type=Path, default=Path("results/bench.json"))
    args = parser.parse_args(argv)
    names = arches.names() if args.arch == "all" else tuple(args.arch.split(","))
    cache = Path(tempfile.mkdtemp(prefix="kheaders-cold-")) if args.cold else default_cache_dir()
    out = args.out.parent.resolve()
    out.mkdir(parents=True, exist_ok=True)
    extra: dict[str, Any] = {"ci": {kind: ci_run(kind, out) for kind in args.ci}}
    if args.first_result:
        extra["first_result"] = first_result(out)
    if args.patch_ci:
        extra["patch_ci"] = patch_ci(out)
    extra["edit"] = {kind: edit_loop(kind, args.edits, cache, out) for kind in args.edit}
    if args.debug_boots:
        extra["debug_boots"] = debug_boots(cache, out, args.debug_boots)
    opts = BootOptions(cache_dir=cache)  # the suite's defaults: accel auto, 2 CPUs, 2G
    results = {n: bench_arch(n, opts, out, args) for n in names}
    args.out.write_text(json.dumps({"cold": args.cold, "machine": machine(), "results": results,
                                    **extra}, indent=1))
    print_targets(results, extra)
    print_edits(extra["edit"])
    print_timing(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
