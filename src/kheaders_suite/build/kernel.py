"""Step 3: build a kernel for (source, arch, variant), keyed and cached outside the repo.

Layout under the cache dir:

    work/<arch>-<tree>/src   work copy of the source (worktree.py), patched per variant
    work/<arch>-<tree>/obj   the one object tree all variants of this arch share
    builds/<arch>-<variant>-<key>/  what a test needs, copied out: image, .config, the
                             archive, installed modules, generated headers, build.json, build.log

A key covers everything that decides the output (harness version, source identity, fragments,
patches, compiler, timestamp), so a second run with the same key does not build at all, and
xdist workers wanting the same key wait on one lock and share the result.

Two locks: the entry's (``builds/<entry>.lock``), since the key is of the content and two
checkouts at two paths want one entry; then the workspace's (``work/<arch>-<tree>.lock``),
for the work copy and object tree of one path, which every variant shares. Always in that
order, so that no two builds each hold the lock the other waits for.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from kheaders_suite import HARNESS_VERSION
from kheaders_suite.build import archive_inputs, cache_entry, kconfig, sandbox
from kheaders_suite.build.inputs import build_key, check_config, compiler_version, fragments_for
from kheaders_suite.build.make import Runner, compiler_command, make_env
from kheaders_suite.build.steps import expected_steps, remember_steps
from kheaders_suite.catalog.arches.arch import Arch
from kheaders_suite.catalog.paths import PATCHES_DIR, build_entry
from kheaders_suite.catalog.variants import Variant
from kheaders_suite.errors import BuildFailed
from kheaders_suite.host.locks import file_lock
from kheaders_suite.records import KernelBuild, Progress, target_id
from kheaders_suite.source import worktree
from kheaders_suite.source.tree import KernelSource

# Fixed so that two builds of one key give the same bytes (gen_kheaders.sh uses it as the
# archive's mtime; UTS_VERSION carries it too).
BUILD_TIMESTAMP = "2019-04-26 00:00:00 UTC"
COLD_BUILD_LOCK = "cold-build.lock"
SANDBOXED = "-sandbox"  # the suffix of a sandboxed build's workspace and ccache directory


@dataclass(frozen=True)
class BuildOptions:
    cache_dir: Path
    jobs: int = (os.cpu_count() or 1) + 1
    extra_fragments: tuple[Path, ...] = ()
    timeout: float = 3 * 3600.0
    use_ccache: bool = True
    # Until 6.17 gen_kheaders.sh skips regeneration when an md5 of `ls -l` of the headers is
    # unchanged, and leaves autoconf.h out of that md5 on the theory that include/config/*
    # stamps catch config changes; since commit 0e0345b77ac4 (5.13) those stamps are not *.h,
    # so a config-only change (the variants, sharing one object tree) keeps a stale archive.
    # The 6.17 rewrite did not fix it (measured on 7.3.4: its make dependencies leave
    # autoconf.h out). True: delete kernel/kheaders.md5 before make (a prerequisite of the
    # archive in every version) whenever what the archive packs changed (archive_inputs), so
    # every build packs its own config and headers, and a .c edit keeps the archive.
    # False: upstream's behaviour, for the test that shows it (vmtests/test_incremental.py).
    force_kheaders_regen: bool = True
    flavor: str = "plain"  # FLAVORS: "debug" adds KASAN, lockdep, UBSAN, atomic-sleep checks
    # KBUILD_BUILD_TIMESTAMP: the archive's member mtimes. Since 6.17 (commit 626c54af3576) it
    # is on gen_kheaders.sh's command line, so changing it alone regenerates the archive.
    timestamp: str = BUILD_TIMESTAMP
    # Every make in the build sandbox (sandbox.py), as kheaders-ci asks through the
    # environment. Not in the key: the same inputs give the same output in it. Its builds
    # have a work copy, object tree and ccache directory of their own: a series could leave
    # host programs in an object tree (scripts/basic/fixdep...) or a ccache.conf whose
    # compiler_check is a command, which an unconfined build would then run.
    sandbox: bool = field(default_factory=lambda: sandbox.wanted(os.environ))


def key_inputs(source: KernelSource, arch: Arch, variant: Variant,
               opts: BuildOptions) -> dict[str, str]:
    """Everything that decides the build's output, by name: what inputs.build_key hashes."""
    parts = {"harness": HARNESS_VERSION, "source": source.identity, "arch": arch.name,
             "variant": variant.name, "compiler": compiler_version(arch),
             "timestamp": opts.timestamp,
             "force_kheaders_regen": str(opts.force_kheaders_regen)}
    for frag in fragments_for(arch, variant, opts.extra_fragments, opts.flavor):
        # What the fragment asks of this kernel version, not its text: a comment or a line
        # for another version changes no build.
        wanted = kconfig.parse_config(kconfig.for_version(frag.read_text(), source.version))
        parts[f"fragment:{frag.name}"] = json.dumps(wanted, sort_keys=True)
    if variant.patch_series:
        series = worktree.pick_series(PATCHES_DIR, variant.patch_series, source.version)
        for patch in series.patches:
            parts[f"patch:{patch.name}"] = patch.read_text()
    return parts


