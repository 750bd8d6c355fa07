"""The suite's options: registered with pytest (so `pytest --help` documents them) and read
into one frozen ``Settings`` record. Nothing module-level is mutated at run time.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from kheaders_suite.boot import guestinit, rootfs
from kheaders_suite.build import kconfig
from kheaders_suite.build.kernel import BuildOptions
from kheaders_suite.catalog import arches, variants
from kheaders_suite.catalog.flavors import FLAVOR_TIMEOUT_FACTOR
from kheaders_suite.catalog.paths import default_cache_dir
from kheaders_suite.errors import UserError
from kheaders_suite.host import tools
from kheaders_suite.session.connect import BootOptions
from kheaders_suite.source import debsrc
from kheaders_suite.source import tree as source
from kheaders_suite.source.tree import DEFAULT_PACKAGE

GROUP = "kheaders-suite"
# The smallest --guest-memory taken: a documented floor, not a measured boot limit (that
# needs QEMU boots of every arch and kernel). What a guest holds: the kernel, ~14 MiB from
# _text to _end (arm64 sysfs 6.12 build, System.map) with the 4 MB archive inside;
# virtme-ng's init, sshd and the python3 agent; then the tests' 46.7 MB tmpfs copy of the
# extracted headers and a gcc compiling against it. 256M holds that with room, and is what
# the KVM probe boots the kernel in (accel.kernel_probe_cmd). The default stays 2G: the
# compile-timing sweeps need 187 MB of tmpfs at N=4 (README).
MIN_GUEST_MEMORY_MIB = 256
# virtme-ng reads a size as digits with an optional K, M or G (upper case; none means MiB)
# and hands it to QEMU's -m; "2g" would become "2gM".
_MEMORY = re.compile(r"^([0-9]+)([KMG]?)$", re.I)
_MIB = {"K": 1 / 1024, "M": 1, "G": 1024}
# Kernels are built and booted from the cache: kbuild refuses a source tree with white space
# or a colon in its path ("source directory cannot contain spaces or colons"), vng pastes
# --kimg/--root/--rodir paths unquoted into the sh -c command it runs, and virtme-ng takes a
# --rodir path of these characters only (its _SAFE_PATH_PATTERN).
_CACHE_SAFE = re.compile(r"^[A-Za-z0-9_+./-]+$")
# pytest options under which nothing is built or booted: no host program is needed.
_NOTHING_RUNS = ("collectonly", "help", "version", "showfixtures", "show_fixtures_per_test",
                 "markers")


@dataclass(frozen=True)
class Settings:
    kernel_src: Path | None  # None: the embedded default (Debian's linux-source package)
    kernel_package: str
    arches: tuple[str, ...]
    accel: str
    cache_dir: Path
    results_dir: Path
    guest_cpus: int
    guest_memory: str
    build_jobs: int
    extra_fragments: tuple[Path, ...]
    sweep: str  # "reduced" (CI) or "full"
    flavor: str = "plain"  # flavors.FLAVORS: "debug" adds KASAN, lockdep, UBSAN
    # arches whose sweep times clang's front end too (the in-memory strategies); None: all
    frontend_arches: tuple[str, ...] | None = None
    guest_init: str = "suite"  # "suite": the suite's init (guestinit); "vng": virtme-ng's
    timing: bool = False  # the compile-timing sweeps asked for (timing_asked)

    def times_frontend(self, arch: str) -> bool:
        """Whether ``arch``'s timing sweep includes clang's front end (--frontend-arch)."""
        return self.frontend_arches is None or arch in self.frontend_arches


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "kheaders-suite: kernels under test")
    group.addoption("--kernel-src", metavar="PATH", default=None,
                    help="kernel tree to build (git checkout or plain dir; never written to). "
                         f"Default: Debian's {DEFAULT_PACKAGE}, extracted into the cache.")
    group.addoption("--kernel-package", metavar="PKG", default=DEFAULT_PACKAGE,
                    help="Debian linux-source package used when --kernel-src is not given "
                         f"(default {DEFAULT_PACKAGE}; linux-source-6.1 also works).")
    group.addoption("--arch", metavar="ARCHES", default=None,
                    help=f"comma-separated guest arches, or 'all' ({', '.join(arches.names())}); "
                         "default: the host's. Env KHEADERS_ARCH.")
    group.addoption("--accel", choices=("auto", "kvm", "tcg"), default="auto",
                    help="accelerator: auto probes KVM for real (default), kvm/tcg force it.")
    group.addoption("--cache-dir", metavar="DIR", default=None,
                    help="build cache (default $KHEADERS_SUITE_CACHE or "
                         "~/.cache/kheaders-suite).")
    group.addoption("--results-dir", metavar="DIR", default="results",
                    help="console logs, JSON results and plots of this run (default ./results).")
    group.addoption("--guest-init", choices=guestinit.CHOICES, default="suite",
                    help="the guest's init: suite (default: mounts, a static address and sshd, "
                         "nothing else; seconds faster under emulation) or vng (virtme-ng's "
                         "own, with udev and DHCP where the root has them).")
    group.addoption("--guest-cpus", type=int, default=2, help="vCPUs per guest (default 2).")
    group.addoption("--guest-memory", default="2G", help="memory per guest (default 2G).")
    group.addoption("--build-jobs", type=int, default=(os.cpu_count() or 1) + 1,
                    help="make -j for kernel builds (default: cores + 1).")
    group.addoption("--config-fragment", metavar="FILE", action="append", default=[],
                    help="extra Kconfig fragment merged last (repeatable; part of the build key).")
    group.addoption("--sweep", choices=("reduced", "full"), default=None,
                    help="timing sweep size: reduced (default under CI=true) or full.")
    group.addoption("--flavor", choices=("plain", "debug"), default="plain",
                    help="kernel flavor: debug adds KASAN, lockdep (PROVE_LOCKING), UBSAN and "
                         "DEBUG_ATOMIC_SLEEP to every build, in object trees of their own "
                         "(part of the build key); their reports fail the test they come from.")
    group.addoption("--frontend-arch", metavar="ARCHES", default="all",
                    help="arches whose timing sweep also times clang: its front end on the "
                         "headers in memory and bcc's clang-bpf compile (comma-separated, "
                         "'all' or 'none'; default all). CI's reduced sweep: x86_64.")


def _arch_list(value: str | None) -> tuple[str, ...]:
    value = value or os.environ.get("KHEADERS_ARCH") or arches.host().name
    names = arches.names() if value == "all" else tuple(v.strip() for v in value.split(","))
    for name in names:
        arches.get(name)  # UserError listing the valid ones
    return tuple(dict.fromkeys(names))


def frontend_arches(value: str) -> tuple[str, ...]:
    """--frontend-arch: 'none' is no arch; otherwise as --arch."""
    return () if value == "none" else _arch_list(value)


def guest_memory(value: str) -> str:
    """``value`` as vng takes it (upper-case suffix, MiB when none), if it can boot a guest."""
    m = _MEMORY.match(value.strip())
    if m is None:
        raise UserError(f"--guest-memory {value!r}: not a size; pass MiB as digits, or digits "
                        "with K, M or G (e.g. 2G)")
    unit = m.group(2).upper() or "M"
    if int(m.group(1)) * _MIB[unit] < MIN_GUEST_MEMORY_MIB:
        raise UserError(f"--guest-memory {value}: below the {MIN_GUEST_MEMORY_MIB}M a guest "
                        "needs (kernel, virtme-ng init, sshd, the tests' headers); pass "
                        f"{MIN_GUEST_MEMORY_MIB}M or more (default 2G)")
    return f"{m.group(1)}{unit}"


def writable_dir(value: str, option: str) -> Path:
    """``value`` made absolute (symlinks kept), if it is or can be made a directory this user
    can write in. Nothing is created: a temporary file in it, or in its nearest existing
    parent, is opened and gone again."""
    path = Path(os.path.abspath(Path(value).expanduser()))
    probe = next(p for p in (path, *path.parents) if os.path.exists(p))
    if not probe.is_dir():
        raise UserError(f"{option} {path}: {probe} is not a directory; pass a directory")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise UserError(f"{option} {path}: cannot write in {probe} ({exc.strerror}); "
                        "pass a directory you can write in") from None
    return path


def cache_dir(value: str) -> Path:
    path = writable_dir(value, "--cache-dir")
    if not _CACHE_SAFE.match(str(path)):
        raise UserError(f"--cache-dir {str(path)!r}: kernels are built and booted from here, "
                        "and kbuild and vng take only letters, digits and _+./- in its path; "
                        "pass such a path")
    return path


def kernel_src(value: str | None) -> tuple[Path | None, source.KernelVersion | None]:
    """The tree and its version, checked as the build will need it (None: not given)."""
    if not value:
        return None, None
    tree = Path(value).expanduser()
    return tree, source.check_kernel_tree(tree.resolve())


def kernel_package(package: str) -> str:
    """A Debian linux-source-X.Y whose X.Y the suite supports: known before any download."""
    debsrc.check_package_name(package)
    version = source.KernelVersion.parse(package.removeprefix("linux-source-"))
    source.check_supported(version, f"--kernel-package {package}")
    return package


def fragments(values: list[str], tree: Path | None,
              version: source.KernelVersion | None) -> tuple[Path, ...]:
    """Each --config-fragment: a file, every line Kconfig syntax, and with --kernel-src,
    every symbol declared by the tree's Kconfig (a typo is named before any build)."""
    paths = tuple(Path(v).expanduser().resolve() for v in values)
    for path in paths:
        if not path.is_file():
            raise UserError(f"--config-fragment {path}: no such file; pass a Kconfig fragment file")
        kconfig.check_syntax(path)
    if paths and tree is not None and version is not None:
        defined = kconfig.defined_symbols(tree.resolve())
        for path in paths:
            kconfig.check_defined(path, version, defined, tree)
    return paths


