"""Step 1: the kernel source. Never written to: builds are O=, patches go to a work copy.

Two origins: Debian's linux-source-X.Y tarball (the embedded default, extracted once into the
cache) or any tree given with --kernel-src. Both become a ``KernelSource`` record.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kheaders_suite.errors import InfraError, UserError
from kheaders_suite.host import proc
from kheaders_suite.host.locks import file_lock
from kheaders_suite.source import debsrc, gittree, plaintree

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


# The kernels the suite's fragments, patches and verifier rules are made for: 6.1 LTS (the
# oldest Debian ships) to mainline 7.x. Outside it a build would fail somewhere obscure.
# ~25 s here for a 150 MB linux-source tarball: the bound is for a hung filesystem.
EXTRACT_TIMEOUT = 1800.0
SUPPORTED_MIN = KernelVersion(6, 1)
SUPPORTED_BELOW = KernelVersion(8, 0)
SUPPORTED = f"{SUPPORTED_MIN.major}.{SUPPORTED_MIN.minor} to {SUPPORTED_BELOW.major - 1}.x"
# CONFIG_IKHEADERS itself: merged for 5.2 by commit 43d8ce9d65a5 ("Provide in-kernel headers
# to make extending kernel easier"), moved to sysfs by commit f7b101d33046 ("kheaders: Move
# from proc to sysfs").
IKHEADERS_SINCE = KernelVersion(5, 2)


def check_supported(version: KernelVersion, what: str) -> None:
    if not SUPPORTED_MIN <= version < SUPPORTED_BELOW:
        why = " (older than CONFIG_IKHEADERS, 5.2)" if version < IKHEADERS_SINCE else ""
        raise UserError(f"{what}: kernel {version} is outside the supported range "
                        f"{SUPPORTED}{why}; pass a {SUPPORTED} tree")


@dataclass(frozen=True)
class KernelSource:
    path: Path  # top of the pristine tree
    version: KernelVersion
    identity: str  # the content's: "debian:<pkg>=<version>", "git:..." or "tree:..."
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
    """Validate a user-given tree; UserError (one line, names the option) when it is not one.

    In the order a user can fix them: a kernel tree at all, its version in the supported range
    (so a tree too old for CONFIG_IKHEADERS is told so, not that a file is missing), the files
    the build runs, then a clean tree."""
    what = f"--kernel-src {tree}"
    if not tree.is_dir():
        why = "not a directory" if tree.exists() else "no such directory"
        raise UserError(f"{what}: {why}; pass the top of a kernel tree")
    _require(tree, ("Makefile", "Kconfig"), f"{what}: not a kernel tree",
             "pass the top of a Linux source tree")
    try:
        version = read_version(tree)
    except ValueError as exc:
        raise UserError(f"{what}: {exc}; pass the top of a kernel tree") from None
    check_supported(version, what)
    _require(tree, ("kernel/gen_kheaders.sh", "scripts/kconfig/merge_config.sh"),
             f"{what}: not a kernel tree with CONFIG_IKHEADERS",
             f"pass a complete {SUPPORTED} tree")
    if (tree / ".config").exists() or (tree / "include/config").exists():
        raise UserError(
            f"{what}: tree has been configured in place and O= builds refuse it; "
            "run 'make mrproper' there (or pass a clean tree)"
        )
    return version


def _require(tree: Path, names: tuple[str, ...], what: str, fix: str) -> None:
    missing = [n for n in names if not (tree / n).exists()]
    if missing:
        raise UserError(f"{what} (missing {missing[0]}); {fix}")


def tree_identity(tree: Path, cache: Path) -> str:
    """The tree's content, for the build key: two checkouts of one commit (two runners, a
    re-clone, a checkout there and back) have one identity and share a build. A git tree
    (``tree/.git``): its HEAD's tree and its uncommitted changes (gittree.py); any other: a
    hash of every file, with per-file hashes cached under ``cache`` (plaintree.py)."""
    if (tree / ".git").exists():
        return gittree.git_identity(tree)
    return plaintree.plain_identity(tree, cache).identity


def user_source(tree: Path, cache: Path) -> KernelSource:
    tree = tree.resolve()
    version = check_kernel_tree(tree)
    return KernelSource(tree, version, tree_identity(tree, cache), str(tree))


def installed_version(package: str) -> str | None:
    """The host's installed version of ``package`` with its tarball present, or None."""
    try:
        out = subprocess.run(
            ("dpkg-query", "-W", "-f=${db:Status-Abbrev}${Version}", package),
            capture_output=True, text=True, check=False, timeout=30,
        )
    except FileNotFoundError:
        return None
    installed = out.returncode == 0 and out.stdout.startswith("ii ")
    if not installed or not (Path("/usr/src") / f"{package}.tar.xz").is_file():
        return None
    return out.stdout[3:].strip()


def embedded_source(cache: Path, package: str = DEFAULT_PACKAGE) -> KernelSource:
    """Debian's linux-source-X.Y, extracted once into the cache: the host's own
    /usr/src/<package>.tar.xz when installed, else the newest .deb in Debian's suites,
    fetched with a private apt configuration (debsrc)."""
    debsrc.check_package_name(package)
    version = installed_version(package)
    cand = None
    if version is None:
        cand = debsrc.candidate(cache, package)
        version = cand.version
    dest = cache / "sources" / f"{package}_{version}"
    tree = dest / package
    with file_lock(cache / "sources" / f"{package}.lock", timeout=900):
        if not (dest / ".extracted").exists():
            _extract(_tarball(cache, package, cand), dest)
            if cand is not None:  # the tree is what is kept; the 160 MB .deb and tarball go
                debsrc.deb_path(cache, cand).unlink(missing_ok=True)
                shutil.rmtree(cache / "sources" / ".debs", ignore_errors=True)
    origin = f"debian {package} {version}" + (
        " (installed)" if cand is None else f" (fetched, sha256 {cand.sha256[:12]})")
    kernel = read_version(tree)
    check_supported(kernel, f"--kernel-package {package}")
    return KernelSource(tree, kernel, f"debian:{package}={version}", origin)


def _tarball(cache: Path, package: str, cand: debsrc.Candidate | None) -> Path:
    if cand is None:
        return Path("/usr/src") / f"{package}.tar.xz"
    deb = debsrc.download(cache, cand)
    return debsrc.unpack_tarball(deb, package, cache / "sources" / ".debs")


def _extract(tarball: Path, dest: Path) -> None:
    shutil.rmtree(dest, ignore_errors=True)  # a half-extracted tree from an interrupted run
    dest.mkdir(parents=True)
    # tar(1) with xz is several times faster than the tarfile module on a 150 MB kernel.
    proc.run_captured(("tar", "-xf", str(tarball), "-C", str(dest)),
                      what=f"extracting {tarball}", error=InfraError, timeout=EXTRACT_TIMEOUT)
    (dest / ".extracted").touch()


__all__ = ["KernelSource", "KernelVersion", "embedded_source", "user_source"]
