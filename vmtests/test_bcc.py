"""A real client: bcc finds /sys/kernel/kheaders.tar.xz, extracts it and compiles against it.

bcc (Debian's python3-bpfcc) looks for <kpath>/include/linux/kconfig.h first; the guest has
no /lib/modules/<release>/build, so it falls back to the archive: it reuses
$TMPDIR/kheaders-<release> if that exists and is root-owned, else extracts the archive into
a mkdtemp() directory beside it and renames that into place (kheaders-facts.md, "Who reads
it"). Timed inside the guest: cold (no such directory: bcc extracts, then compiles) and warm
(the directory reused: compile only). The probe records the directory before a cold run
deletes it; a cold run must leave a fresh root-owned tree made in TMPDIR, a warm run the same
tree untouched and nothing extracted (cache_problems) -- but for Debian's bcc, which extracts
the archive again on every run (REEXTRACTING_BCC): its "warm" figures include an extraction.
Every bcc error fails the test (WHOSE says why it is the kernel's or the archive's); only a
guest that does not run bcc as root skips. For the module variant the `kheaders` fixture
loads kheaders.ko first (the guest has no /lib/modules for this kernel, so bcc's own
`modprobe kheaders` could not); bcc must then leave it loaded.

TMPDIR is a tmpfs mounted for the test. On the guest's /tmp (virtme-ng's overlayfs) the
rename fails with EXDEV; bcc 0.26 then deletes its extraction, still reports success, and
fails with "chdir(/tmp/kheaders-<release>): No such file or directory" -- the same would
happen on any /tmp where rename(2) of a directory fails (e.g. some container overlays).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kheaders_suite.plugin.options import Settings
from kheaders_suite.records import KernelBuild, Target
from kheaders_suite.report.recorder import Recorder
from kheaders_suite.report.results import Accel, BccRecord
from kheaders_suite.session.guest import Guest
from kheaders_suite.timing.runner import tmpfs_mount

pytestmark = [pytest.mark.variants("sysfs", "module"), pytest.mark.timing]
PYTHON = "/usr/bin/python3"  # Debian's, whose dist-packages hold bcc
SCRIPT = "/tmp/kheaders-bcc.py"
BCC_TMPDIR = "/run/kheaders-bcc"
PROGRAM = "int kprobe__vfs_read(void *ctx) { return 0; }"
# Guest-side: time BPF(text=...) (extract if cold + compile + load + attach), print JSON.
# [inode, mtime_ns, uid] of the cache directory before (recorded before a cold run deletes
# it), after the delete and after BPF(); TMPDIR's new entries; and how many inodes TMPDIR's
# tmpfs handed out during BPF(): a user-mounted tmpfs numbers inodes one after the other
# (mm/shmem.c, shmem_reserve_inode), so an extraction shows as thousands even when bcc's
# rename fails and it deletes what it extracted. TMPDIR's own mtime tells nothing: clang's
# driver makes and removes a temporary file there on every compile (measured: it changed on
# every warm run).
BCC_PROBE = """\
import json, os, shutil, sys, time
mode, program = sys.argv[1], sys.argv[2]
tmpdir = os.environ.get("TMPDIR", "/tmp")
cache = os.path.join(tmpdir, "kheaders-" + os.uname().release)
def stamp(path):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return [st.st_ino, st.st_mtime_ns, st.st_uid]
out = {"mode": mode, "cache": cache, "euid": os.geteuid(), "before": stamp(cache)}
if mode == "cold":
    shutil.rmtree(cache, ignore_errors=True)
out["after_delete"] = stamp(cache)
def next_inode():
    marker = os.path.join(tmpdir, ".kheaders-probe-marker")
    os.close(os.open(marker, os.O_CREAT | os.O_WRONLY, 0o600))
    inode = os.stat(marker).st_ino
    os.unlink(marker)
    return inode
