"""Real-kernel cases: change one thing, rebuild incrementally, does the archive follow?

Three changes, each with what the kernel's version must do:

- a config-only change (below): stale since 5.13, and still stale after the 6.17 rewrite
  (measured on 7.3.4: the new make dependencies leave autoconf.h out);
- a same-size header edit within the minute of the header's previous mtime: before 6.17 the
  md5 of `ls -l` (minute granularity) misses it; since 626c54af3576 (6.17) make's own
  dependencies (the header newer than the archive) regenerate it;
- KBUILD_BUILD_TIMESTAMP alone: before 6.17 nothing in the md5 sees it (the members keep the
  old mtime); since 6.17 it is on gen_kheaders.sh's command line, so if_changed regenerates.

Until 6.17 (626c54af3576) gen_kheaders.sh regenerates the archive only when an md5 of
`ls -l` over the headers changes, and leaves include/generated/autoconf.h out of it, trusting
include/config/* stamps to catch config changes; since 0e0345b77ac4 (5.13) those stamps are no
longer *.h files, so a config-only change should leave a stale autoconf.h in the archive.

This builds with upstream's logic (no harness workaround) and the flipped option; the config
check must then see the new value. The md5 is of `ls -l`, link counts included: anything
that hard-links the source headers between the two builds (another worker's scratch copy)
regenerates the archive and hides the bug, so the suite never hard-links them mid-session.
On the kernels the analysis says are affected the test is a strict xfail: if it ever passes
there, the analysis (or the kernel) changed.

Each step makes kernel/kheaders.o alone (build.build_archive_only): make's prepare writes the
new autoconf.h and gen_kheaders.sh decides about the archive exactly as in a full build, but
without relinking vmlinux, BTF and modules (~25 s a step instead of ~90 s under TCG's host).
"""

from __future__ import annotations

import dataclasses
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kheaders_suite.build.kernel import BUILD_TIMESTAMP, BuildOptions, build_archive_only, workspace
from kheaders_suite.catalog import arches, variants
from kheaders_suite.catalog.arches.arch import Arch
from kheaders_suite.host.locks import file_lock
from kheaders_suite.plugin.context import progress
from kheaders_suite.plugin.options import Settings, build_options
from kheaders_suite.records import KernelBuild, Target
from kheaders_suite.source import worktree
from kheaders_suite.source.tree import KernelSource, KernelVersion
from kheaders_suite.verify import config, read_archive

# Build logic, not arch logic: one variant, and only where it builds natively (no cross cost).
pytestmark = pytest.mark.variants("sysfs")
STAMPS_NOT_HEADERS = KernelVersion(5, 13, 0)  # 0e0345b77ac4
CONFIG_STALE_BEFORE_REWRITE = (
    "kheaders.md5 leaves autoconf.h out and include/config stamps are not *.h since "
    "0e0345b77ac4 (5.13): a config-only change keeps a stale archive")
# Measured on Debian's 7.3.4: the rewrite did not fix it. gen_kheaders.sh writes the archive's
# make dependencies from the file lists but drops include/generated/autoconf.h from them (its
# sed), and nothing else a config change touches is a dependency.
CONFIG_STALE_SINCE_REWRITE = (
    "626c54af3576 (6.17) makes the archive depend on every listed header except "
    "include/generated/autoconf.h, which its gen_kheaders.sh leaves out of the depfile: a "
    "config-only change still keeps a stale archive")
REWRITE = KernelVersion(6, 17, 0)  # 626c54af3576: make dependencies instead of an ls -l md5
# A header nothing in make's prepare stage includes (sound, not in the suite's config): an
# edit of it changes the archive and nothing else, so only gen_kheaders.sh's own decision
# can regenerate the archive.
HEADER = "include/sound/ac97_codec.h"
EDIT = ("#define\tAC97_BUS_MAX_DEVICES\t4", "#define\tAC97_BUS_MAX_DEVICES\t5")
NEW_TIMESTAMP = "2020-02-02 00:00:00 UTC"


@pytest.fixture(autouse=True)
def _native_only(target: Target) -> None:
    if not arches.get(target.arch).is_native:
        pytest.skip(f"{target.arch}: kheaders' incremental logic is arch-independent; "
                    "checked on the host's arch")


def options(tmp: Path, s: Settings, flip: bool, force_regen: bool,
            timestamp: str = BUILD_TIMESTAMP) -> BuildOptions:
    """The suite's options (its flavor too: the steps share the session's object tree, made
    ready by its build), plus LOG_BUF_SHIFT 17 -> 16 (a config change, no header edited)."""
    extra = s.extra_fragments
    if flip:
        fragment = tmp / "flip.config"
        fragment.write_text("CONFIG_LOG_BUF_SHIFT=16\n")
        extra = (*extra, fragment)
    return dataclasses.replace(build_options(s), extra_fragments=extra,
                               force_kheaders_regen=force_regen, timestamp=timestamp)


def settle(source: KernelSource, arch: Arch, opts: BuildOptions) -> None:
    """Two syncs of the work copy before an experiment's first step. A file an earlier test
    edited or patched is restored by the first sync as a touched private copy and relinked to
    the source by the second (it differs in mtime until then); each changes its `ls -l`
    line, which before 6.17 regenerates the archive by itself (measured: it turned the
    timestamp experiment into an XPASS on 6.12). After two, the work copy stays put."""
    ws = workspace(opts, source, arch)
    with file_lock(ws.with_suffix(".lock"), timeout=opts.timeout):
        for _ in range(2):
            worktree.sync(source.path, ws / "src", source.version, None)


def stale_before_rewrite(request: pytest.FixtureRequest, version: KernelVersion,
                         why: str) -> None:
    if version < REWRITE:
        request.applymarker(pytest.mark.xfail(strict=True, raises=AssertionError,
                                              reason=f"{version}: {why}"))


