"""Benchmark: build, boot and read figures, printed and written as JSON.

    .venv/bin/python benchmarks/bench.py [--arch x86_64,arm64|all] [--cold] [--boots 3]

Per arch it reports:
- build seconds of each variant as recorded when it was built (the first variant of an arch
  is a full build, the others reuse its object tree), and the all-variants cost ratio
  (sum of the four / the first); with --cold everything is rebuilt in a fresh cache dir first,
  so the figures are this run's;
- the cached lookup time (a second request for a built key: no build at all);
- boot-to-SSH-ready seconds (launch of vng to a working paramiko session), --boots times;
- reading the archive in the guest (median of 5 whole reads, timed inside the guest);
- the accelerator everything ran under.

Targets it prints against (2 cores, TCG): boot-to-SSH under 4 s (x86_64) / 15 s (arm64).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kheaders_suite import accel, arches, variants
from kheaders_suite.boot import boot
from kheaders_suite.build import BuildOptions, KernelBuild, ensure_build
from kheaders_suite.paths import default_cache_dir
from kheaders_suite.settings import Settings
from kheaders_suite.source import embedded_source

READ_SNIPPET = (
    "import time,statistics,sys\n"
    "t=[]\n"
    "for _ in range(5):\n"
    "    s=time.perf_counter(); open(sys.argv[1],'rb').read(); t.append(time.perf_counter()-s)\n"
    "print(statistics.median(t))\n"
)
BOOT_TARGET = {"x86_64": 4.0, "arm64": 15.0}


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def settings_for(cache: Path, arch_names: tuple[str, ...], results: Path) -> Settings:
    return Settings(kernel_src=None, kernel_package="linux-source-6.12", arches=arch_names,
                    accel="auto", cache_dir=cache, results_dir=results, guest_cpus=2,
                    guest_memory="2G", build_jobs=(os.cpu_count() or 1) + 1,
                    extra_fragments=(), sweep="reduced")


def build_all(cache: Path, arch: arches.Arch) -> tuple[list[KernelBuild], dict[str, Any]]:
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


def boot_and_read(build: KernelBuild, s: Settings, boots: int) -> dict[str, Any]:
    boot_times: list[float] = []
    read_median = None
    for i in range(boots):
        guest = boot(build, s, s.results_dir / "consoles" / f"bench-{build.arch}-{i}.log", say)
        try:
            boot_times.append(round(guest.boot_seconds, 2))
            if read_median is None:
                guest.write_bytes("/tmp/readtime.py", READ_SNIPPET.encode())
                out = guest.run(("python3", "/tmp/readtime.py", "/sys/kernel/kheaders.tar.xz"),
                                check=True)
                read_median = round(float(out.stdout), 4)
        finally:
            guest.close()
    return {"boot_to_ssh_seconds": boot_times,
            "boot_to_ssh_median": statistics.median(boot_times),
            "archive_read_seconds_median": read_median}


def bench_arch(name: str, cache: Path, s: Settings, boots: int) -> dict[str, Any]:
    arch = arches.get(name)
    builds, figures = build_all(cache, arch)
    figures["accel"] = accel.detect("auto", arch, cache, builds[0].image).name
    figures.update(boot_and_read(builds[0], s, boots))
    figures["boot_target_seconds"] = BOOT_TARGET.get(name)
    return figures


def print_table(results: dict[str, dict[str, Any]]) -> None:
    rows = [
        ("accelerator", "accel"),
        ("build sysfs (full), s", "build_seconds.sysfs"),
        ("build module (incremental), s", "build_seconds.module"),
        ("build proc (incremental), s", "build_seconds.proc"),
        ("build debugfs (incremental), s", "build_seconds.debugfs"),
        ("all four / one build", "all_variants_ratio"),
        ("cached build lookup, s", "cached_lookup_seconds"),
        ("boot to SSH, median s", "boot_to_ssh_median"),
        ("boot to SSH target, s", "boot_target_seconds"),
        ("archive read in guest, s", "archive_read_seconds_median"),
    ]
    names = list(results)
    print(f"{'':34}" + "".join(f"{n:>14}" for n in names))
    for label, key in rows:
        cells = []
        for n in names:
            value: Any = results[n]
            for part in key.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            cells.append(f"{value!s:>14}")
        print(f"{label:34}" + "".join(cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="x86_64")
    parser.add_argument("--cold", action="store_true", help="rebuild in a fresh cache dir")
    parser.add_argument("--boots", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("results/bench.json"))
    args = parser.parse_args(argv)
    names = arches.names() if args.arch == "all" else tuple(args.arch.split(","))
    cache = Path(tempfile.mkdtemp(prefix="kheaders-cold-")) if args.cold else default_cache_dir()
    s = settings_for(cache, names, args.out.parent.resolve())
    results = {n: bench_arch(n, cache, s, args.boots) for n in names}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cold": args.cold, "results": results}, indent=1))
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