def workspace(opts: BuildOptions, source: KernelSource, arch: Arch) -> Path:
    tree = hashlib.sha256(str(source.path).encode()).hexdigest()[:10]
    flavor = "" if opts.flavor == "plain" else f"-{opts.flavor}"
    sandboxed = SANDBOXED if opts.sandbox else ""
    return opts.cache_dir / "work" / f"{arch.name}-{tree}{flavor}{sandboxed}"


def ensure_build(source: KernelSource, arch: Arch, variant: Variant, opts: BuildOptions,
                 progress: Progress) -> KernelBuild:
    """Return the cached build for this key, building it first if needed."""
    key = build_key(key_inputs(source, arch, variant, opts))
    out = build_entry(opts.cache_dir, arch.name, variant.name, key)
    cached, _ = cache_entry.load(out)
    if cached is not None:
        return reused(cached, source)
    with file_lock(out.with_name(f"{out.name}.lock"), timeout=opts.timeout):
        cached, why = cache_entry.load(out)  # another worker may have built it meanwhile
        if cached is not None:
            return reused(cached, source)
        if why is not None:
            progress(f"{target_id(arch.name, variant.name)}: cached build {out} unusable ({why}); "
                     "building it again")
            cache_entry.discard(out)
        ws = workspace(opts, source, arch)
        with file_lock(ws.with_suffix(".lock"), timeout=opts.timeout):
            build = _build(source, arch, variant, opts, key, ws, out, progress)
        cache_entry.write(build)
    return build


def reused(build: KernelBuild, source: KernelSource) -> KernelBuild:
    """A cached build, as ``source``'s: the key is of the content, so another checkout of it
    (another path) may have built it, and the checks must read this one's headers. The
    entry's mtime says it was used (a CI job keeps only the entries it built or used)."""
    with contextlib.suppress(OSError):
        os.utime(build.dir)
    return replace(build, source_dir=source.path, source_origin=source.origin)


@dataclass(frozen=True)
class ArchiveBuild:
    """What ``build_archive_only`` leaves: the archive gen_kheaders.sh made, and the config."""

    archive: Path
    config: Path
    log: Path


def build_archive_only(source: KernelSource, arch: Arch, variant: Variant, opts: BuildOptions,
                       progress: Progress, out: Path,
                       edit: Callable[[Path], None] | None = None) -> ArchiveBuild:
    """Configure the shared workspace and make kernel/kheaders.o alone: make's prepare step
    (the new autoconf.h) and gen_kheaders.sh's decision, without vmlinux, BTF or modules.

    The incremental experiments need only what the archive holds after a change, and this
    gives it in seconds instead of a relink. Uncached; the workspace's next full build
    reconfigures and relinks as usual. ``edit`` gets the work copy of the source after the
    sync, to change a file the way a developer would (worktree.edit_file, which the next sync
    undoes)."""
    key = build_key(key_inputs(source, arch, variant, opts))
    ws = workspace(opts, source, arch)
    with file_lock(ws.with_suffix(".lock"), timeout=opts.timeout):
        out.mkdir(parents=True, exist_ok=True)
        label = target_id(arch.name, variant.name)
        runner = _runner(opts, out / "build.log", progress, label, (ws / "src", ws / "obj"))
        progress(f"{label}: archive only, {source.origin} (key {key}), log {runner.log}")
        obj, make = _prepare(runner, source, arch, variant, opts, ws, "make kernel/kheaders.o")
        if edit is not None:
            edit(ws / "src")
        runner.run((*make, f"-j{opts.jobs}", "kernel/kheaders.o"))
        archive_inputs.record(obj)
        archive = _copy_archive(obj, out)
        if archive is None:
            raise BuildFailed(f"{label}: no kernel/kheaders_data.tar.xz after make; "
                              f"log {runner.log}")
        shutil.copy2(obj / ".config", out / "config")
        return ArchiveBuild(archive=archive, config=out / "config", log=runner.log)


