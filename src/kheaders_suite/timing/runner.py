"""Run the sweep inside the guest: upload compilebench.py (and the batch module it imports)
and the workload, read its JSON.

The measuring loop runs in the guest, so SSH latency is in no sample; this side only moves
files, starts one command with a bounded timeout and parses what it prints.

Scratch space is a tmpfs of its own, mounted for the run: the guest's /tmp is virtme-ng's
overlay on a tmpfs upper (lower: the host's /tmp), whose file creation costs more than plain
tmpfs and whose statvfs counts everything else in it; and on it rename(2) of a directory
fails with EXDEV, which breaks bcc's extract-then-rename (vmtests/test_bcc.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from kheaders_suite.inguest import bench_files, source
from kheaders_suite.records import KernelBuild
from kheaders_suite.session.guest import Guest
from kheaders_suite.session.steps import archive_present
from kheaders_suite.timing import preinstalled, results, sweep

GUEST_DIR = "/run/kheaders-timing"  # a tmpfs mounted for the sweep (tmpfs_mount)
# Base seconds per compile (KVM); multiplied by guest.scale. Generous: a bound, not a guess.
SECONDS_PER_COMPILE = 4.0
FIXED_SECONDS = 120.0


def timeout_for(plan: sweep.SweepPlan, scale: float) -> float:
    """A bound on the whole sweep; per-invocation runs ~3 steps a compile, hence 3x."""
    return (FIXED_SECONDS + 3 * SECONDS_PER_COMPILE * plan.compiles()) * scale


@contextmanager
def tmpfs_mount(guest: Guest, path: str) -> Iterator[str]:
    """A fresh tmpfs at ``path`` in the guest for the duration; unmounted (freed) after."""
    guest.run(("mkdir", "-p", path), check=True)
    guest.run(("mount", "-t", "tmpfs", "-o", "mode=1777", "kheaders-scratch", path), check=True)
    try:
        yield path
    finally:
        guest.run(("umount", path))


def online_cpus(guest: Guest) -> int:
    """CPUs the guest kernel brought up: what parallelism can use (may be fewer than asked
    for, e.g. an x86 kernel that cannot enumerate the others)."""
    return int(guest.run(("getconf", "_NPROCESSORS_ONLN"), check=True).stdout.strip())


# The host's python3-clang (pure Python, Debian: /usr/lib/python3/dist-packages/clang), sent
# beside frontend.py: the arm64 root filesystem carries libclang1 only.
HOST_CINDEX = "/usr/lib/python3/dist-packages/clang"
FRONTEND = f"{GUEST_DIR}/frontend.py"


def upload_frontend(guest: Guest, clang_args: list[str]) -> None:
    guest.run(("mkdir", "-p", f"{GUEST_DIR}/clang"), check=True)
    guest.write_bytes(FRONTEND, source("frontend.py"))
    for path in sorted(Path(HOST_CINDEX).glob("*.py")):
        guest.write_bytes(f"{GUEST_DIR}/clang/{path.name}", path.read_bytes())
    guest.write_bytes(f"{GUEST_DIR}/clang-args.json", json.dumps(clang_args).encode())


def upload_bench(guest: Guest) -> None:
    """compilebench.py and the module it imports, where inguest.BENCH_FILES puts them."""
    files = bench_files()
    dirs = sorted({str(PurePosixPath(GUEST_DIR, rel).parent) for rel in files})
    guest.run(("mkdir", "-p", *dirs), check=True)
    for rel, data in files.items():
        guest.write_bytes(f"{GUEST_DIR}/{rel}", data)


def upload(guest: Guest, plan: sweep.SweepPlan, clang_args: list[str]) -> tuple[str, ...]:
    guest.run(("mkdir", "-p", f"{GUEST_DIR}/src"), check=True)
    upload_bench(guest)
    if plan.frontend:
        upload_frontend(guest, clang_args)
    paths = []
    for path in plan.files:
        dest = f"{GUEST_DIR}/src/{path.name}"
        guest.write_bytes(dest, path.read_bytes())
        paths.append(dest)
    return tuple(paths)


def run(guest: Guest, plan: sweep.SweepPlan, archive: str, preinstalled: str) -> dict[str, Any]:
    """The guest script's raw output for this plan (raises GuestCommandFailed if it dies).
    ``preinstalled`` is the host-extracted tree as the guest sees it (Guest.guest_path)."""
    load_before = os.getloadavg()[0]
    clang_args = sweep.frontend_args(guest.build.srcarch, guest.build.objtree_headers)
    sources = upload(guest, plan, clang_args)
    config = sweep.guest_config(plan, workdir=f"{GUEST_DIR}/work", archive=archive,
                                preinstalled=preinstalled, sources=sources,
                                srcarch=guest.build.srcarch,
                                frontend=FRONTEND if plan.frontend else "",
                                headers_root=guest.build.objtree_headers)
    guest.write_bytes(f"{GUEST_DIR}/config.json", json.dumps(config).encode())
    result = guest.run(("python3", f"{GUEST_DIR}/compilebench.py", f"{GUEST_DIR}/config.json"),
                       timeout=timeout_for(plan, guest.scale), check=True)
    raw: dict[str, Any] = json.loads(result.stdout)
    raw["ssh_seconds"] = round(result.duration, 2)
    if plan.resident_ns and sweep.FRONTEND in raw["environment"].get("compiler_versions", {}):
        raw["resident"] = resident(guest, plan, archive, preinstalled, sources, clang_args)
    # The host's load says whether "idle machine" figures are what they claim to be.
    raw["environment"]["host_loadavg_before"] = load_before
    raw["environment"]["host_loadavg_after"] = os.getloadavg()[0]
    return raw


def resident(guest: Guest, plan: sweep.SweepPlan, archive: str, preinstalled: str,
             sources: tuple[str, ...], clang_args: list[str]) -> dict[str, Any]:
    """frontend.py's headers-already-in-memory comparison (claims.memory_not_faster_than_tmpfs:
    are headers already in memory faster to parse than the same headers on tmpfs?)."""
    config = sweep.resident_config(plan, workdir=f"{GUEST_DIR}/work", archive=archive,
                                   preinstalled=preinstalled, sources=sources, args=clang_args)
    guest.write_bytes(f"{GUEST_DIR}/resident.json", json.dumps(config).encode())
    bound = (FIXED_SECONDS + SECONDS_PER_COMPILE * plan.resident_parses()) * guest.scale
    result = guest.run(("python3", FRONTEND, "resident", f"{GUEST_DIR}/resident.json"),
                       timeout=bound, check=True)
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def measure(guest: Guest, build: KernelBuild, plan: sweep.SweepPlan, *, guest_cpus: int,
            online: int) -> dict[str, Any]:
    """One sweep against ``build``'s archive, made present as its variant does (setup and
    teardown steps), on a scratch tmpfs: the result document (results.document)."""
    tree = preinstalled.ensure(build)
    with archive_present(guest, build) as archive, tmpfs_mount(guest, GUEST_DIR):
        raw = run(guest, plan, archive, guest.guest_path(tree))
    return results.document(raw, arch=build.arch, variant=build.variant, release=build.release,
                            accel=guest.accel.name, guest_cpus=guest_cpus, online_cpus=online,
                            plan=plan, archive=archive, preinstalled=guest.guest_path(tree))
