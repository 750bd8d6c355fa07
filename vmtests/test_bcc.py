"""A real client: bcc finds /sys/kernel/kheaders.tar.xz, extracts it and compiles against it.

bcc (Debian's python3-bpfcc) looks for <kpath>/include/linux/kconfig.h first; the guest has
no /lib/modules/<release>/build, so it falls back to the archive: it reuses
$TMPDIR/kheaders-<release> if that exists and is root-owned, else extracts the archive into
a mkdtemp() directory beside it and renames that into place (kheaders-facts.md, "Who reads
it"). Timed inside the guest: cold (no such directory: bcc extracts, then compiles) and warm
(the directory reused: compile only). For the module variant the `kheaders` fixture loads
kheaders.ko first (the guest has no /lib/modules for this kernel, so bcc's own `modprobe
kheaders` could not); bcc must then leave it loaded.

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
BCC_PROBE = """\
import json, os, shutil, sys, time
mode, program = sys.argv[1], sys.argv[2]
cache = os.path.join(os.environ.get("TMPDIR", "/tmp"), "kheaders-" + os.uname().release)
if mode == "cold":
    shutil.rmtree(cache, ignore_errors=True)
out = {"mode": mode, "cache": cache, "existed": os.path.isdir(cache)}
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
st = os.stat(cache) if os.path.isdir(cache) else None
out["cache_uid"] = st.st_uid if st else None
out["cache_has_kconfig"] = os.path.isfile(os.path.join(cache, "include/linux/kconfig.h"))
print(json.dumps(out))
"""
# Failures that are bcc's or the environment's, not the archive's: skip with the reason.
OUTSIDE = ("Failed to attach", "Operation not permitted", "LLVM", "Unable to load",
           "Failed to load BPF program")


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
        if "error" in out:
            if any(s in out["error"] for s in OUTSIDE) and out["cache_has_kconfig"]:
                pytest.skip(f"bcc failed after finding the headers: {out['error'][:300]}")
            pytest.fail(f"bcc {out['mode']}: {out['error']}\n{out['stderr']}")
    cold = [r for r in runs if r["mode"] == "cold"]
    warm = [r for r in runs if r["mode"] == "warm"]
    recorder.add(BccRecord(target=target.id, release=kernel_build.release,
                           accel=Accel(guest.accel.name),
                           cold=tuple(round(r["seconds"], 3) for r in cold),
                           warm=tuple(round(r["seconds"], 3) for r in warm),
                           import_seconds=round(runs[0]["import_seconds"], 3),
                           cache_dir=str(cold[0]["cache"])))
    for r in cold:
        assert not r["existed"], "cold run found the cache directory already there"
    for r in runs:
        assert r["cache_has_kconfig"], f"{r['cache']} lacks include/linux/kconfig.h: {r}"
        assert r["cache_uid"] == 0, "bcc reuses the directory only if it is root-owned"
        assert r["kprobes"] == 1, r
        assert r["seconds"] > 0
    for r in warm:
        assert r["existed"], "warm run did not find bcc's extracted headers"
    # bcc rmmods kheaders only if it loaded it; here the fixture did, so it stays.
    guest.expect(("test", "-f", kheaders), f"bcc's run removed {kheaders}")