def build_module(source: KernelSource, arch: Arch, variant: Variant, opts: BuildOptions,
                 progress: Progress, moddir: Path) -> tuple[Path, ...]:
    """Build the out-of-tree module in ``moddir`` (its Kbuild file, sources; outputs land
    there) against the shared object tree configured for ``variant``: what a developer does
    with `make M=`. ``modules_prepare`` first, because an external build never syncs the
    config itself. Returns the .ko files."""
    ws = workspace(opts, source, arch)
    with file_lock(ws.with_suffix(".lock"), timeout=opts.timeout):
        label = target_id(arch.name, variant.name)
        runner = _runner(opts, moddir / "build.log", progress, label,
                         (moddir, ws / "src", ws / "obj"))
        progress(f"{label}: module {moddir}, log {runner.log}")
        _, make = _prepare(runner, source, arch, variant, opts, ws, "make modules_prepare",
                           archive=False)
        runner.run((*make, f"-j{opts.jobs}", "modules_prepare"))
        runner.stage("make M=")
        runner.run((*make, f"M={moddir}", "modules"))
    return tuple(sorted(moddir.glob("*.ko")))


def _runner(opts: BuildOptions, log: Path, progress: Progress, label: str,
            places: tuple[Path, ...]) -> Runner:
    """A make runner into ``log`` with the build's environment; ``places``: where else its
    commands write (the work copy, which merge_config.sh's temporary files go to, the object
    tree), for the disk-full message and the sandbox's writable binds. In the sandbox when
    ``opts`` says so, ccache's directory (its own) writable too."""
    bwrap = sandbox.find_bwrap() if opts.sandbox else None
    env = make_env(opts.timestamp, opts.cache_dir,
                   f"ccache{SANDBOXED}" if opts.sandbox else "ccache")
    return Runner(log, env, progress, label, opts.timeout, places=places, bwrap=bwrap,
                  writable=(Path(env["CCACHE_DIR"]),), readable=(opts.cache_dir,))


def _prepare(runner: Runner, source: KernelSource, arch: Arch, variant: Variant,
             opts: BuildOptions, ws: Path, stage: str,
             archive: bool = True) -> tuple[Path, tuple[str, ...]]:
    """The work copy synced and patched for ``variant``, the object tree configured, the
    archive's incremental state handled as ``opts`` says (when the make that follows builds
    the archive): the object tree and make's argv."""
    series = (worktree.pick_series(PATCHES_DIR, variant.patch_series, source.version)
              if variant.patch_series else None)
    runner.stage("sync source")
    worktree.sync(source.path, ws / "src", source.version, series)
    obj = ws / "obj"
    obj.mkdir(parents=True, exist_ok=True)
    frags = kconfig.write_for_version(fragments_for(arch, variant, opts.extra_fragments,
                                                    opts.flavor),
                                      source.version, ws / "fragments")
    _configure(runner, ws / "src", obj, arch, frags)
    check_config(ws / "src", obj, frags, opts.extra_fragments)
    make = kconfig.make_args(ws / "src", obj, arch.make_arch, arch.cross_prefix(),
                             compiler_command(arch, opts.use_ccache))
    runner.stage(stage)
    if archive:  # else the record stays the archive's: that make leaves it as it is
        _archive_state(runner, opts, ws, arch)
    return obj, make


def _archive_state(runner: Runner, opts: BuildOptions, ws: Path, arch: Arch) -> None:
    """Before a make that builds the archive: regenerated if its inputs changed (unless
    ``opts`` asks for upstream's logic, which leaves no record)."""
    obj = ws / "obj"
    if not opts.force_kheaders_regen:
        archive_inputs.forget(obj)
    elif why := archive_inputs.regenerate_if_changed(ws / "src", obj, arch.srcarch,
                                                      opts.timestamp):
        runner.progress(f"{runner.label}: the archive is regenerated: {why}")


def _build(source: KernelSource, arch: Arch, variant: Variant, opts: BuildOptions,
           key: str, ws: Path, out: Path, progress: Progress) -> KernelBuild:
    start = time.monotonic()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    log = out / "build.log"
    label = target_id(arch.name, variant.name)
    runner = _runner(opts, log, progress, label, (ws / "src", ws / "obj"))
    progress(f"{label}: building {source.origin} (key {key}), log {log}")
    obj, make = _prepare(runner, source, arch, variant, opts, ws, "make")
    cold = not (obj / "vmlinux").exists()
    with _cold_build_slot(opts, cold, label, progress) as waited:
        if cold and runner.bwrap is not None and opts.use_ccache:
            _seed_sandbox_ccache(runner, opts.cache_dir / "ccache")
            runner.stage("make")
        runner.run((*make, f"-j{opts.jobs}", Path(arch.image).name, "modules"),
                   expected=expected_steps(opts.cache_dir, arch, opts.flavor) if cold else None)
    if cold:
        remember_steps(opts.cache_dir, arch, runner.steps, opts.flavor)
    archive_inputs.record(obj)  # nothing to record under upstream's logic (forget)
    # The archive the image embeds, taken before any further make can repack it.
    archive = _copy_archive(obj, out)
    modroot = _install_modules(runner, make, obj, out)
    # The build's own seconds: time spent waiting for another arch's cold build is not it.
    seconds = time.monotonic() - start - waited
    progress(f"{label}: built in {seconds:.0f}s"
             + (f" (after {waited:.0f}s waiting for another cold build)" if waited > 1 else ""))
    return _collect(source, arch, variant, key, obj, out, modroot, archive, log, seconds)