def test_archive_follows_a_config_only_change(
    kernel_build: KernelBuild, kernel_source: KernelSource, target: Target,
    suite_settings: Settings, pytestconfig: pytest.Config, tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    if kernel_source.version >= STAMPS_NOT_HEADERS:
        # raises: only the stale archive is expected; a build that breaks is an ERROR.
        request.applymarker(pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
            f"{kernel_source.version}: "
            + (CONFIG_STALE_BEFORE_REWRITE if kernel_source.version < REWRITE
               else CONFIG_STALE_SINCE_REWRITE))))
    arch, variant = arches.get(target.arch), variants.get(target.variant)
    say = lambda m: progress(pytestconfig, m)  # noqa: E731
    # A known starting point: the unflipped config with its own archive, then the flip with
    # upstream's incremental logic. Both uncached: the sequence is the experiment.
    build_archive_only(kernel_source, arch, variant,
                       options(tmp_path, suite_settings, flip=False, force_regen=True), say,
                       tmp_path / "before")
    flipped = build_archive_only(kernel_source, arch, variant,
                                 options(tmp_path, suite_settings, flip=True, force_regen=False),
                                 say, tmp_path / "after")
    result = config(read_archive(flipped.archive.read_bytes()), flipped.config.read_text())
    assert result.ok, result.render()


def test_harness_regenerates_the_archive_after_a_config_change(
    kernel_build: KernelBuild, kernel_source: KernelSource, target: Target,
    suite_settings: Settings, pytestconfig: pytest.Config, tmp_path: Path,
) -> None:
    """With the harness's workaround (the default for every suite build) it must follow."""
    flipped = build_archive_only(kernel_source, arches.get(target.arch),
                                 variants.get(target.variant),
                                 options(tmp_path, suite_settings, flip=True, force_regen=True),
                                 lambda m: progress(pytestconfig, m), tmp_path / "after")
    result = config(read_archive(flipped.archive.read_bytes()), flipped.config.read_text())
    assert result.ok, result.render()


def test_archive_follows_a_same_size_header_edit_within_the_minute(
    kernel_build: KernelBuild, kernel_source: KernelSource, target: Target,
    suite_settings: Settings, pytestconfig: pytest.Config, tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """The mtimes are set, not waited for: the header at minute M:00, the archive made at
    M:10, the edit at M:20. `ls -l` shows M for both header versions; make sees the header
    newer than the archive. M is two minutes ago, so ls prints it as a recent time."""
    stale_before_rewrite(request, kernel_source.version, (
        "the ls -l md5 has minute granularity: a same-size edit in the same minute keeps the "
        "old archive (fixed by 626c54af3576, 6.17)"))
    arch, variant = arches.get(target.arch), variants.get(target.variant)
    say = lambda m: progress(pytestconfig, m)  # noqa: E731
    minute = (int(time.time()) // 60 - 2) * 60
    original = (kernel_source.path / HEADER).read_text()
    assert EDIT[0] in original, f"{HEADER} no longer has {EDIT[0]!r}: pick another line"
    edited = original.replace(EDIT[0], EDIT[1], 1)
    assert len(edited.encode()) == len(original.encode())

    def at_minute(src: Path) -> None:
        worktree.edit_file(src, HEADER, original, mtime_ns=minute * 10**9)

    def edit(src: Path) -> None:
        archive = src.parent / "obj/kernel/kheaders_data.tar.xz"
        os.utime(archive, ns=((minute + 10) * 10**9,) * 2)
        worktree.edit_file(src, HEADER, edited, mtime_ns=(minute + 20) * 10**9)

    opts = options(tmp_path, suite_settings, flip=False, force_regen=True)
    settle(kernel_source, arch, opts)
    build_archive_only(kernel_source, arch, variant, opts, say, tmp_path / "before",
                       edit=at_minute)
    after = build_archive_only(kernel_source, arch, variant,
                               options(tmp_path, suite_settings, flip=False, force_regen=False),
                               say, tmp_path / "after", edit=edit)
    member = read_archive(after.archive.read_bytes()).get(HEADER)
    assert member is not None, f"{HEADER} not in the archive"
    assert EDIT[1].encode() in member.data, f"the archive kept the old {HEADER}: {EDIT[0]!r}"


def test_archive_follows_a_build_timestamp_change_alone(
    kernel_build: KernelBuild, kernel_source: KernelSource, target: Target,
    suite_settings: Settings, pytestconfig: pytest.Config, tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    stale_before_rewrite(request, kernel_source.version, (
        "KBUILD_BUILD_TIMESTAMP is not in the ls -l md5: the members keep the previous "
        "build's mtime (since 626c54af3576, 6.17, the script's command line has it)"))
    arch, variant = arches.get(target.arch), variants.get(target.variant)
    say = lambda m: progress(pytestconfig, m)  # noqa: E731
    opts = options(tmp_path, suite_settings, flip=False, force_regen=True)
    settle(kernel_source, arch, opts)
    build_archive_only(kernel_source, arch, variant, opts, say, tmp_path / "before")
    after = build_archive_only(
        kernel_source, arch, variant,
        options(tmp_path, suite_settings, flip=False, force_regen=False,
                timestamp=NEW_TIMESTAMP), say, tmp_path / "after")
    want = int(datetime.strptime(NEW_TIMESTAMP, "%Y-%m-%d %H:%M:%S %Z")
               .replace(tzinfo=UTC).timestamp())
    mtimes = {m.mtime for m in read_archive(after.archive.read_bytes()).members}
    assert mtimes == {want}, f"member mtimes {sorted(mtimes)[:3]}, want {want} ({NEW_TIMESTAMP})"
