"""make of a series someone else wrote, in a bubblewrap (bwrap) sandbox.

A posted series brings its own Makefiles, Kconfig, scripts and host programs, and make runs
them with the suite's privileges (root in CI). kheaders-ci asks for the sandbox (it sets
SANDBOX_VARIABLE for the suite's pytest runs); every make of the build (configure, the
image, modules, modules_install, an external module) then runs inside bwrap:

- the host's file system read-only (``--ro-bind / /``), with a fresh /proc, a minimal /dev
  and a private, empty /tmp (TMPDIR points there); what the build reads from under the
  host's /tmp (a cache or checkout there) is bound back read-only over it;
- writable only what the step writes: the work copy and the object tree of the build,
  ccache's directory, and where modules_install or an external module build put their files
  (build/kernel.py passes each);
- every namespace unshared (``--unshare-all``): no network but a loopback of its own, no
  signals to host processes; no capabilities (``--cap-drop ALL``), no controlling terminal
  (``--new-session``), and it dies with the suite (``--die-with-parent``);
- of the suite's environment only PATH, HOME, the locale and a few more (KEPT_VARIABLES),
  besides what the build sets.

A write anywhere else fails with EROFS; the build error then quotes that line first (what
the verdict shows as the series' build failure). bwrap's own failure to set the sandbox up
is an infrastructure error instead, blamed on no series. Reads are not confined: a series can read
whatever the suite's user can read, and put it in what the build produces.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from kheaders_suite.errors import InfraError, UserError

SANDBOX_VARIABLE = "KHEADERS_SANDBOX"  # "1": every make runs in the sandbox
BWRAP = "bwrap"
REFUSED = "Read-only file system"  # strerror(EROFS): a write outside the writable binds
OWN_ERROR = "bwrap: "  # how bwrap's own errors start (it failed to set the sandbox up)
# In the error of a command whose sandbox did not start: patchci/run.py blames no series
# for it.
DID_NOT_START = "the build sandbox did not start"
MISSING = f"{BWRAP} not found: apt-get install bubblewrap, or --no-sandbox"
PROBE_TIMEOUT = 60.0
# What of the suite's own environment a sandboxed command sees, besides what the build sets
# (make_env, ARCH, CROSS_COMPILE): not the CI's variables, whose tokens (CI_JOB_TOKEN...) a
# series could write into what it builds.
KEPT_VARIABLES = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "LC_CTYPE",
                  "TZ", "TERM")


def wanted(environ: Mapping[str, str]) -> bool:
    """Whether this process's builds are to run in the sandbox (kheaders-ci says so)."""
    return environ.get(SANDBOX_VARIABLE, "") == "1"


def find_bwrap() -> str:
    """bwrap's path; UserError naming the fix when it is not installed."""
    found = shutil.which(BWRAP)
    if found is None:
        raise UserError(MISSING)
    return found


def bwrap_command(bwrap: str, writable: Sequence[Path], argv: Sequence[str],
                  readable: Sequence[Path] = ()) -> tuple[str, ...]:
    """``argv`` inside the sandbox, ``writable`` its only writable places (pure). /tmp's
    tmpfs comes before the binds, so a place under /tmp stays visible: ``readable`` (what
    the command reads there, a cache directory under /tmp) read-only, then ``writable``."""
    binds: list[str] = []
    for place in dict.fromkeys(readable):
        binds += ["--ro-bind", str(place), str(place)]
    for place in dict.fromkeys(writable):
        binds += ["--bind", str(place), str(place)]
    return (bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
            "--setenv", "TMPDIR", "/tmp", *binds, "--", *argv)


def environment(outside: Mapping[str, str], build: Mapping[str, str]) -> dict[str, str]:
    """A sandboxed command's environment: KEPT_VARIABLES of ``outside``, then ``build``."""
    return {**{k: outside[k] for k in KEPT_VARIABLES if k in outside}, **build}


def refused_write(output: str) -> str:
    """The first line of ``output`` saying a write was refused (EROFS), stripped; "" if none.
    Outside the sandbox's writable binds every file system is read-only."""
    return next((line.strip() for line in output.splitlines() if REFUSED in line), "")


def probe(bwrap: str) -> None:
    """Run ``true`` in the sandbox once: InfraError with bwrap's own words when this host
    cannot make one (no user namespaces, a container's seccomp or AppArmor profile), found
    before anything is built instead of as every build's failure."""
    try:
        done = subprocess.run(bwrap_command(bwrap, (), ("true",)), capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, timeout=PROBE_TIMEOUT,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InfraError(f"{DID_NOT_START} ({bwrap}): {exc}") from None
    if done.returncode != 0:
        said = done.stderr.strip().splitlines()
        raise InfraError(f"the build sandbox ({bwrap}) cannot run here: "
                         f"{said[-1] if said else f'exit {done.returncode}'}; "
                         "it needs user namespaces or CAP_SYS_ADMIN (ci/templates say how "
                         "in a container), or pass --no-sandbox")
