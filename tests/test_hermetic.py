"""The guard of tests/conftest.py is in force: the cache a unit test finds is the poisoned one,
for the test itself and for any subprocess it starts (pytest, the guest scripts)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kheaders_suite.catalog import arches
from kheaders_suite.catalog.paths import build_entry, default_cache_dir
from kheaders_suite.records import KernelBuild
from kheaders_suite.verify import read_archive
from tests.conftest import BROKEN_KEY, PoisonedCache

ASK_CACHE = "from kheaders_suite.catalog.paths import default_cache_dir; print(default_cache_dir())"


def test_the_cache_is_the_poisoned_one(poisoned_cache: PoisonedCache) -> None:
    cache = default_cache_dir()
    assert cache == poisoned_cache.cache
    assert Path.home() == poisoned_cache.home
    assert cache.is_relative_to(poisoned_cache.home)
    child = subprocess.run((sys.executable, "-c", ASK_CACHE), capture_output=True, text=True,
                           check=True, timeout=60)
    assert Path(child.stdout.strip()) == cache
    found = sorted((cache / "builds").glob("*/build.json"))
    assert {p.parent for p in found} == {build_entry(cache, a, "sysfs", BROKEN_KEY)
                                         for a in arches.names()}
    for record in found:
        build = KernelBuild.from_json(record.read_text())
        assert build.archive is not None
        names = {m.name for m in read_archive(build.archive.read_bytes()).members}
        assert "include/linux/sched.h" in names
        assert not any(n.startswith(f"arch/{build.srcarch}/include") for n in names), build.dir
