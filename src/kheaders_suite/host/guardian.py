"""Kills a VM's (or a build's) process group when the process that launched it dies.

vng runs `sh -c virtme-run ...`, which execs QEMU: a pdeathsig set on vng would not reach
QEMU. So the launcher puts vng in its own session and starts this guardian under
`setpriv --pdeathsig TERM`; when the launcher dies (a killed xdist worker, a crash), the kernel
sends the guardian SIGTERM and the guardian kills the whole group. It exits by itself once the
group is gone.

    python -m kheaders_suite.host.guardian PGID
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from types import FrameType


def guardian_command(pgid: int) -> tuple[str, ...]:
    """The guardian of process group ``pgid``, dying with (and killing it after) its starter."""
    return ("setpriv", "--pdeathsig", "TERM", "--",
            sys.executable, "-m", "kheaders_suite.host.guardian", str(pgid))


def alive(ident: int, *, group: bool = False) -> bool:
    """Whether process ``ident`` (process group, with ``group``) exists, by signal 0."""
    try:
        (os.killpg if group else os.kill)(ident, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: list[str]) -> int:
    pgid = int(argv[1])

    def kill_group(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        sys.exit(0)

    signal.signal(signal.SIGTERM, kill_group)
    signal.signal(signal.SIGINT, kill_group)
    while alive(pgid, group=True):
        time.sleep(2.0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
