"""Host commands run to their end: in a process group of their own, within a bound, and on
failure an error that carries what the command said.

make (build/make.py), mmdebstrap (boot/rootfs.py), rsync and patch (source/worktree.py) and tar
(source/tree.py) all run this way; each caller names the step (``what``) and the error family
it raises (BuildFailed, InfraError). A timeout or an interrupt kills the command's whole group:
make's compilers and mmdebstrap's helpers are its children, and must not outlive it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

from kheaders_suite.errors import InfraError
from kheaders_suite.host.deadline import Deadline
from kheaders_suite.host.guardian import guardian_command

# How often a long command's ``tick`` is called, in seconds.
TICK_EVERY = 30.0
# How much of a failed command's captured stderr its error quotes, in characters.
STDERR_TAIL = 300
DISK_FULL = "No space left on device"


@dataclass(frozen=True)
class Output:
    """What one command appended to its log: everything after its "$ argv" line."""

    log: Path
    start: int  # offset in ``log`` where the command's output begins

    def read(self) -> bytes:
        with self.log.open("rb") as handle:
            handle.seek(self.start)
            return handle.read()


# Called every TICK_EVERY seconds while a logged command runs: its output so far, the
# seconds since it started.
Tick = Callable[[Output, float], None]


def _log_tail(log: Path, lines: int) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def run_logged(argv: tuple[str, ...], log: Path, *, what: str, error: type[InfraError],
               timeout: float, tail_lines: int = 25, cwd: Path | None = None,
               env: Mapping[str, str] | None = None, tick: Tick | None = None,
               every: float = TICK_EVERY, places: Sequence[Path] = ()) -> Output:
    """Run ``argv`` with stdout and stderr appended to ``log``; ``error`` naming ``what``, the
    log and its last ``tail_lines`` lines if it fails, or the log if it outlives ``timeout``.
    ``places``: where else it writes, for the disk-full line (the log's directory is one)."""
    with log.open("a") as sink:
        sink.write(f"\n$ {' '.join(argv)}\n")
        sink.flush()
        output = Output(log, sink.tell())
        proc = _start(argv, cwd, env, stdout=sink, stderr=subprocess.STDOUT)
        with _guarded(proc), \
                _owned(proc, lambda: error(f"{what} exceeded {timeout:.0f}s; log {log}")):
            _wait(proc, Deadline(timeout), None if tick is None else partial(tick, output), every)
    if proc.returncode != 0:
        tail = _log_tail(log, tail_lines)
        # the whole output: with -j, ENOSPC is often above the last lines the other jobs wrote
        said = output.read().decode(errors="replace")
        raise error(f"{what} failed (exit {proc.returncode}); full log {log}\n{tail}"
                    f"{disk_full_hint(said, (log.parent, *places))}")
    return output


def disk_full_hint(said: str, places: Sequence[Path]) -> str:
    """A line saying the disk filled, when the output says so (ENOSPC in a compiler or ld),
    naming the fullest of ``places`` (the object tree's file system may not be the log's)."""
    if DISK_FULL not in said:
        return ""
    free, where = min((shutil.disk_usage(p).free, p) for p in places if p.exists())
    return (f"\nthe disk is full ({free // (1 << 20)} MiB free on the file system of {where}): "
            "free space and run again; nothing of this build was cached")


@contextlib.contextmanager
def _guarded(proc: subprocess.Popen[bytes]) -> Iterator[None]:
    """A guardian kills ``proc``'s group if this process dies first (a killed xdist worker:
    no compiler outlives it); ended with the command."""
    guardian = subprocess.Popen(guardian_command(proc.pid), stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        yield
    finally:
        guardian.kill()
        guardian.wait()


def run_captured(argv: tuple[str, ...], *, what: str, error: type[InfraError],
                 timeout: float | None = None, cwd: Path | None = None) -> str:
    """``argv``'s stdout; ``error`` naming ``what``, the program and the end of its stderr if
    it fails, or the bound if it outlives ``timeout`` (None: no bound)."""
    with _start(argv, cwd, None, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc, \
            _owned(proc, lambda: error(f"{what} exceeded {timeout:.0f}s ({argv[0]})")):
        out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise error(f"{what} failed ({argv[0]} exit {proc.returncode}): "
                    f"{err.decode(errors='replace').strip()[-STDERR_TAIL:]}")
    return out.decode(errors="replace")


def _start(argv: tuple[str, ...], cwd: Path | None, env: Mapping[str, str] | None, *,
           stdout: IO[Any] | int, stderr: int) -> subprocess.Popen[bytes]:
    # Its own process group (a new session): what a timeout or an interrupt kills at once.
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=stdout, stderr=stderr,
                            stdin=subprocess.DEVNULL, start_new_session=True)


@contextlib.contextmanager
def _owned(proc: subprocess.Popen[bytes], timed_out: Callable[[], InfraError]) -> Iterator[None]:
    """Whatever ends the wait (exit, timeout, an interrupt), nothing of ``proc``'s group is
    left running; a timeout is raised as the caller's error, ``timed_out()``."""
    try:
        yield
    except subprocess.TimeoutExpired:
        raise timed_out() from None
    finally:
        end_group(proc)


def _wait(proc: subprocess.Popen[bytes], deadline: Deadline,
          tick: Callable[[float], None] | None, every: float) -> None:
    """Until ``proc`` exits, calling ``tick`` every ``every`` seconds meanwhile;
    TimeoutExpired once ``deadline`` has passed."""
    while True:
        try:
            proc.wait(timeout=min(every, max(1.0, deadline.remaining)))
            return
        except subprocess.TimeoutExpired:
            if deadline.expired:
                raise
            if tick is not None:
                tick(deadline.elapsed)


def end_group(proc: subprocess.Popen[Any]) -> None:
    """Kill what is left of ``proc``'s process group (all of it, if it still runs) and reap
    ``proc``: for a command started in a session of its own (``start_new_session=True``)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
