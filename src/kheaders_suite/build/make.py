"""The make runner: a build's commands into one log, its stage and progress printed as they
go, in the environment that keeps the build's bytes stable and ccache's hits safe."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from kheaders_suite.build import sandbox
from kheaders_suite.build.steps import count_steps, progress_line
from kheaders_suite.catalog.arches.arch import Arch
from kheaders_suite.errors import BuildFailed, InfraError
from kheaders_suite.host import proc
from kheaders_suite.records import Progress
from kheaders_suite.text import first_line

PROGRESS_EVERY = 30.0


def compiler_command(arch: Arch, use_ccache: bool) -> str:
    """The CC make is given: the arch's gcc, under ccache when asked and installed."""
    gcc = f"{arch.cross_prefix()}gcc"
    return f"ccache {gcc}" if use_ccache and shutil.which("ccache") else gcc


def make_env(timestamp: str, cache_dir: Path, ccache: str = "ccache") -> dict[str, str]:
    """What every build command runs with, besides the caller's environment; ccache's
    directory is ``ccache`` in ``cache_dir``."""
    return {
        "KBUILD_BUILD_TIMESTAMP": timestamp,
        "KBUILD_BUILD_USER": "kheaders",
        "KBUILD_BUILD_HOST": "suite",
        # Before 6.14 (commit 41e86fe7ebe9) the archive packs include/generated/utsversion.h,
        # whose "#N" build number every vmlinux link bumps: the archive then carries the
        # previous link's number, and a later make (modules_install) repacks it with the new one.
        # A fixed number keeps UTS_VERSION, and so the archive, stable across links.
        "KBUILD_BUILD_VERSION": "1",
        "CCACHE_DIR": str(cache_dir / ccache),
        # Relative paths in the hash, so work copies at other paths still hit.
        "CCACHE_BASEDIR": str(cache_dir),
        "CCACHE_MAXSIZE": "8G",
        "CCACHE_NOHASHDIR": "1",
        # Never depend mode: it keys on the compiler's -MD list, which does not name the file
        # an asm .incbin pulls in, so it served a kheaders.o embedding an older archive (the
        # identity check caught it). The default mode scans preprocessed output for .incbin
        # and does not cache kheaders.o (nor configs.o) at all. (ccache booleans are true for
        # any value, even "0": the NO form is the way to say no, whatever the user's config.)
        "CCACHE_NODEPEND": "1",
        # Compile the preprocessed output ccache already made instead of preprocessing again:
        # a miss cost 37% over plain gcc with the second preprocessor run, 16% without (59
        # kernel/ and mm/ files); a cold x86_64 build 495 s -> 431 s, every archive check
        # passing on it (measured, TCG host, empty ccache both times).
        "CCACHE_NOCPP2": "1",
    }


class Runner:
    """Runs build commands into one log, printing the stage and its progress as it goes.

    ``bwrap``: run each command in the build sandbox (build/sandbox.py), writable there only
    ``places`` and ``writable`` (ccache's directory), and what one command adds (``writes``),
    ``readable`` seen read-only even under /tmp; None runs them as they are."""

    def __init__(self, log: Path, env: dict[str, str], progress: Progress, label: str,
                 timeout: float, places: tuple[Path, ...] = (), bwrap: str | None = None,
                 writable: tuple[Path, ...] = (), readable: tuple[Path, ...] = ()) -> None:
        self.log, self.env, self.progress, self.label = log, env, progress, label
        self.timeout = timeout
        self.places = places  # where the commands write besides the log: the work copy, objects
        self.bwrap, self.writable, self.readable = bwrap, writable, readable
        self.current = "start"
        self.t0 = time.monotonic()
        self.steps = 0  # kbuild steps the last command printed

    def stage(self, name: str) -> None:
        self.current = name
        self.progress(f"{self.label}: {name} ({time.monotonic() - self.t0:.0f}s)")

    def run(self, cmd: tuple[str, ...], cwd: Path | None = None,
            env: dict[str, str] | None = None, expected: int | None = None,
            writes: tuple[Path, ...] = ()) -> None:
        """``writes``: where this command writes besides the runner's places (made here)."""
        def tick(output: proc.Output, elapsed: float) -> None:
            line = progress_line(self.current, count_steps(output.read()), expected, elapsed)
            self.progress(f"{self.label}: {line}, log {self.log}")

        start = self.log.stat().st_size if self.log.exists() else 0
        try:
            output = proc.run_logged(self.sandboxed(cmd, writes), self.log,
                                     what=f"{self.label}: {self.current}",
                                     error=BuildFailed, timeout=self.timeout, cwd=cwd,
                                     env=self.environment(env or {}), tick=tick,
                                     every=PROGRESS_EVERY, places=(*self.places, *writes))
        except BuildFailed as exc:
            raise self.explained(exc, start) from None
        self.steps = count_steps(output.read())

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        """A command's environment: this process's and the build's, then ``env``; in the
        sandbox only a few of this process's variables (sandbox.environment)."""
        build = {**self.env, **env}
        if self.bwrap is None:
            return {**os.environ, **build}
        return sandbox.environment(os.environ, build)

    def sandboxed(self, cmd: tuple[str, ...], writes: tuple[Path, ...]) -> tuple[str, ...]:
        """``cmd`` as it runs: in the sandbox, its writable places made first, if asked."""
        if self.bwrap is None:
            return cmd
        places = (*self.places, *self.writable, *writes)
        for place in places:
            place.mkdir(parents=True, exist_ok=True)
        return sandbox.bwrap_command(self.bwrap, places, cmd, self.readable)

    def explained(self, exc: BuildFailed, start: int) -> InfraError:
        """``exc``, led by what the sandbox said in the command's output (from ``start`` in
        the log): a refused write (with -j rarely among the last lines, and the first line is
        what a report shows of a build failure), or bwrap's own failure to start, which is
        no build's fault (an InfraError, not BuildFailed)."""
        if self.bwrap is None:
            return exc
        with self.log.open("rb") as handle:
            handle.seek(start)
            # what the command said: after the "$ argv" line proc.run_logged writes first
            said = handle.read().decode(errors="replace").lstrip("\n").partition("\n")[2]
        where = f"{self.label}: {self.current}"
        if said.startswith(sandbox.OWN_ERROR):
            return InfraError(f"{where}: {sandbox.DID_NOT_START}: {first_line(said)}\n{exc}")
        line = sandbox.refused_write(said)
        if not line:
            return exc
        return BuildFailed(f"{where}: the build sandbox refused a write outside the work copy "
                           f"and object tree: \"{line}\"\n{exc}")
