"""The disk fills during a real kernel build (issue 13): a BuildFailed that says so, and no
half-written entry taken as cached.

The build's object tree is put on a 160 MiB tmpfs (a whole tree takes ~1.3 GiB), in a cache
of the test's own whose ccache is the suite's (so the compile reaches the limit in about a
minute); the source is the session's. No VM: the fault is the build host's.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kheaders_suite.build import cache_entry
from kheaders_suite.build.kernel import BuildOptions, ensure_build, workspace
from kheaders_suite.catalog import arches, variants
from kheaders_suite.errors import BuildFailed
from kheaders_suite.plugin.options import Settings
from kheaders_suite.records import Target
from kheaders_suite.source.tree import KernelSource

LIMIT = "160m"


@pytest.fixture
def small_object_tree(tmp_path: Path, kernel_source: KernelSource, target: Target,
                      suite_settings: Settings) -> Iterator[BuildOptions]:
    """Build options whose workspace's object tree is a small tmpfs (unmounted after)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    if not arches.get(target.arch).is_native:
        pytest.skip("one arch is enough: the fault is the build host's")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "ccache").symlink_to(suite_settings.cache_dir / "ccache")
    opts = BuildOptions(cache_dir=cache, jobs=suite_settings.build_jobs)
    obj = workspace(opts, kernel_source, arches.get(target.arch)) / "obj"
    obj.mkdir(parents=True)
    subprocess.run(("mount", "-t", "tmpfs", "-o", f"size={LIMIT}", "tmpfs", str(obj)),
                   check=True)
    try:
        yield opts
    finally:
        subprocess.run(("umount", "--lazy", str(obj)), check=False)


@pytest.mark.variants("sysfs")
def test_a_build_that_fills_the_disk_says_so_and_caches_nothing(
        small_object_tree: BuildOptions, kernel_source: KernelSource, target: Target) -> None:
    arch, variant = arches.get(target.arch), variants.get("sysfs")
    with pytest.raises(BuildFailed) as failed:
        ensure_build(kernel_source, arch, variant, small_object_tree, lambda m: None)
    message = str(failed.value)
    obj = workspace(small_object_tree, kernel_source, arch) / "obj"
    assert f"MiB free on the file system of {obj})" in message, \
        f"no line naming the full object tree in: {message[-600:]}"
    entries = list((small_object_tree.cache_dir / "builds").iterdir())
    assert [cache_entry.load(e)[0] for e in entries] == [None] * len(entries), \
        "a build that failed for want of space was taken as cached"
