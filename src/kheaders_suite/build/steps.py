"""How far a build is: kbuild's quiet step lines counted in its log, against the count of the
last cold build of the same arch and flavor here (STEPS_FILE in the cache directory).

xdist workers finish cold builds at once: a count is added under a lock beside the file, and
the file is renamed into place whole, so no worker drops another's count or reads half one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from kheaders_suite.build.cache_entry import write_atomically
from kheaders_suite.catalog.arches.arch import Arch
from kheaders_suite.host.locks import file_lock

# kbuild's quiet output: one "  CC      kernel/fork.o" line per step of the build.
_KBUILD_STEP = re.compile(rb"^  [A-Z][A-Z0-9_]* ", re.M)
STEPS_FILE = "make-steps.json"
# A read and a write of a few hundred bytes: the bound is for a hung filesystem.
LOCK_TIMEOUT = 60.0


def count_steps(log: bytes) -> int:
    return len(_KBUILD_STEP.findall(log))


def progress_line(stage: str, steps: int, expected: int | None, elapsed: float) -> str:
    """'make 1200/1900 steps (63%), 5m10s elapsed, ~3m left' (pure)."""
    done = f"{stage} {steps}" + (f"/{expected}" if expected else "") + " steps"
    if expected and steps:
        fraction = min(steps / expected, 0.99)
        left = elapsed * (1 - fraction) / fraction
        return f"{done} ({fraction:.0%}), {_clock(elapsed)} elapsed, ~{_clock(left)} left"
    return f"{done}, {_clock(elapsed)} elapsed"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _steps_key(arch: Arch, flavor: str) -> str:
    """The count's key: the arch, and the flavor when not plain (a debug build has other
    objects than a plain one's)."""
    return arch.name if flavor == "plain" else f"{arch.name}-{flavor}"


def expected_steps(cache_dir: Path, arch: Arch, flavor: str = "plain") -> int | None:
    """kbuild steps of this arch and flavor's last cold build here, else the arch's recorded
    plain count (None for another flavor: no estimate beats a wrong one)."""
    try:
        return int(json.loads((cache_dir / STEPS_FILE).read_text())[_steps_key(arch, flavor)])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return arch.cold_build_steps if flavor == "plain" else None


def remember_steps(cache_dir: Path, arch: Arch, steps: int, flavor: str = "plain") -> None:
    path = cache_dir / STEPS_FILE
    with file_lock(path.with_name(f".{path.name}.lock"), LOCK_TIMEOUT):
        try:
            seen = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            seen = {}
        if not isinstance(seen, dict):
            seen = {}
        seen[_steps_key(arch, flavor)] = steps
        write_atomically(path, json.dumps(seen))
