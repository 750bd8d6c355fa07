"""Step 1: the kernel source. Never written to: builds are O=, patches go to a work copy.

Two origins: Debian's linux-source-X.Y tarball (the embedded default, extracted once into the
cache) or any tree given with --kernel-src. Both become a ``KernelSource`` record.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kheaders_suite.errors import InfraError, UserError
from kheaders_suite.locks import file_lock

DEFAULT_PACKAGE = "linux-source-6.12"
_VERSION_RE = re.compile(r"^(VERSION|PATCHLEVEL|SUBLEVEL)\s*=\s*(\d+)\s*$", re.M)


@dataclass(frozen=True, order=True)
class KernelVersion:
    major: int
    minor: int
    sub: int = 0

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.sub}"

    @classmethod
    def parse(cls, text: str) -> KernelVersion:
        parts = [int(p) for p in re.findall(r"\d+", text)[:3]]
        if len(parts) < 2:
            raise ValueError(f"not a kernel version: {text!r}")
        return cls(*parts)


@dataclass(frozen=True)
class KernelSource:
    path: Path  # top of the pristine tree
    version: KernelVersion
    identity: str  # changes whenever the tree's content may have changed
    origin: str  # for humans: "debian linux-source-6.12 6.12.117-1~deb12u1" or the path


def read_version(tree: Path) -> KernelVersion:
    """VERSION/PATCHLEVEL/SUBLEVEL from the top Makefile."""
    fields = dict(_VERSION_RE.findall((tree / "Makefile").read_text(errors="replace")))
    if "VERSION" not in fields or "PATCHLEVEL" not in fields:
        raise ValueError("no VERSION/PATCHLEVEL in Makefile")
    return KernelVersion(
        int(fields["VERSION"]), int(fields["PATCHLEVEL"]), int(fields.get("SUBLEVEL", 0))
    )


def check_kernel_tree(tree: Path) -> KernelVersion:
    """Validate a user-given tree; UserError (one line, names the option) when it is not one."""
    if not tree.is_dir():
        raise UserError(f"--kernel-src {tree}: no such directory; pass the top of a kernel tree")
    needed = ("Makefile", "Kconfig", "kernel/gen_kheaders.sh", "scripts/kconfig/merge_config.sh")
    missing = [n for n in needed if not (tree / n).exists()]
    if missing:
        raise UserError(
            f"--kernel-src {tree}: not a kernel tree with CONFIG_IKHEADERS "
            f"(missing {missing[0]}); pass the top of a Linux >= 5.2 source tree"
        )
    if (tree / ".config").exists() or (tree / "include/config").exists():
        raise UserError(
            f"--kernel-src {tree}: tree has been configured in place and O= builds refuse it; "
            "run 'make mrproper' there (or pass a clean tree)"
        )
    try:
        return read_version(tree)
    except ValueError as exc:
        raise UserError(f"--kernel-src {tree}: {exc}; pass the top of a kernel tree") from None


def tree_identity(tree: Path) -> str:
    """Hash of every file's path, size and mtime (ignoring .git): cheap, and any edit changes it."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(tree):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in sorted(files):
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            rel = os.path.relpath(path, tree)
            digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def user_source(tree: Path) -> KernelSource:
    tree = tree.resolve()
    version = check_kernel_tree(tree)
    return KernelSource(tree, version, tree_identity(tree), str(tree))


def debian_package_version(package: str) -> str:
    try:
        out = subprocess.run(
            ("dpkg-query", "-W", "-f=${Version}", package),
            capture_output=True, text=True, check=False, timeout=30,
        )
    except FileNotFoundError:
        raise UserError(
            f"{package}: dpkg-query not found; use --kernel-src on non-Debian hosts") from None
    if out.returncode != 0 or not out.stdout:
        raise UserError(f"{package} is not installed; run ci/setup (apt-get install {package})")
    return out.stdout.strip()


def embedded_source(cache: Path, package: str = DEFAULT_PACKAGE) -> KernelSource:
    """Debian's /usr/src/<package>.tar.xz, extracted once into the cache."""
    version = debian_package_version(package)
    tarball = Path("/usr/src") / f"{package}.tar.xz"
    if not tarball.is_file():
        raise UserError(f"{tarball} missing; reinstall it: apt-get install --reinstall {package}")
    dest = cache / "sources" / f"{package}_{version}"
    tree = dest / package
    with file_lock(cache / "sources" / f"{package}.lock", timeout=900):
        if not (dest / ".extracted").exists():
            _extract(tarball, dest)
    return KernelSource(tree, read_version(tree), f"debian:{package}={version}",
                        f"debian {package} {version}")


def _extract(tarball: Path, dest: Path) -> None:
    if dest.exists():
        subprocess.run(("rm", "-rf", str(dest)), check=True)
    dest.mkdir(parents=True)
    # tar(1) with xz is several times faster than the tarfile module on a 150 MB kernel.
    result = subprocess.run(("tar", "-xf", str(tarball), "-C", str(dest)),
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise InfraError(f"extracting {tarball} failed: {result.stderr.strip()[-300:]}")
    (dest / ".extracted").touch()


__all__ = ["KernelSource", "KernelVersion", "embedded_source", "user_source"]
