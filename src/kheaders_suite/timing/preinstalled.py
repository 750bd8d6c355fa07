"""The "pre-installed" floor: the archive extracted once on the host, seen by the guest.

<build.dir>/headers-preinstalled/ is visible in the guest (the x86_64 guest shares the host's
root, same path; a foreign-arch guest gets build.dir as a read-only shared dir, at the path
Guest.guest_path gives), so
compiles against it read headers from a filesystem with no archive involved, as with a
distribution's linux-headers package. Created idempotently under a lock: xdist workers and
later runs share it; a stamp holding the archive's sha256 says it is complete and current.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from kheaders_suite.errors import InfraError
from kheaders_suite.host.digest import file_sha256
from kheaders_suite.host.extract import extract_tree
from kheaders_suite.host.locks import file_lock
from kheaders_suite.records import KernelBuild, target_id

DIRNAME = "headers-preinstalled"
STAMP = ".kheaders-sha256"
LOCK_TIMEOUT = 600.0


def extract(archive: Path, dest: Path) -> Path:
    """Extract ``archive`` into ``dest`` once; a matching stamp means it is already there."""
    want = file_sha256(archive)
    stamp = dest / STAMP
    if stamp.is_file() and stamp.read_text() == want:
        return dest
    with file_lock(dest.with_name(dest.name + ".lock"), LOCK_TIMEOUT):
        if stamp.is_file() and stamp.read_text() == want:
            return dest
        partial = dest.with_name(dest.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        extract_tree(archive, partial)
        (partial / STAMP).write_text(want)
        shutil.rmtree(dest, ignore_errors=True)
        partial.rename(dest)
    return dest


def ensure(build: KernelBuild) -> Path:
    if build.archive is None:
        raise InfraError(f"{target_id(build.arch, build.variant)}: build has no kheaders archive")
    return extract(build.archive, build.dir / DIRNAME)
