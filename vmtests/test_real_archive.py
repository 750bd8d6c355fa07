"""The suite's own build's archive, checked on the host (no guest): every archive check on
the bytes the kernel image carries, and the timing workload compiling warning-free against it.

These used to be unit tests that picked whatever build they found in the user's cache (or
$KHEADERS_REAL_BUILD): on a machine that had built another tree (one whose gen_kheaders.sh
drops arch/$SRCARCH/include/) they failed for that tree, and on a cold CI run they skipped.
Here the build is the session's ``kernel_build``, so they run on every CI run and every
message names the build. sysfs only: the archive's content does not depend on where the
kernel exposes it, and CI builds sysfs for every arch anyway.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from kheaders_suite.build.kernel import BUILD_TIMESTAMP
from kheaders_suite.catalog import arches
from kheaders_suite.records import KernelBuild
from kheaders_suite.timing import preinstalled, workload
from kheaders_suite.verify import cflags
from kheaders_suite.verify.image import read_image
from kheaders_suite.verify.metadata import timestamp_epoch
from kheaders_suite.verify.runner import check_archive, report

pytestmark = pytest.mark.variants("sysfs")
COMPILE_TIMEOUT = 300.0


def named(build: KernelBuild) -> str:
    """Which build a message is about: its directory names arch, variant and key."""
    return f"build {build.dir} (key {build.key}, {build.release}, source {build.source_dir})"


def archive_of(build: KernelBuild) -> Path:
    __tracebackhide__ = True
    assert build.archive is not None, f"{named(build)}: no kheaders archive (IKHEADERS off?)"
    return build.archive


def test_every_archive_check_passes(kernel_build: KernelBuild) -> None:
    """Every archive check on the bytes the kernel image embeds (verify/image.py), against
    the build's own trees (~1 s per 7000 members): identity is the build's archive file ==
    those bytes, release is the archive's utsrelease.h == the image's linux_banner, and the
    build's recorded release must be the banner's too."""
    archive_of(kernel_build)
    seen = read_image(kernel_build.arch, kernel_build.image, kernel_build.dir / "System.map")
    assert kernel_build.release == seen.release, \
        f"{named(kernel_build)}: the image's banner says {seen.release}"
    results = check_archive(seen.archive, kernel_build, seen.release,
                            mtime=timestamp_epoch(BUILD_TIMESTAMP))
    assert all(r.ok for r in results), f"{named(kernel_build)}:\n{report(results)}"


def test_workload_compiles_warning_free(kernel_build: KernelBuild, tmp_path: Path) -> None:
    """Every workload file, with the flags the guest uses, against the extracted archive and
    with the compiler that built the kernel (native gcc, or the cross gcc for a foreign arch:
    the build needed it, so it is installed)."""
    arch = arches.get(kernel_build.arch)
    cc = f"{arch.cross_prefix()}gcc"
    assert shutil.which(cc) is not None, f"{named(kernel_build)}: {cc} not found on the host"
    root = preinstalled.extract(archive_of(kernel_build), tmp_path / "headers")
    template = workload.gcc_template(arch.srcarch, cc, cflags.of_tree(root))
    problems = []
    for src in workload.all_sources():
        argv = workload.fill(template, str(root), str(src), str(tmp_path / f"{src.stem}.o"))
        done = subprocess.run(argv, capture_output=True, text=True, timeout=COMPILE_TIMEOUT)
        if done.returncode != 0 or "warning" in done.stderr:
            problems.append(f"{src.name} (exit {done.returncode}):\n{done.stderr[-3000:]}")
    assert not problems, f"{named(kernel_build)}, {cc}:\n" + "\n".join(problems)
