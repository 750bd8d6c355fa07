"""Step 4: boot. Build the vng command line (pure), launch it, keep its console, end it.

No QEMU outlives the run: the VM is its own process group, killed on close(), at interpreter
exit, and by a guardian process if the launcher itself dies.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from kheaders_suite.accel import Accel
from kheaders_suite.arches import Arch
from kheaders_suite.build import KernelBuild


@dataclass(frozen=True)
class VMSpec:
    build: KernelBuild
    arch: Arch
    accel: Accel
    port: int
    cpus: int = 2
    memory: str = "2G"
    root: Path | None = None  # None: the host's root, shared read-only (native arch only)
    # (host dir, guest mount point) for a foreign root, which cannot see the host's paths;
    # the mount point must exist in that root (it is read-only in the guest).
    rodirs: tuple[tuple[Path, str], ...] = ()

    def guest_path(self, host: Path) -> str:
        """Where the guest sees ``host``: the same path on a shared host root."""
        for top, mount in self.rodirs:
            if host == top or top in host.parents:
                return str(Path(mount) / host.relative_to(top))
        return str(host)


def vng_command(spec: VMSpec, vng: str = "vng") -> tuple[str, ...]:
    """The virtme-ng command line for ``spec``: SSH over TCP on 127.0.0.1:<port>."""
    cmd: tuple[str, ...] = (
        vng, "--run", str(spec.build.image),
        "--cpus", str(spec.cpus), "--memory", spec.memory,
        "--ssh", str(spec.port), "--ssh-tcp",
        # Kernel messages at info level on the console we keep; virtme-ng says "quiet".
        "--append", "loglevel=7",
    )
    if spec.accel.name == "tcg":
        cmd += ("--disable-kvm",)
    if spec.root is not None:
        cmd += ("--arch", spec.arch.name, "--root", str(spec.root))
        cmd += tuple(f"--rodir={mount}={top}" for top, mount in spec.rodirs)
    if spec.accel.name == "tcg" and not spec.arch.is_native:
        # One word: vng's argparse takes "-cpu ..." after a space for an option of its own.
        cmd += (f"--qemu-opts=-cpu {spec.arch.tcg_cpu}",)
    return cmd


def guardian_command(pgid: int) -> tuple[str, ...]:
    return ("setpriv", "--pdeathsig", "TERM", "--",
            sys.executable, "-m", "kheaders_suite.guardian", str(pgid))


def free_port() -> int:
    """A port free right now on 127.0.0.1 (a clash later is caught and retried by the caller)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_LIVE: set[VM] = set()


class VM:
    """A running vng/QEMU process group and its console log."""

    def __init__(self, spec: VMSpec, console: Path, vng: str = "vng") -> None:
        self.spec, self.console = spec, console
        # vng runs `sh -c virtme-run ...`: its own bin dir must be on PATH (a venv not
        # activated, as under `.venv/bin/pytest`).
        path = f"{Path(vng).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PATH": path}
        self.proc = subprocess.Popen(vng_command(spec, vng), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True, env=env)
        self.guardian = subprocess.Popen(guardian_command(self.proc.pid),
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        assert self.proc.stdout is not None
        self._drain = threading.Thread(target=_copy, args=(self.proc.stdout, console),
                                       daemon=True)
        self._drain.start()
        _LIVE.add(self)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def console_text(self) -> str:
        try:
            return self.console.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def close(self) -> None:
        """Kill the whole group (QEMU did not stop on a guest poweroff within 30 s here)."""
        _LIVE.discard(self)
        for proc in (self.proc, self.guardian):
            if proc.poll() is None:
                _kill_group(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        self._drain.join(timeout=5)


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _copy(stream: IO[bytes], dest: Path) -> None:
    with dest.open("ab") as sink:
        for chunk in iter(lambda: stream.read1(65536), b""):  # type: ignore[attr-defined]
            sink.write(chunk)
            sink.flush()


@atexit.register
def _close_all() -> None:
    for vm in list(_LIVE):
        vm.close()
