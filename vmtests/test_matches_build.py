"""The archive in the running kernel is exactly what the build produced (issue 4).

Each check is one test so a failure names it; every result also goes into the run's JSON and
the terminal summary prints one line per check.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kheaders_suite.build.kernel import BUILD_TIMESTAMP
from kheaders_suite.plugin.boots import BootState
from kheaders_suite.records import KernelBuild, target_id
from kheaders_suite.report.recorder import Recorder
from kheaders_suite.report.results import CheckRecord
from kheaders_suite.session.guest import Guest
from kheaders_suite.session.steps import served_archive
from kheaders_suite.verify import (
    DEFAULT_STRUCTS,
    CheckResult,
    cflags,
    check_archive,
    compare_layouts,
    content,
    parse_btf,
    parse_probe,
    probe_command,
    probe_source,
    read_archive,
)
from kheaders_suite.verify.metadata import timestamp_epoch

GUEST_ROOT = "/tmp/kheaders"
Results = dict[str, CheckResult]


@pytest.fixture(scope="session")
def guest_archive(guest_boot: BootState, kernel_build: KernelBuild) -> bytes:
    """The archive's bytes as the running kernel serves them (read once per target)."""
    guest = guest_boot.guest("guest_archive")
    with guest_boot.archive("guest_archive", guest, kernel_build) as path:
        return served_archive(guest, path)


@pytest.fixture(scope="session")
def archive_results(guest_boot: BootState, guest_archive: bytes, kernel_build: KernelBuild,
                    recorder: Recorder) -> Results:
    guest = guest_boot.guest("archive_results")
    uname_r = guest.run(("uname", "-r"), check=True).stdout.strip()
    results = check_archive(guest_archive, kernel_build, uname_r,
                            mtime=timestamp_epoch(BUILD_TIMESTAMP))
    target = target_id(kernel_build.arch, kernel_build.variant)
    for r in results:
        recorder.add(CheckRecord(target=target, check=r.name, ok=r.ok, summary=r.summary,
                                 details=tuple(r.details[:50])))
    return {r.name: r for r in results}


@pytest.mark.parametrize(
    "check", ["identity", "member_list", "content", "config", "release", "metadata"])
def test_archive_check(archive_results: Results, check: str) -> None:
    """identity (bytes == the build's), member list, content, config, release, metadata."""
    result = archive_results[check]
    assert result.ok, result.render()


def test_layouts_agree_with_btf(guest: Guest, guest_archive: bytes, kernel_build: KernelBuild,
                                recorder: Recorder) -> None:
    """Structures as the archive's headers lay them out == as the running kernel's BTF has them."""
    guest.run(("rm", "-rf", GUEST_ROOT), check=True)
    guest.run(("mkdir", "-p", GUEST_ROOT), check=True)
    guest.write_bytes(f"{GUEST_ROOT}.tar.xz", guest_archive)
    guest.expect(("tar", "-xJf", f"{GUEST_ROOT}.tar.xz", "-C", GUEST_ROOT),
                 "the archive does not extract")
    guest.write_bytes("/tmp/probe.c", probe_source().encode())
    dialect = cflags.of_tree(kernel_build.objtree_headers)
    guest.expect(probe_command("gcc", GUEST_ROOT, kernel_build.srcarch, "/tmp/probe.c",
                               "/tmp/probe.s", dialect), "the layout probe does not compile "
                 "against the archive's headers")
    probed = parse_probe(guest.read_bytes("/tmp/probe.s").decode())
    btf = parse_btf(guest.read_bytes("/sys/kernel/btf/vmlinux"))
    result = compare_layouts(probed, btf, DEFAULT_STRUCTS)
    recorder.add(CheckRecord(target=target_id(kernel_build.arch, kernel_build.variant),
                             check=result.name, ok=result.ok, summary=result.summary,
                             details=tuple(result.details[:50])))
    assert result.ok, result.render()


def test_edited_header_after_build_is_caught(guest_archive: bytes, kernel_build: KernelBuild,
                                             tmp_path: Path) -> None:
    """Real-kernel tamper: a source header edited after the build no longer matches."""
    victim = "include/linux/sched.h"
    tree = tmp_path / "src"
    # Real copies, not hard links: gen_kheaders.sh hashes `ls -l` of the source headers, link
    # counts included, so a hard-linked copy made here would make another worker's
    # incremental build regenerate its archive (test_incremental.py's strict xfail XPASSed).
    for sub in ("include", f"arch/{kernel_build.srcarch}/include"):
        shutil.copytree(kernel_build.source_dir / sub, tree / sub)
    original = (kernel_build.source_dir / victim).read_bytes()
    (tree / victim).write_bytes(original.replace(b"struct task_struct {",
                                                 b"struct task_struct {\n\tint edited;", 1))
    result = content(read_archive(guest_archive), tree, kernel_build.objtree_headers)
    assert not result.ok, f"an edit to {victim} went unnoticed"
    assert victim in result.render()

