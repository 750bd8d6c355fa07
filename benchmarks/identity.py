"""Benchmark: what the source identity of a build key costs, cold and warm.

    .venv/bin/python benchmarks/identity.py [--plain TREE] [--git REPO] [--runs 5]

- ``--plain TREE``: a tree without .git (a copy: its per-file cache goes to a temporary
  directory). Cold: no per-file cache, every file read; warm: the cache of the run before.
- ``--git REPO``: a git repository of a kernel tree (a scratch copy: its index is rewritten).
  Cold: an index without stat data (``git read-tree HEAD``: what a copied or restored tree
  looks like to git until ``git status`` refreshes it), every file read; warm: a refreshed
  index (``git update-index --refresh``), as after a clone or a checkout.

Both are timed with the page cache warm (a first read of the tree is not timed). Prints the
median [min-max] of ``--runs`` runs of each, the files read, the machine (cores, CPU model),
the load average before and after, and the suite's commit. On a busy machine the CPU
seconds (git's included) say more than the wall seconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kheaders_suite.catalog.paths import REPO_ROOT
from kheaders_suite.source import gittree, plaintree


def machine() -> str:
    model = next((ln.split(":", 1)[1].strip() for ln in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.machine())
    return f"{os.cpu_count()} cores ({model}), {platform.machine()}"


def commit() -> str:
    done = subprocess.run(("git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"),
                          capture_output=True, text=True, timeout=60, check=False)
    return done.stdout.strip() or "unknown"


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass(frozen=True)
class Runs:
    wall: list[float]
    cpu: list[float]  # user + system, git's included: the machine may be busy


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(run: Callable[[], object], before: Callable[[], object], runs: int) -> Runs:
    wall, cpu = [], []
    for _ in range(runs):
        before()
        start, used = time.perf_counter(), cpu_seconds()
        run()
        wall.append(time.perf_counter() - start)
        cpu.append(cpu_seconds() - used)
    return Runs(wall, cpu)


def figure(runs: Runs) -> str:
    return (f"{statistics.median(runs.wall):.2f} s [{min(runs.wall):.2f}-{max(runs.wall):.2f}]"
            f" (cpu {statistics.median(runs.cpu):.2f} s)")


def bench_plain(tree: Path, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        where = plaintree.cache_file(cache, tree)
        first = plaintree.plain_identity(tree, cache)  # the page cache, not timed
        cold = timed(lambda: plaintree.plain_identity(tree, cache),
                     lambda: where.unlink(missing_ok=True), runs)
        again = plaintree.plain_identity(tree, cache)
        warm = timed(lambda: plaintree.plain_identity(tree, cache), lambda: None, runs)
        size = where.stat().st_size
    print(f"plain {tree}: {first.files} files, {first.hashed} read cold, {again.hashed} warm; "
          f"cold {figure(cold)}, warm {figure(warm)}; cache file {size / 1e6:.1f} MB")


def git(repo: Path, *args: str) -> None:
    subprocess.run(("git", "-C", str(repo), *args), check=True, capture_output=True,
                   timeout=3600)


def bench_git(repo: Path, runs: int) -> None:
    gittree.git_identity(repo)  # the page cache, not timed
    cold = timed(lambda: gittree.git_identity(repo), lambda: git(repo, "read-tree", "HEAD"),
                 runs)
    git(repo, "update-index", "-q", "--refresh")
    warm = timed(lambda: gittree.git_identity(repo), lambda: None, runs)
    print(f"git   {repo}: {gittree.git_identity(repo)}; cold (index without stat data) "
          f"{figure(cold)}, warm (refreshed index) {figure(warm)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plain", type=Path, help="a copy of a kernel tree, without .git")
    parser.add_argument("--git", type=Path, help="a scratch git repository of a kernel tree")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"source identity, median [min-max] of {args.runs} runs; {machine()}; "
          f"kheaders-suite {commit()}; load {load()}")
    if args.plain:
        bench_plain(args.plain.resolve(), args.runs)
    if args.git:
        bench_git(args.git.resolve(), args.runs)
    print(f"load after: {load()}")


if __name__ == "__main__":
    main()