def at_least_one(value: object, option: str) -> int:
    number = int(str(value))
    if number < 1:
        raise UserError(f"{option} {number}: must be at least 1")
    return number


def unit_tests_only(config: pytest.Config) -> bool:
    """Every path the run was given lies in the suite's unit tests (tests/, also the default):
    no VM will boot, so they run on a host without QEMU or cross compilers."""
    unit = config.rootpath / "tests"
    for arg in config.args or [str(unit)]:
        path = (config.invocation_params.dir / str(arg).split("::")[0]).resolve()
        if path != unit and unit not in path.parents:
            return False
    return True


def check_host(config: pytest.Config, names: tuple[str, ...], cache: Path) -> None:
    """The compilers, QEMU, vng (and for a foreign arch with no root filesystem cached yet,
    mmdebstrap and root) the selected arches need, unless nothing will run (--collect-only,
    --help, ...) or this is an xdist worker (the controller checked)."""
    if hasattr(config, "workerinput"):
        return
    if any(getattr(config.option, name, False) for name in _NOTHING_RUNS):
        return
    if unit_tests_only(config):
        return
    selected = [arches.get(n) for n in names]
    tools.check(selected)
    for arch in selected:
        rootfs.check_host(cache, arch)


def timing_asked(markexpr: str, sweep_given: bool) -> bool:
    """Whether the run asked for the compile-timing sweeps (tests marked timing): minutes of
    measurement a target, not a check of the kernel, so `pytest vmtests -k proc` gives the
    verdict alone. Asked: --sweep, or a -m expression naming timing other than as
    "not timing" (an expression that names it and still excludes it, pytest deselects)."""
    return sweep_given or re.search(r"(?<!not )\btiming\b", markexpr) is not None


