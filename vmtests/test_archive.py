"""The archive as every variant exposes it: place, permissions, size, bytes, format.

Ids are "<arch>-<variant>"; `pytest vmtests -k proc` runs these for the proc variant only.
"""

from __future__ import annotations

import io
import json
import tarfile

from kheaders_suite.catalog import variants
from kheaders_suite.catalog.variants import GuestStep, Variant
from kheaders_suite.inguest import source
from kheaders_suite.session.guest import Guest
from kheaders_suite.session.steps import run_step

NOBODY = "65534"
READ_ALL = ("import hashlib, sys; data = open(sys.argv[1], 'rb').read(); "
            "print(len(data), hashlib.sha256(data).hexdigest())")
DEBUGFS_MOUNTED = GuestStep(("mount", "-t", "debugfs", "debugfs", "/sys/kernel/debug"),
                            unless=("mountpoint", "-q", "/sys/kernel/debug"))


def test_archive_only_at_its_own_place(guest: Guest, kheaders: str, variant: Variant) -> None:
    # Mount debugfs so "absent from debugfs" means something for the other variants.
    run_step(guest, DEBUGFS_MOUNTED)
    guest.expect(("test", "-f", kheaders), f"no regular file at {kheaders}")
    for other in sorted(variants.archive_paths() - {variant.archive_path}):
        assert guest.run(("test", "-e", other)).rc != 0, f"archive also present at {other}"


def test_mode_0444_root_owned(guest: Guest, kheaders: str) -> None:
    stat = guest.expect(("stat", "-L", "-c", "%a %u %g %F", kheaders),
                        f"stat {kheaders} failed").stdout.split()
    assert stat[:3] == ["444", "0", "0"], f"mode/uid/gid of {kheaders}: {stat}"
    assert " ".join(stat[3:]) == "regular file"


def read_all(guest: Guest, path: str, user: str | None = None) -> tuple[int, str]:
    """Bytes and sha256 of what read() returns until EOF (not wc -c: GNU wc takes a regular
    file's size from fstat and never reads it)."""
    out = guest.expect(("python3", "-c", READ_ALL, path), f"{user or 'root'} cannot read {path}",
                       user=user).stdout.split()
    return int(out[0]), out[1]


def test_unprivileged_user_reads_it_all(guest: Guest, kheaders: str) -> None:
    size = int(guest.expect(("stat", "-L", "-c", "%s", kheaders), f"stat {kheaders}").stdout)
    as_root = read_all(guest, kheaders)
    as_nobody = read_all(guest, kheaders, user=NOBODY)
    assert as_nobody == as_root, f"nobody read {as_nobody}, root read {as_root}"
    assert as_root[0] == size, f"read {as_root[0]} bytes, st_size {size}"


def test_size_equals_bytes_read_every_way(guest: Guest, kheaders: str) -> None:
    """stat size == one large read == odd-sized reads == preads at odd offsets."""
    guest.write_bytes("/tmp/readcheck.py", source("readcheck.py"))
    out = json.loads(guest.expect(("python3", "/tmp/readcheck.py", kheaders),
                                  f"reading {kheaders} every way failed").stdout)
    assert out["st_size"] == out["len"], out
    assert out["mismatches"] == []


def test_root_cannot_write_into_it(guest: Guest, kheaders: str) -> None:
    """The blob lives in read-only kernel memory: a root write must fail cleanly (no oops;
    71cd3c636404 made debugfs blobs writable in 6.8, hence the debugfs patch's own fops)."""
    before = guest.expect(("sha256sum", kheaders), f"cannot read {kheaders}").stdout.split()[0]
    wrote = guest.run(("dd", "if=/dev/zero", f"of={kheaders}", "bs=16", "count=1",
                       "conv=notrunc"))
    assert wrote.rc != 0, f"root wrote into {kheaders}: {wrote.describe()}"
    after = guest.expect(("sha256sum", kheaders), f"cannot read {kheaders} after the write")
    assert after.stdout.split()[0] == before, "the archive changed under a refused write"


def test_is_a_tar_xz_of_headers(guest: Guest, kheaders: str) -> None:
    data = guest.read_bytes(kheaders)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:xz") as tar:
        names = tar.getnames()
    headers = [n for n in names if n.endswith(".h")]
    assert len(headers) > 1000, f"only {len(headers)} headers among {len(names)} members"
    assert any(n.endswith("include/linux/kconfig.h") for n in names)
    assert any(n.endswith("include/generated/autoconf.h") for n in names)
