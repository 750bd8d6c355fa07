"""Where things live: the repo's kernels/ data and the build cache (outside the repo)."""

from __future__ import annotations

import os
from pathlib import Path

# src/kheaders_suite/paths.py -> repo root
REPO_ROOT = Path(__file__).resolve().parents[2]
KERNELS_DIR = REPO_ROOT / "kernels"
CONFIGS_DIR = KERNELS_DIR / "configs"
PATCHES_DIR = KERNELS_DIR / "patches"


def default_cache_dir() -> Path:
    """$KHEADERS_SUITE_CACHE, else $XDG_CACHE_HOME/kheaders-suite, else ~/.cache/kheaders-suite."""
    if env := os.environ.get("KHEADERS_SUITE_CACHE"):
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "kheaders-suite"
