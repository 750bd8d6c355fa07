"""Step 4: boot. Build the vng command line (pure), launch it, keep its console, end it.

No QEMU outlives the run: the VM is its own process group, ended on close() (SIGTERM, so
virtme-ng removes its run-* dir, then SIGKILL), at interpreter exit, and by a guardian process
if the launcher itself dies. Each VM runs vng with a HOME of its own holding only that VM's
keys (sshkeys), removed on close(); the guest's network reaches nothing but its SSH forward.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import itertools
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kheaders_suite.boot import console as consolelog
from kheaders_suite.boot import sshkeys
from kheaders_suite.boot.accel import Accel
from kheaders_suite.catalog.arches.arch import Arch
from kheaders_suite.host import guardian
from kheaders_suite.host.guardian import guardian_command
from kheaders_suite.records import BootProfile, KernelBuild


@dataclass(frozen=True)
class VMSpec:
    build: KernelBuild
    arch: Arch
    accel: Accel
    port: int
    cpus: int = 2
    memory: str = "2G"
    root: Path | None = None  # None: the host's root, shared read-only (native arch only)
    # (host dir, guest mount point): the build dir for a foreign root, which cannot see the
    # host's paths (the mount point must exist in that root: it is read-only in the guest);
    # on the host's root, the host's /root and the suite's guest home over it (guesthome).
    rodirs: tuple[tuple[Path, str], ...] = ()
    # Where each VM gets a HOME of its own for vng (vm-<launcher pid>-<token>): virtme-ng
    # keeps its SSH keys in ~/.cache/virtme-ng/.ssh and a foreign root's run-* dirs under
    # ~/.cache/virtme-ng/guest, so each VM's are its own and go with it (None: a temp dir).
    vng_home: Path | None = None
    kernel_args: tuple[str, ...] = ()  # added to the kernel command line, one --append each
    # A directory put first on vng's PATH whose virtme-run boots the suite's init
    # (guestinit); None: virtme-ng's own init.
    init_launcher: Path | None = None

    def guest_path(self, host: Path) -> str:
        """Where the guest sees ``host``: the same path on a shared host root."""
        for top, mount in self.rodirs:
            if host == top or top in host.parents:
                return str(Path(mount) / host.relative_to(top))
        return str(host)


# virtme-ng's --ssh-tcp adds `-netdev user,id=ssh,hostfwd=tcp:127.0.0.1:<port>-:22` with no
# way to add an option to it; QEMU's -set adds one by the netdev's id (a QEMU without a
# netdev of that id refuses to start: never a guest with an open network). restrict=on: the
# guest reaches neither outside addresses nor the host's loopback behind 10.0.2.2 (every
# other guest's forwarded SSH port listens there); the hostfwd still reaches the guest.
RESTRICT_NET = "--qemu-opts=-set netdev.ssh.restrict=on"


def vng_command(spec: VMSpec, vng: str = "vng") -> tuple[str, ...]:
    """The virtme-ng command line for ``spec``: SSH over TCP on 127.0.0.1:<port>."""
    cmd: tuple[str, ...] = (
        vng, "--run", str(spec.build.image),
        "--cpus", str(spec.cpus), "--memory", spec.memory,
        "--ssh", str(spec.port), "--ssh-tcp",
        # Straight to 9p: without it vng first waits ~3 s for a virtiofsd that QEMU 7.2's
        # cannot start here ("fuse: invalid argument"), then falls back to 9p anyway.
        "--force-9p",
        # Kernel messages at info level on the console we keep; virtme-ng says "quiet".
        "--append", "loglevel=7",
        RESTRICT_NET,
    )
    cmd += tuple(a for arg in spec.kernel_args for a in ("--append", arg))
    if spec.accel.name == "tcg":
        cmd += ("--disable-kvm",)
    if spec.root is not None:
        cmd += ("--arch", spec.arch.name, "--root", str(spec.root))
    cmd += tuple(f"--rodir={mount}={top}" for top, mount in spec.rodirs)
    if spec.accel.name == "tcg":  # the arch's TCG model, native or not (vng's comes first)
        # One word: vng's argparse takes "-cpu ..." after a space for an option of its own.
        cmd += (f"--qemu-opts=-cpu {spec.arch.tcg_cpu}",)
    return cmd


def netdevs(qemu_args: Sequence[str]) -> dict[str, dict[str, str]]:
    """Pure: each -netdev of a QEMU command line by id, its options with every
    ``-set netdev.<id>.<option>=<value>`` applied (how RESTRICT_NET reaches it)."""
    found: dict[str, dict[str, str]] = {}
    for flag, value in itertools.pairwise(qemu_args):
        if flag == "-netdev":
            backend, *pairs = value.split(",")
            opts = dict(pair.partition("=")[::2] for pair in pairs)
            found[opts.get("id", "")] = {"type": backend, **opts}
        elif flag == "-set" and value.startswith("netdev."):
            target, _, setting = value.partition("=")
            _, netdev, option = target.split(".", 2)
            found.setdefault(netdev, {})[option] = setting
    return found


def vng_env(spec: VMSpec, vng: str, home: Path,
            base: dict[str, str] | None = None) -> dict[str, str]:
    """vng's environment: its own bin dir first on PATH (`sh -c virtme-run ...` needs it
    when the venv is not activated), and HOME moved to the VM's own ``home``."""
    env = dict(os.environ if base is None else base)
    env.update(PYTHONUNBUFFERED="1", PATH=f"{Path(vng).parent}{os.pathsep}{env.get('PATH', '')}")
    if spec.init_launcher is not None:
        env["PATH"] = f"{spec.init_launcher}{os.pathsep}{env['PATH']}"
    env["HOME"] = str(home)
    return env


