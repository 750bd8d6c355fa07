"""A small fake kernel build whose archive the kernel's own rules made, and what its guest says.

``make_synthetic_build(tmp)`` writes tree.py's trees, has make and the vendored
gen_kheaders.sh of the chosen kernel pack them (kbuild.py), and records what a guest would
report: the archive's bytes, ``uname -r``, the layout probe compiled against the archive and
the kernel's BTF (probe.py). tests/ and the VM suite use it as the known-good input the tamper
catalogue (tamper.py) breaks one way at a time.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from kheaders_suite.build.kernel import BUILD_TIMESTAMP
from kheaders_suite.records import KernelBuild
from kheaders_suite.source.tree import KernelVersion
from kheaders_suite.verify.metadata import timestamp_epoch
from tests.synthetic.kbuild import KERNELS, pack
from tests.synthetic.probe import compile_probe, synthetic_btf
from tests.synthetic.tree import (
    CONFIG,
    SOURCE_FILES,
    SOURCE_LINKS,
    SRCARCH,
    UTSVERSION,
    objtree_files,
    release_of,
    write_tree,
)

VERSION = KernelVersion(6, 12, 0)
VERSIONS = tuple(KernelVersion(v.major, v.minor, 0) for v in KERNELS)


@dataclass(frozen=True)
class SyntheticBuild:
    """A fake build and what its guest reports; tamper.py returns altered copies."""

    root: Path
    source_dir: Path
    objtree_headers: Path  # the object tree itself: its include dirs hold only headers
    srcarch: str
    version: KernelVersion
    release: str
    dot_config: str
    archive: bytes  # kernel/kheaders_data.tar.xz as the build wrote it
    guest_archive: bytes  # /sys/kernel/kheaders.tar.xz as the guest serves it
    uname_r: str
    mtime: int
    probe_output: str  # the probe's gcc -S output against guest_archive
    btf: bytes  # the running kernel's /sys/kernel/btf/vmlinux

    def kernel_build(self) -> KernelBuild:
        """A KernelBuild record for this fake build (files written under ``root``)."""
        out = self.root / "build"
        out.mkdir(parents=True, exist_ok=True)
        (out / "config").write_text(self.dot_config)
        (out / "kheaders_data.tar.xz").write_bytes(self.archive)
        for name in ("bzImage", "build.log"):
            (out / name).touch()
        return KernelBuild(key="synthetic", arch="x86_64", variant="synthetic",
                           release=self.release, dir=out, image=out / "bzImage",
                           config=out / "config", archive=out / "kheaders_data.tar.xz",
                           modroot=None, source_dir=self.source_dir, srcarch=self.srcarch,
                           objtree_headers=self.objtree_headers, log=out / "build.log",
                           seconds=0.0, source_origin="synthetic")


def repacked(build: SyntheticBuild) -> SyntheticBuild:
    """``build`` after its trees changed: the archive made again by the kernel's rules and
    served as is, the probe compiled again against it; the kernel (its BTF) stays."""
    archive = pack(build.version, build.source_dir, build.objtree_headers, build.srcarch,
                   BUILD_TIMESTAMP)
    probe_dir = build.root / "probe"
    shutil.rmtree(probe_dir, ignore_errors=True)
    probe = compile_probe(archive, probe_dir, build.srcarch)
    return replace(build, archive=archive, guest_archive=archive, probe_output=probe)


def make_synthetic_build(tmp: Path, version: KernelVersion = VERSION,
                         with_utsversion: bool = True) -> SyntheticBuild:
    """Write the fake trees under ``tmp`` and have ``version``'s rules pack them.

    ``version`` must be one of VERSIONS (a kernel whose script tests/data holds).
    """
    release = release_of(version)
    source, objtree = tmp / "src", tmp / "objtree"
    write_tree(source, SOURCE_FILES, SOURCE_LINKS)
    generated = objtree_files(CONFIG, version, release)
    if not with_utsversion:
        generated.pop(UTSVERSION)
    write_tree(objtree, generated)
    unpacked = SyntheticBuild(tmp, source, objtree, SRCARCH, version, release, CONFIG, b"",
                              b"", release, timestamp_epoch(BUILD_TIMESTAMP), "",
                              synthetic_btf())
    return repacked(unpacked)
