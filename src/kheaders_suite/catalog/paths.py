"""Where things live: the package's kernel data (kernels/ next to this file: the config
fragments and the carried patches), the checkout's root, and the build cache (outside both)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from kheaders_suite.records import target_id

# src/kheaders_suite/catalog/paths.py -> the checkout's root: tests/, benchmarks/ and the
# checkout's vmtests/ live there. An installed package has none; nothing it runs needs one.
REPO_ROOT = Path(__file__).resolve().parents[3]
# Package data, so that an installed wheel builds kernels as a checkout does. Real files, not
# importlib.resources Traversables: make, git and patch are handed these paths.
KERNELS_DIR = Path(__file__).resolve().parent / "kernels"
CONFIGS_DIR = KERNELS_DIR / "configs"
PATCHES_DIR = KERNELS_DIR / "patches"


def default_cache_dir() -> Path:
    """$KHEADERS_SUITE_CACHE, else $XDG_CACHE_HOME/kheaders-suite, else ~/.cache/kheaders-suite."""
    if env := os.environ.get("KHEADERS_SUITE_CACHE"):
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "kheaders-suite"


def build_entry(cache_dir: Path, arch: str, variant: str, key: str) -> Path:
    """Where the build of one key lives in the cache (build/kernel.py writes it, patch CI
    reads it to tell a failed build from one that never started)."""
    return cache_dir / "builds" / f"{target_id(arch, variant)}-{key}"


def publish_dir(target: Path, fill: Callable[[Path], None]) -> Path:
    """``target`` made by ``fill`` in a temporary sibling renamed into place, unless it is
    there already: for directories named by their content, so whichever worker renames first
    made the same one as the others."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".new-", dir=target.parent))
    try:
        fill(tmp)
        tmp.chmod(0o755)
        tmp.rename(target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not target.is_dir():  # not another worker's, the same
            raise
    return target