HOME_PREFIX = "vm-"


def new_home(spec: VMSpec) -> Path:
    """A new, empty HOME for one VM's vng, named by the launcher's pid (stale_homes)."""
    if spec.vng_home is None:
        return Path(tempfile.mkdtemp(prefix=f"kheaders-{HOME_PREFIX}"))
    spec.vng_home.mkdir(mode=0o700, parents=True, exist_ok=True)
    home = spec.vng_home / f"{HOME_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    home.mkdir(mode=0o700)
    return home


def stale_homes(parent: Path) -> list[Path]:
    """The VM homes under ``parent`` whose launcher is gone (killed before its close())."""
    stale = []
    for home in parent.glob(f"{HOME_PREFIX}*-*"):
        pid = home.name[len(HOME_PREFIX):].partition("-")[0]
        if pid.isdigit() and not guardian.alive(int(pid)):
            stale.append(home)
    return stale


def shell_command(spec: VMSpec, vng: str = "vng") -> tuple[str, ...]:
    """The same kernel, machine and root as ``spec``, with a shell on the console instead of
    SSH: what a developer runs to look at a failure by hand."""
    cmd = list(vng_command(spec, vng))
    at = cmd.index("--ssh")
    del cmd[at:at + 3]  # --ssh <port> --ssh-tcp
    cmd.remove(RESTRICT_NET)  # its netdev came with --ssh
    return tuple(cmd)


def arrival(arrivals: Sequence[tuple[float, int]], offset: int) -> float | None:
    """When the console byte at ``offset`` had arrived (the first chunk that reached it)."""
    for when, received in arrivals:
        if received > offset:
            return when
    return None


def profile_boot(launched: float, arrivals: Sequence[tuple[float, int]], text: str,
                 ssh_at: float, ready_at: float) -> BootProfile:
    """Pure: the profile from the console (one character per byte) and the host's clock.
    The guest's clock is placed on the host's by the init line, printed as it happens."""
    marks = consolelog.milestones(text)
    init, done = marks.get("init"), marks.get("init_done")
    start = None
    if init is not None and (seen := arrival(arrivals, init.offset)) is not None:
        start = seen - launched - init.guest_seconds
    return BootProfile(kernel_start=start, init=init.guest_seconds if init else None,
                       init_done=done.guest_seconds if done else None,
                       ssh=ssh_at - launched, ready=ready_at - launched)