entries, first_inode = set(os.listdir(tmpdir)), next_inode()
t = time.perf_counter()
from bcc import BPF
out["import_seconds"] = time.perf_counter() - t
t = time.perf_counter()
try:
    b = BPF(text=program)
except Exception as exc:
    out["error"] = f"{type(exc).__name__}: {exc}"
else:
    out["seconds"] = time.perf_counter() - t
    out["kprobes"] = b.num_open_kprobes()
    b.cleanup()
out["after"] = stamp(cache)
out["new_entries"] = sorted(set(os.listdir(tmpdir)) - entries)
out["inodes_during"] = next_inode() - first_inode - 1
out["tree_inodes"] = sum(1 + len(files) for _, _, files in os.walk(cache))
out["cache_has_kconfig"] = os.path.isfile(os.path.join(cache, "include/linux/kconfig.h"))
print(json.dumps(out))
"""
# Whose failure each of bcc 0.26's errors is (bcc/__init__.py). The guest's bcc is the
# same for every target (x86_64: the host's root; arm64: one rootfs), so what varies
# between a passing and a failing target is the kernel and its archive: all are FAILs.
WHOSE = (
    ("Failed to compile BPF module", "clang rejected the archive's headers"),
    ("LLVM ERROR", "bcc's LLVM failed on what the archive's headers gave it"),
    ("Need super-user privileges", "bpf(BPF_PROG_LOAD) gave EPERM to root: the kernel's "
                                   "lockdown or BPF config"),
    ("Failed to load BPF program", "the kernel refused a trivial program (verifier, "
                                   "kern_version from the archive's LINUX_VERSION_CODE)"),
    ("Failed to attach", "the kernel could not kprobe vfs_read (CONFIG_KPROBES, notrace)"),
)


def whose(error: str) -> str:
    """Why ``error`` fails the kernel or its archive (pure)."""
    return next((why for prefix, why in WHOSE if prefix in error), "unclassified bcc error")


def environment_problem(out: dict[str, Any]) -> str | None:
    """What in the guest's userspace, not the kernel, kept bcc from running (pure). Only
    one: bcc needs root, and the guest runs the probe as some other user."""
    if out["euid"] != 0:
        return f"the guest runs bcc as uid {out['euid']}: bcc needs root"
    return None


# A warm run may make a few inodes (clang's temporary files), an extraction one per member.
REUSED_SHARE = 100


# bcc builds that extract the archive on every run although a root-owned tree is in place:
# Debian's since 0.25.0+ds-2 ("Cleanup existing temporary kernel headers path", #1028479).
# Measured with 0.26.0+ds-1: every warm run made a whole tree's inodes in TMPDIR, threw them
# away and compiled against the tree already there (its inode unchanged). A version not
# named here is held to upstream's rule, reuse; one that differs fails until named.
REEXTRACTING_BCC = ("0.26.0+ds-1",)


def cache_problems(runs: list[dict[str, Any]], reuses: bool = True) -> list[str]:
    """What the cold and warm runs did to $TMPDIR/kheaders-<release>, against bcc's rule:
    cold extracts into a fresh directory; warm leaves that tree in place and untouched and,
    if this bcc ``reuses`` it, extracts nothing (pure)."""
    problems = []
    for i, r in enumerate(runs):
        where = f"run {i} ({r['mode']})"
        if r["after"] is None or not r["cache_has_kconfig"]:
            problems.append(f"{where}: no {r['cache']}/include/linux/kconfig.h after BPF()")
        elif r["after"][2] != 0:
            problems.append(f"{where}: {r['cache']} not root-owned: bcc would not reuse it")
        if r["mode"] == "cold":
            problems += cold_problems(where, r, runs[i - 1] if i else None)
        elif r["before"] is None:
            problems.append(f"{where}: no {r['cache']} from the cold run before it")
        else:
            problems += warm_problems(where, r, reuses)
    return problems


def warm_problems(where: str, r: dict[str, Any], reuses: bool) -> list[str]:
    problems = []
    if r["after"] != r["before"] or r["new_entries"]:
        problems.append(f"{where}: bcc replaced {r['cache']} or left a copy beside it: "
                        f"before {r['before']}, after {r['after']}, new {r['new_entries']}")
    extracted = r["inodes_during"] * REUSED_SHARE > r["tree_inodes"]
    if extracted == reuses:
        problems.append(f"{where}: {r['inodes_during']} inodes made in TMPDIR for a tree of "
                        f"{r['tree_inodes']}: this bcc "
                        + ("extracted again instead of reusing it" if reuses else
                           "did not extract again, as its version was known to"))
    return problems


def cold_problems(where: str, r: dict[str, Any], previous: dict[str, Any] | None) -> list[str]:
    problems = []
    if previous is not None and previous["after"] is not None and r["before"] is None:
        problems.append(f"{where}: {r['cache']} left by the run before was not seen")
    if r["after_delete"] is not None:
        problems.append(f"{where}: {r['cache']} still there after the delete")
    if r["inodes_during"] < r["tree_inodes"]:
        problems.append(f"{where}: {r['inodes_during']} inodes made in TMPDIR for a tree of "
                        f"{r['tree_inodes']}: bcc did not extract it there")
    leftovers = [e for e in r["new_entries"] if e != r["cache"].rpartition("/")[2]]
    if leftovers:
        problems.append(f"{where}: bcc left {leftovers} beside {r['cache']}")
    return problems


def bcc_run(guest: Guest, mode: str) -> dict[str, Any]:
    result = guest.run(("env", f"TMPDIR={BCC_TMPDIR}", PYTHON, SCRIPT, mode, PROGRAM),
                       timeout=300 * guest.scale)
    if result.rc != 0 or not result.stdout.strip():
        pytest.fail(f"bcc probe script died:\n{result.describe()}")
    out: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    out["stderr"] = result.stderr[-2000:]
    return out


def repetitions(sweep: str) -> int:
    return 3 if sweep == "full" else 2


def test_bcc_compiles_against_the_archive_cold_then_warm(
        guest: Guest, kheaders: str, target: Target, kernel_build: KernelBuild,
        suite_settings: Settings, recorder: Recorder) -> None:
    if guest.run((PYTHON, "-c", "import bcc")).rc != 0:
        pytest.skip("bcc (python3-bpfcc) not installed in the guest")
    guest.write_bytes(SCRIPT, BCC_PROBE.encode())
    modes = ["cold", "warm"] * repetitions(suite_settings.sweep)
    with tmpfs_mount(guest, BCC_TMPDIR):  # unmounted after: bcc's tree does not linger
        runs = [bcc_run(guest, mode) for mode in modes]
    for out in runs:
        problem = environment_problem(out)
        if problem is not None:
            pytest.skip(problem)
        if "error" in out:
            pytest.fail(f"bcc {out['mode']}: {whose(out['error'])}: {out['error'][:1000]}\n"
                        f"{out['stderr']}")
    cold = [r for r in runs if r["mode"] == "cold"]
    warm = [r for r in runs if r["mode"] == "warm"]
    recorder.add(BccRecord(target=target.id, release=kernel_build.release,
                           accel=Accel(guest.accel.name),
                           cold=tuple(round(r["seconds"], 3) for r in cold),
                           warm=tuple(round(r["seconds"], 3) for r in warm),
                           import_seconds=round(runs[0]["import_seconds"], 3),
                           cache_dir=str(cold[0]["cache"])))
    version = guest.run(("dpkg-query", "-W", "-f=${Version}", "python3-bpfcc")).stdout
    problems = cache_problems(runs, reuses=version.strip() not in REEXTRACTING_BCC)
    assert not problems, "\n".join(problems)
    for r in runs:
        assert r["kprobes"] == 1, r
        assert r["seconds"] > 0
    # bcc rmmods kheaders only if it loaded it; here the fixture did, so it stays.
    guest.expect(("test", "-f", kheaders), f"bcc's run removed {kheaders}")