def from_config(config: pytest.Config) -> Settings:
    opt = config.getoption
    tree, version = kernel_src(opt("--kernel-src"))
    package = str(opt("--kernel-package"))
    sweep = opt("--sweep") or ("reduced" if os.environ.get("CI") else "full")
    names = _arch_list(opt("--arch"))
    s = Settings(
        kernel_src=tree,
        kernel_package=package if tree else kernel_package(package),
        arches=names,
        accel=str(opt("--accel")),
        cache_dir=cache_dir(opt("--cache-dir") or str(default_cache_dir())),
        results_dir=writable_dir(opt("--results-dir"), "--results-dir"),
        guest_cpus=at_least_one(opt("--guest-cpus"), "--guest-cpus"),
        guest_memory=guest_memory(str(opt("--guest-memory"))),
        build_jobs=at_least_one(opt("--build-jobs"), "--build-jobs"),
        extra_fragments=fragments(list(opt("--config-fragment")), tree, version),
        sweep=sweep,
        flavor=str(opt("--flavor")),
        frontend_arches=frontend_arches(str(opt("--frontend-arch"))),
        guest_init=str(opt("--guest-init")),
        timing=timing_asked(str(opt("markexpr") or ""), opt("--sweep") is not None),
    )
    check_host(config, names, s.cache_dir)
    return s


__all__ = ["Settings", "add_options", "from_config", "variants"]


def boot_options(s: Settings) -> BootOptions:
    """What a boot takes from the run's options."""
    return BootOptions(cache_dir=s.cache_dir, accel=s.accel, guest_cpus=s.guest_cpus,
                       guest_memory=s.guest_memory,
                       timeout_factor=FLAVOR_TIMEOUT_FACTOR[s.flavor], guest_init=s.guest_init)


def build_options(s: Settings) -> BuildOptions:
    """The run's build options, one place for every build of the run (the session's
    kernels, the incremental steps, out-of-tree modules): same cache, jobs, fragments and
    flavor, so they share the session's object tree."""
    return BuildOptions(cache_dir=s.cache_dir, jobs=s.build_jobs,
                        extra_fragments=s.extra_fragments, flavor=s.flavor)
