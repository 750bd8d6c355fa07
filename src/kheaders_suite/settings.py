"""The suite's options: registered with pytest (so `pytest --help` documents them) and read
into one frozen ``Settings`` record. Nothing module-level is mutated at run time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from kheaders_suite import arches, variants
from kheaders_suite.errors import UserError
from kheaders_suite.paths import default_cache_dir
from kheaders_suite.source import DEFAULT_PACKAGE

GROUP = "kheaders-suite"


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
    group.addoption("--guest-cpus", type=int, default=2, help="vCPUs per guest (default 2).")
    group.addoption("--guest-memory", default="2G", help="memory per guest (default 2G).")
    group.addoption("--build-jobs", type=int, default=(os.cpu_count() or 1) + 1,
                    help="make -j for kernel builds (default: cores + 1).")
    group.addoption("--config-fragment", metavar="FILE", action="append", default=[],
                    help="extra Kconfig fragment merged last (repeatable; part of the build key).")
    group.addoption("--sweep", choices=("reduced", "full"), default=None,
                    help="timing sweep size: reduced (default under CI=true) or full.")


def _arch_list(value: str | None) -> tuple[str, ...]:
    value = value or os.environ.get("KHEADERS_ARCH") or arches.host().name
    names = arches.names() if value == "all" else tuple(v.strip() for v in value.split(","))
    for name in names:
        arches.get(name)  # UserError listing the valid ones
    return names


def _checked_fragments(values: list[str]) -> tuple[Path, ...]:
    paths = tuple(Path(v).resolve() for v in values)
    for path in paths:
        if not path.is_file():
            raise UserError(f"--config-fragment {path}: no such file")
    return paths


def from_config(config: pytest.Config) -> Settings:
    opt = config.getoption
    src = opt("--kernel-src")
    sweep = opt("--sweep") or ("reduced" if os.environ.get("CI") else "full")
    cpus = int(opt("--guest-cpus"))
    if cpus < 1:
        raise UserError(f"--guest-cpus {cpus}: must be at least 1")
    return Settings(
        kernel_src=Path(src) if src else None,
        kernel_package=str(opt("--kernel-package")),
        arches=_arch_list(opt("--arch")),
        accel=str(opt("--accel")),
        cache_dir=Path(opt("--cache-dir") or default_cache_dir()).expanduser(),
        results_dir=Path(opt("--results-dir")).resolve(),
        guest_cpus=cpus,
        guest_memory=str(opt("--guest-memory")),
        build_jobs=int(opt("--build-jobs")),
        extra_fragments=_checked_fragments(list(opt("--config-fragment"))),
        sweep=sweep,
    )


__all__ = ["Settings", "add_options", "from_config", "variants"]
