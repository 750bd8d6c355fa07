"""The host programs a run needs, checked before anything is built or booted.

For every selected arch: the gcc kbuild calls (the host's, or the cross gcc) and the
qemu-system binary vng starts; once: virtme-ng's vng, at least ``VNG_MIN``. A missing or too
old one is bad input (UserError): one line naming each program and the package to install,
given at configure time (plugin/options.py) instead of after a cold build or at the first boot.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kheaders_suite.catalog.arches.arch import Arch
from kheaders_suite.errors import UserError
from kheaders_suite.text import first_line

# The virtme-ng CI runs, the only one the suite is tested with. Every option vm.vng_command
# passes exists since v1.34 (--ssh-tcp: virtme-ng commit 24e056be7570), but what the guest
# gets from them changed since: v1.41 puts --ssh-tcp's port forward on the user netdev
# instead of a second NIC (virtme-ng commit 215ce6c) and gives TCG guests -cpu max
# (virtme-ng commit 59d14f4), and the suite's init answers
# virtme.resources.find_guest_tools, an internal function, not an interface. pyproject.toml
# pins the minor (<1.43) for the same reason: a new one is taken after a CI run on it. An
# older vng is refused here, not at the first boot after a cold build.
VNG_MIN = (1, 42)
VNG_PIP = f"pip install 'virtme-ng>={VNG_MIN[0]}.{VNG_MIN[1]},<{VNG_MIN[0]}.{VNG_MIN[1] + 1}'"
_VNG_VERSION = re.compile(r"(\d+)\.(\d+)")


@dataclass(frozen=True)
class Program:
    name: str  # looked up on PATH
    package: str  # the Debian package that installs it

    def hint(self) -> str:
        return f"{self.name} (apt-get install {self.package})"


def compiler(arch: Arch) -> Program:
    """The gcc the build uses for ``arch``: the host's own, or the cross gcc."""
    prefix = arch.cross_prefix()
    return Program(f"{prefix}gcc", arch.cross_package if prefix else "gcc")


def qemu(arch: Arch) -> Program:
    return Program(arch.qemu_binary, arch.qemu_package)


def missing(programs: Iterable[Program], path: str | None = None) -> list[Program]:
    """The programs not on ``path`` (default $PATH), each once, in order."""
    return [p for p in dict.fromkeys(programs) if shutil.which(p.name, path=path) is None]


def missing_message(gone: Iterable[Program]) -> str:
    return (f"not found: {', '.join(p.hint() for p in gone)}; install them (ci/setup installs "
            "everything the suite needs)")


def check_programs(arch_list: Iterable[Arch], path: str | None = None) -> None:
    gone = missing([p for a in arch_list for p in (compiler(a), qemu(a))], path)
    if gone:
        raise UserError(missing_message(gone))


def find_vng(beside: Path | None = None, path: str | None = None) -> Path:
    """vng from the running interpreter's environment first (the suite's venv), then PATH."""
    own = (beside or Path(sys.executable).parent) / "vng"
    if own.exists():
        return own
    found = shutil.which("vng", path=path)
    if found is None:
        raise UserError(f"vng (virtme-ng) not found; {VNG_PIP} into the suite's venv "
                        "(ci/setup does)")
    return Path(found)


def parse_vng_version(output: str) -> tuple[int, int] | None:
    """(major, minor) from `vng --version` ("virtme-ng 1.42", "virtme-ng 1.34-3-gabc")."""
    m = _VNG_VERSION.search(output)
    return (int(m.group(1)), int(m.group(2))) if m else None


def check_vng(vng: Path) -> None:
    try:
        done = subprocess.run((str(vng), "--version"), capture_output=True, text=True,
                              timeout=60, check=False)
        output = (done.stdout + done.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        output = str(exc)
    version = parse_vng_version(output)
    if version is None:
        first = first_line(output) or "no output"
        raise UserError(f"{vng} --version: cannot tell its version ({first}); {VNG_PIP}")
    if version < VNG_MIN:
        raise UserError(f"{vng} is virtme-ng {version[0]}.{version[1]}, older than the "
                        f"{VNG_MIN[0]}.{VNG_MIN[1]} the suite is tested with (its CI's); "
                        f"{VNG_PIP}")


def checked_vng() -> Path:
    """The vng to run, found and new enough (UserError otherwise)."""
    vng = find_vng()
    check_vng(vng)
    return vng


def check(arch_list: Iterable[Arch]) -> None:
    """Everything a run that builds and boots ``arch_list`` needs from the host."""
    check_programs(arch_list)
    checked_vng()