def free_port() -> int:
    """A port free right now on 127.0.0.1 (a clash later is caught and retried by the caller)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_LIVE: set[VM] = set()
# The boot milestones come in the first few hundred chunks; a long test's console need not
# be indexed.
MAX_ARRIVALS = 10_000
PANIC_SETTLE = 3.0
# Seconds after a hang report's headline for its body (the stuck task's stack) to arrive.
HANG_SETTLE = 2.0
# Base seconds, scaled like every guest timeout, for vng and QEMU to end on SIGTERM (QEMU
# stops at once; virtme-run's handler exits through atexit, which removes its run-* dir).
TERM_WAIT = 2.0
# A hang detector's headline in the console stream (console.HANG_HEADLINES).
HANG_REPORT = re.compile("|".join(consolelog.HANG_HEADLINES).encode())


# QEMU writes the guest's console (virtconsole on a file chardev) without blocking, and drops
# whatever a full pipe refuses: the pipe's buffer is all the time a reader starved on a loaded
# host has before kernel messages are lost (64 KiB is about a second under TCG).
PIPE_MAX = Path("/proc/sys/fs/pipe-max-size")
PIPE_FALLBACK = 1 << 20


def console_pipe() -> tuple[int, int]:
    """A pipe (read end, write end) for vng's output whose buffer is as large as the system
    lets an unprivileged process make one (fs.pipe-max-size), 1 MiB by default."""
    reader, writer = os.pipe()
    try:
        size = int(PIPE_MAX.read_text())
    except (OSError, ValueError):
        size = PIPE_FALLBACK
    with contextlib.suppress(OSError):  # the pipe keeps its default size
        fcntl.fcntl(reader, fcntl.F_SETPIPE_SZ, size)
    return reader, writer


class VM:
    """A running vng/QEMU process group and its console log.

    ``arrivals`` says when each piece of the console arrived: (monotonic seconds, bytes of
    the log received by then), so a boot profile can time the console's milestones.
    """

    def __init__(self, spec: VMSpec, console: Path, vng: str = "vng") -> None:
        self.spec, self.console = spec, console
        self.base = console.stat().st_size if console.exists() else 0
        self.log = consolelog.ConsoleFile(console, self.base)  # read incrementally, capped
        self.arrivals: list[tuple[float, int]] = []
        self.launched = time.monotonic()
        if spec.vng_home is not None:
            for stale in stale_homes(spec.vng_home):
                shutil.rmtree(stale, ignore_errors=True)
        self.home = new_home(spec)
        self.keys = sshkeys.prepare(self.home)
        reader, writer = console_pipe()
        try:
            self.proc = subprocess.Popen(vng_command(spec, vng), stdin=subprocess.DEVNULL,
                                         stdout=writer, stderr=subprocess.STDOUT,
                                         start_new_session=True,
                                         env=vng_env(spec, vng, self.home))
        except BaseException:
            os.close(reader)
            raise
        finally:
            os.close(writer)
        self.guardian = subprocess.Popen(guardian_command(self.proc.pid),
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.panic = PanicWatch()
        self._drain = threading.Thread(target=_copy, args=(reader, console,
                                                           self.arrivals, self.panic),
                                       daemon=True)
        self._drain.start()
        _LIVE.add(self)

    def alive(self) -> bool:
        """QEMU runs and its kernel has neither panicked nor reported a hang."""
        return (self.proc.poll() is None and self.panic.panicked_at is None
                and self.panic.hung_at is None)

    def kernel_down(self) -> bool:
        """Whether the kernel itself took the guest down: it panicked or reported a hang."""
        return self.panic.panicked_at is not None or self.panic.hung_at is not None

    def gone(self, settle: float = 0.0) -> str | None:
        """Why the guest can no longer answer, or None while it can. After a panic, waits
        (up to PANIC_SETTLE s) for the panic's last line so the console holds all of it;
        ``settle``: seconds to let a dying QEMU exit."""
        if self.panic.panicked_at is not None:
            self.panic.ended.wait(PANIC_SETTLE)
            return "the guest kernel panicked"
        if self.panic.hung_at is not None:  # the report's body follows its headline
            time.sleep(max(0.0, self.panic.hung_at + HANG_SETTLE - time.monotonic()))
            return f"the guest kernel reported a hang ({self.panic.hang})"
        if settle > 0:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=settle)
        code = self.proc.poll()
        return None if code is None else f"QEMU exited (vng status {code})"

    def console_text(self) -> str:
        """This VM's console as a message quotes it: its end, and what was not read, past
        console.READ_CAP."""
        return self.log.view()

    def own_console(self) -> str:
        """This VM's part of the log, one character per byte (offsets match ``arrivals``),
        up to console.READ_CAP: only what arrived since the last call is read."""
        return self.log.head()

    def close(self) -> None:
        """End the whole group (QEMU did not stop on a guest poweroff within 30 s here):
        SIGTERM, TERM_WAIT (scaled) for it to go, SIGKILL for what is left; then remove the
        VM's HOME, its keys and whatever run-* dir virtme-ng did not clean up."""
        _LIVE.discard(self)
        if self.proc.poll() is None:
            _kill_group(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=TERM_WAIT * self.spec.accel.scale(self.spec.arch))
        for proc in (self.proc, self.guardian):
            _kill_group(proc.pid, signal.SIGKILL)  # QEMU may outlive vng in the group
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        self._drain.join(timeout=5)
        shutil.rmtree(self.home, ignore_errors=True)


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


class PanicWatch:
    """Spots a kernel panic, and a hang detector's report, in the console stream as they
    arrive: a panicked guest keeps QEMU running (virtme-ng sets panic=-1 and -no-reboot only
    for --exec scripts), and a hung one keeps a command waiting, so without this every
    command would wait for its deadline before anyone read what the kernel said."""

    START, END = b"Kernel panic - not syncing", b"---[ end Kernel panic"

    def __init__(self) -> None:
        self.tail = b""
        self.panicked_at: float | None = None
        self.hung_at: float | None = None
        self.hang = ""  # the hang report's headline
        self.ended = threading.Event()

    def feed(self, chunk: bytes) -> None:
        window = self.tail + chunk
        if self.hung_at is None:
            found = HANG_REPORT.search(window)
            if found:
                self.hung_at, self.hang = time.monotonic(), found.group().decode("latin-1")
        if self.panicked_at is None and self.START in window:
            self.panicked_at = time.monotonic()
            window = window[window.index(self.START):]
        if self.panicked_at is not None and self.END in window:
            self.ended.set()
        self.tail = window[-128:]


def _copy(reader: int, dest: Path, arrivals: list[tuple[float, int]],
          watch: PanicWatch) -> None:
    received = 0
    with open(reader, "rb") as stream, dest.open("ab") as sink:
        for chunk in iter(lambda: stream.read1(65536), b""):
            sink.write(chunk)
            sink.flush()
            watch.feed(chunk)
            received += len(chunk)
            if len(arrivals) < MAX_ARRIVALS:
                arrivals.append((time.monotonic(), received))


@atexit.register
def _close_all() -> None:
    for vm in list(_LIVE):
        vm.close()
