"""The suite's own guest init, booted by virtme-ng (``--guest-init suite``, the default).

virtme-ng's init does what an interactive guest wants: udev, DHCP, systemd-tmpfiles, a shell
on the console, and on a foreign arch its bash init (its fast Rust init is x86_64 only),
forking hundreds of processes under emulation: 7 s of an arm64 boot under TCG, 2.8 s of an
x86_64 one. ``inguest/kheaders-init.sh`` does only what a test needs.

virtme-ng has no option to name an init: it boots ``<guest tools>/virtme-init``, the guest
tools being the directory ``virtme.resources.find_guest_tools()`` returns. The suite puts a
directory holding its init, under that name, in the cache, and a ``virtme-run`` before vng's
on vng's PATH (vng starts ``virtme-run`` through the shell) that runs virtme-ng's own with
that one function answering the suite's directory. Everything else, the QEMU command line,
the root, the mounts, the keys, is virtme-ng's. The directory is named by what it holds, so
it is made once and shared by every VM and xdist worker.
"""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path

from kheaders_suite import inguest
from kheaders_suite.catalog.paths import publish_dir
from kheaders_suite.errors import UserError

CHOICES = ("suite", "vng")
SCRIPT = "kheaders-init.sh"
# What virtme-ng boots from its guest tools when it has no virtme-ng-init binary there.
INIT_NAME = "virtme-init"
# Run by the launcher's interpreter: virtme-ng's virtme-run, its guest tools replaced.
LAUNCH_CODE = """\
import sys
import virtme.resources as r
if not callable(getattr(r, "find_guest_tools", None)):
    sys.exit("kheaders-suite: this virtme-ng has no virtme.resources.find_guest_tools; "
             "boot with --guest-init vng")
r.find_guest_tools = lambda: {tools!r}
from virtme.commands.run import main
sys.exit(main())
"""


def init_script() -> bytes:
    return inguest.source(SCRIPT)


def interpreter(vng: Path) -> str:
    """The Python that runs vng's ``virtme-run`` (its shebang): the one that imports virtme."""
    script = vng.parent / "virtme-run"
    try:
        first = script.read_text(errors="replace").splitlines()[0]
    except (OSError, IndexError):
        first = ""
    if not first.startswith("#!") or "python" not in first:
        raise UserError(f"no Python virtme-run beside {vng}: reinstall virtme-ng "
                        "(`pip install virtme-ng`) or boot with --guest-init vng")
    return first[2:].strip()


def launcher_text(python: str, tools: Path) -> str:
    code = LAUNCH_CODE.format(tools=str(tools))
    return (f"#!/bin/sh\n# virtme-ng's virtme-run with the suite's init ({__name__})\n"
            f"exec {shlex.quote(python)} -c {shlex.quote(code)} \"$@\"\n")


def ensure(parent: Path, vng: Path) -> Path:
    """The directory to put first on vng's PATH: its ``bin/virtme-run`` boots the suite's
    init. Made under ``parent`` unless an identical one is there (atomically: renamed in)."""
    python = interpreter(vng)
    script = init_script()
    target = parent / hashlib.sha256(script + b"\0" + python.encode()).hexdigest()[:16]

    def fill(tmp: Path) -> None:
        for sub, name, text in (("guest", INIT_NAME, script),
                                ("bin", "virtme-run",
                                 launcher_text(python, target / "guest").encode())):
            (tmp / sub).mkdir()
            (tmp / sub / name).write_bytes(text)
            (tmp / sub / name).chmod(0o755)

    return publish_dir(target, fill) / "bin"
