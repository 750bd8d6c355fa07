"""Unit tests are hermetic: they never see this machine's build cache, home or the suite's
environment switches.

Every run of tests/ has HOME, XDG_CACHE_HOME and KHEADERS_SUITE_CACHE pointed at a temporary
"poisoned" cache holding a build of a broken tree: its archive lacks arch/$SRCARCH/include/, as
on a tree whose gen_kheaders.sh drops it. A test that still picks "whatever build the cache
has" gets that build and fails the same way on every machine, instead of passing, failing or
skipping by what the user happened to build before. Checks that need a real archive live in
vmtests/test_real_archive.py, against the session's own build.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kheaders_suite.build.inputs import build_key
from kheaders_suite.catalog import arches
from kheaders_suite.catalog.arches.arch import Arch
from kheaders_suite.catalog.paths import build_entry
from kheaders_suite.records import KernelBuild
from kheaders_suite.verify.archive import read_archive
from tests.synthetic.build import SyntheticBuild, make_synthetic_build
from tests.synthetic.tarball import write_archive

BROKEN_ORIGIN = "poisoned cache: a tree whose gen_kheaders.sh drops arch/$SRCARCH/include/"
BROKEN_KEY = build_key({"tree": BROKEN_ORIGIN})
# The suite's own switches (settings.py, paths.py): a unit test must not depend on them.
SWITCHES = ("CI", "XDG_CACHE_HOME")
SWITCH_PREFIX = "KHEADERS_"


@dataclass(frozen=True)
class PoisonedCache:
    home: Path  # $HOME during tests/
    cache: Path  # what default_cache_dir() resolves to during tests/
    builds: tuple[KernelBuild, ...]  # one broken sysfs build per arch, as ensure_build lays out


def write_broken_build(cache: Path, arch: Arch, tree: SyntheticBuild) -> KernelBuild:
    """builds/<arch>-sysfs-<key>/ as ensure_build leaves it, but the archive has no arch/."""
    out = build_entry(cache, arch.name, "sysfs", BROKEN_KEY)
    out.mkdir(parents=True)
    members = read_archive(tree.archive).members
    archive = out / "kheaders_data.tar.xz"
    archive.write_bytes(write_archive(m for m in members if m.name.split("/")[0] != "arch"))
    (out / "config").write_text(tree.dot_config)
    image, log = out / Path(arch.image).name, out / "build.log"
    image.touch()
    log.write_text("fake: the build of a broken tree\n")
    build = KernelBuild(key=BROKEN_KEY, arch=arch.name, variant="sysfs", release=tree.release,
                        dir=out, image=image, config=out / "config", archive=archive,
                        modroot=None, source_dir=tree.source_dir, srcarch=arch.srcarch,
                        objtree_headers=tree.objtree_headers, log=log, seconds=0.0,
                        source_origin=BROKEN_ORIGIN)
    (out / "build.json").write_text(build.to_json())
    return build


# Package scope, not session: the guard ends with tests/, so a `pytest tests vmtests` run
# gives the VM tests their real HOME (virtme-ng's SSH keys live there) and cache back.
@pytest.fixture(scope="package", autouse=True)
def poisoned_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PoisonedCache]:
    home = tmp_path_factory.mktemp("poisoned-home")
    cache = home / ".cache" / "kheaders-suite"
    tree = make_synthetic_build(cache / "sources" / "broken-tree")
    builds = tuple(write_broken_build(cache, arches.get(n), tree) for n in arches.names())
    with pytest.MonkeyPatch.context() as mp:
        for name in (*SWITCHES, *(n for n in os.environ if n.startswith(SWITCH_PREFIX))):
            mp.delenv(name, raising=False)
        mp.setenv("HOME", str(home))
        mp.setenv("KHEADERS_SUITE_CACHE", str(cache))
        yield PoisonedCache(home, cache, builds)