@contextlib.contextmanager
def _cold_build_slot(opts: BuildOptions, cold: bool, label: str,
                     progress: Progress) -> Iterator[float]:
    """One cold (whole-tree) build at a time on this host, each with every core.

    Measured on 2 cores: x86_64 alone 8m16s; x86_64 and arm64 at once 21m29s and 21m51s,
    so one after the other is the shorter schedule, and the first arch's tests run while
    the second builds. Incremental builds (a variant's relink) do not wait. Yields the
    seconds spent waiting."""
    if not cold:
        yield 0.0
        return
    path = opts.cache_dir / COLD_BUILD_LOCK
    start = time.monotonic()
    with file_lock(path, opts.timeout,
                   lambda: progress(f"{label}: waiting for another cold build ({path})")):
        yield time.monotonic() - start


def _seed_sandbox_ccache(runner: Runner, trusted: Path) -> None:
    """Before a cold sandboxed build: what unconfined builds compiled, copied into the
    sandbox's own ccache (never shared: a series could plant entries or a ccache.conf
    there, which no unconfined build may read). Most of a posted series is its base, which
    the suite has often compiled already; work copies at other paths hit the same entries
    (CCACHE_BASEDIR). The copy runs inside the sandbox, the trusted directory read-only, so a
    symlink the series left in its ccache leads nowhere; a failed copy costs compile time,
    never the build."""
    if not trusted.is_dir():
        return
    runner.stage("seed ccache")
    runner.run(("sh", "-c", 'cp -R -u --preserve=timestamps -- "$0/." "$1" '
                "|| echo 'kheaders: ccache seed incomplete (the build compiles more)'",
                str(trusted), runner.env["CCACHE_DIR"]))


def _configure(runner: Runner, src: Path, obj: Path, arch: Arch, frags: list[Path]) -> None:
    runner.stage("configure")
    all_frags = [*kconfig.tiny_fragments(src, arch.srcarch), *frags]
    runner.run(kconfig.merge_config_cmd(src, obj, all_frags), cwd=src,
               env={"ARCH": arch.make_arch, "CROSS_COMPILE": arch.cross_prefix()})
    gcc = f"{arch.cross_prefix()}gcc"
    make = kconfig.make_args(src, obj, arch.make_arch, arch.cross_prefix(), gcc)
    runner.run((*make, "olddefconfig"))


def _install_modules(runner: Runner, make: tuple[str, ...], obj: Path,
                     out: Path) -> Path | None:
    if not (obj / "modules.order").exists():
        return None
    runner.stage("modules_install")
    modroot = out / "modroot"
    runner.run((*make, f"INSTALL_MOD_PATH={modroot}", "INSTALL_MOD_STRIP=1", "modules_install"),
               writes=(modroot,))
    return modroot


def _copy_archive(obj: Path, out: Path) -> Path | None:
    built = obj / "kernel/kheaders_data.tar.xz"
    if not built.exists():
        return None
    shutil.copy2(built, out / "kheaders_data.tar.xz")
    return out / "kheaders_data.tar.xz"


def _collect(source: KernelSource, arch: Arch, variant: Variant, key: str, obj: Path,
             out: Path, modroot: Path | None, archive: Path | None, log: Path,
             seconds: float) -> KernelBuild:
    image = out / Path(arch.image).name
    shutil.copy2(obj / arch.image, image)
    shutil.copy2(obj / ".config", out / "config")
    shutil.copy2(obj / "System.map", out / "System.map")
    headers = out / "objtree"
    for sub in ("include", f"arch/{arch.srcarch}/include"):
        _copy_headers(obj / sub, headers / sub)
    release = (obj / "include/config/kernel.release").read_text().strip()
    return KernelBuild(key=key, arch=arch.name, variant=variant.name, release=release,
                       dir=out, image=image, config=out / "config", archive=archive,
                       modroot=modroot, source_dir=source.path, srcarch=arch.srcarch,
                       objtree_headers=headers, log=log, seconds=round(seconds, 1),
                       source_origin=source.origin)


def _copy_headers(src: Path, dest: Path) -> None:
    for path in src.rglob("*.h"):
        target = dest / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
