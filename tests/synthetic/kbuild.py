"""Packing a synthetic tree's archive with the kernel's own rules, not the verifier's model.

tests/data/kernel-<X.Y>/kernel/ holds, verbatim from Debian's linux-source packages, that
kernel's gen_kheaders.sh and the kheaders part of its kernel/Makefile. ``pack`` puts the script
where the kernel has it (<srctree>/kernel/), then has make run the Makefile's rules from the
object tree (kbuild.mk supplies the bits of kbuild they use), so which files are packed, how
comments are stripped, in what order and with what metadata is decided by find, cpio or tar,
perl and GNU tar as in a real build. Nothing of kheaders_suite.verify takes part.

One kernel per generation of the script: 6.12 finds the headers itself and copies them with
cpio (ls -l md5 for incremental builds); 7.3 has the 6.17 rewrite (626c54af3576): make writes
kheaders-srclist and kheaders-objlist and the script copies them with tar.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from kheaders_suite.source.tree import KernelVersion

DATA = Path(__file__).parent.parent / "data"
DRIVER = Path(__file__).with_name("kbuild.mk")
TARGET = "kernel/kheaders_data.tar.xz"
KERNELS = {KernelVersion(6, 12): DATA / "kernel-6.12", KernelVersion(7, 3): DATA / "kernel-7.3"}
TOOLS = ("make", "sh", "find", "xargs", "perl", "tar", "xz", "md5sum")
CPIO_UNTIL = KernelVersion(6, 14)  # 82a1978d0fdc: tar instead of cpio


class PackFailed(RuntimeError):
    """make or gen_kheaders.sh failed on the synthetic tree: the message has their output."""


def kernel_dir(version: KernelVersion) -> Path:
    """tests/data/kernel-<X.Y>/ for the version; ValueError naming the ones there are."""
    found = KERNELS.get(KernelVersion(version.major, version.minor))
    if found is None:
        have = ", ".join(f"{v.major}.{v.minor}" for v in KERNELS)
        raise ValueError(f"no vendored gen_kheaders.sh for {version}: have {have}")
    return found


def tools_for(version: KernelVersion) -> tuple[str, ...]:
    return (*TOOLS, "cpio") if version < CPIO_UNTIL else TOOLS


def make_command(rules: Path, objtree: Path, srctree: Path, srcarch: str,
                 timestamp: str) -> tuple[str, ...]:
    """make with the kernel's rules, from the object tree, as an O= build runs them."""
    return ("make", "-rR", "-s", "--no-print-directory", "-C", str(objtree), "-f", str(DRIVER),
            f"RULES={rules}", f"srctree={srctree}", f"SRCARCH={srcarch}",
            f"KBUILD_BUILD_TIMESTAMP={timestamp}", TARGET)


def make_env() -> dict[str, str]:
    """PATH and the C locale only: TAR_OPTIONS, XZ_DEFAULTS or MAKEFLAGS from the caller's
    environment would change the archive or the run."""
    return {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C"}


def install_script(version: KernelVersion, srctree: Path) -> Path:
    """<srctree>/kernel/gen_kheaders.sh, executable: 7.3's Makefile runs it directly."""
    dest = srctree / "kernel" / "gen_kheaders.sh"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(kernel_dir(version) / "kernel" / "gen_kheaders.sh", dest)
    dest.chmod(0o755)
    return dest


def pack(version: KernelVersion, srctree: Path, objtree: Path, srcarch: str,
         timestamp: str) -> bytes:
    """A clean build of kernel/kheaders_data.tar.xz in ``objtree``; its bytes."""
    missing = [t for t in tools_for(version) if shutil.which(t) is None]
    if missing:
        raise PackFailed(f"{', '.join(missing)} not installed (ci/setup installs them)")
    install_script(version, srctree)
    shutil.rmtree(objtree / "kernel", ignore_errors=True)
    (objtree / "kernel").mkdir(parents=True)
    rules = kernel_dir(version) / "kernel" / "Makefile"
    run = subprocess.run(make_command(rules, objtree, srctree, srcarch, timestamp),
                         env=make_env(), capture_output=True, text=True, timeout=120,
                         check=False)
    if run.returncode != 0:
        raise PackFailed(f"{version} rules failed (rc {run.returncode}):\n"
                         f"{run.stdout}{run.stderr}")
    return (objtree / TARGET).read_bytes()
