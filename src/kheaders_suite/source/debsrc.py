"""Debian's linux-source-X.Y packages that the host has not installed, fetched into the cache.

A private apt configuration (its own sources list, lists, cache and an empty dpkg status under
``<cache>/apt``) runs ``apt-get update`` and ``apt-get download``: the host's apt
configuration and package set are never changed, and nothing is installed. apt verifies the
Release signatures with Debian's keyring and the .deb against the signed Packages index; the
suite checks the file's SHA256 against that index once more before unpacking it, so a
truncated or replaced download in the cache is refused rather than built.

Debian ships linux-source-6.1 (bookworm), -6.12 (trixie, bookworm-security), -7.2 (sid) and
-7.3 (trixie-backports); every suite below is listed, so a newer linux-source-X.Y in any of
them is found the same way.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from kheaders_suite.errors import InfraError, UserError
from kheaders_suite.host.deadline import Deadline
from kheaders_suite.host.digest import file_sha256
from kheaders_suite.host.locks import file_lock
from kheaders_suite.host.proc import end_group

PACKAGE_RE = re.compile(r"^linux-source-\d+\.\d+$")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
MIRROR_ENV = "KHEADERS_DEBIAN_MIRROR"
# (archive path under the mirror, suite): oldest first.
SUITES: tuple[tuple[str, str], ...] = (
    ("debian", "bookworm"),
    ("debian-security", "bookworm-security"),
    ("debian", "trixie"),
    ("debian-security", "trixie-security"),
    ("debian", "trixie-backports"),
    ("debian", "sid"),
)
LISTS_MAX_AGE = 24 * 3600  # refresh the private package lists once a day
UNPACK_TIMEOUT = 1800.0  # dpkg-deb | tar of a ~160 MB .deb; a hung one must not hang the run
# Whitespace, control characters (C0, DEL, C1) and the brackets of apt's [options]: none
# belongs in a mirror's URL.
_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f-\x9f\[\]]")


@dataclass(frozen=True)
class Candidate:
    package: str
    version: str
    sha256: str
    size: int


def check_package_name(package: str) -> None:
    if not PACKAGE_RE.match(package):
        raise UserError(f"--kernel-package {package!r}: not a Debian kernel source package; "
                        "pass linux-source-X.Y (e.g. linux-source-7.3)")


def mirror() -> str:
    """The Debian mirror, KHEADERS_DEBIAN_MIRROR or deb.debian.org; UserError unless it is
    one http(s) URL: it is pasted into sources.list lines, where a newline would add a line
    of the caller's choosing (a "[trusted=yes]" source, say)."""
    value = os.environ.get(MIRROR_ENV, "http://deb.debian.org")
    if not _is_mirror_url(value):
        raise UserError(f"{MIRROR_ENV}={value!r}: not a mirror URL; set it to one http:// or "
                        "https:// URL without spaces or control characters, e.g. "
                        "http://deb.debian.org")
    return value.rstrip("/")


def _is_mirror_url(value: str) -> bool:
    if _UNSAFE.search(value):
        return False
    try:
        url = urllib.parse.urlsplit(value)
    except ValueError:  # a malformed host
        return False
    return url.scheme in ("http", "https") and bool(url.hostname)


def sources_list(base_url: str) -> str:
    lines = [f"deb [signed-by={KEYRING}] {base_url}/{archive} {suite} main"
             for archive, suite in SUITES]
    return "\n".join(lines) + "\n"


def apt_options(root: Path) -> tuple[str, ...]:
    """apt-get/apt-cache options that confine apt to ``root``: nothing of the host's apt
    state is read or written (sources, lists, cache, dpkg status)."""
    settings = {
        "Dir::Etc::SourceList": root / "sources.list",
        "Dir::Etc::SourceParts": os.devnull,
        "Dir::Etc::Preferences": os.devnull,
        "Dir::Etc::PreferencesParts": os.devnull,
        "Dir::State": root / "state",
        "Dir::State::Lists": root / "state/lists",
        "Dir::State::Status": root / "state/status",
        "Dir::Cache": root / "cache",
        # linux-source is Architecture: all, which every arch's index lists: one index,
        # the host's own (the binary-all indexes also failed size checks on a mirror here).
        "APT::Architecture": host_arch(),
        "APT::Architectures::": host_arch(),
        # As root apt downloads as _apt, which cannot write into the suite's cache.
        "APT::Sandbox::User": "root",
        "Debug::NoLocking": "true",
    }
    options: list[str] = []
    for name, value in settings.items():
        options += ["-o", f"{name}={value}"]
    return tuple(options)


@functools.cache
def host_arch() -> str:
    try:
        out = subprocess.run(("dpkg", "--print-architecture"), capture_output=True, text=True,
                             check=False, timeout=30)
    except FileNotFoundError:
        return "amd64"
    return out.stdout.strip() or "amd64"


def update_cmd(root: Path) -> tuple[str, ...]:
    return ("apt-get", "-q", *apt_options(root), "update")


def show_cmd(root: Path, package: str) -> tuple[str, ...]:
    return ("apt-cache", *apt_options(root), "show", package)


def download_cmd(root: Path, cand: Candidate) -> tuple[str, ...]:
    return ("apt-get", "-q", *apt_options(root), "download", f"{cand.package}={cand.version}")


def deb_name(cand: Candidate) -> str:
    return f"{cand.package}_{cand.version.replace(':', '%3a')}_all.deb"


def deb_path(cache: Path, cand: Candidate) -> Path:
    return cache / "apt" / "debs" / deb_name(cand)


def parse_candidates(show_output: str, package: str) -> list[Candidate]:
    """Every stanza of ``apt-cache show`` for ``package``, newest version first."""
    cands = []
    for stanza in show_output.split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z0-9-]+): ?(.*)$", stanza, re.M))
        if fields.get("Package") != package or "SHA256" not in fields:
            continue
        cands.append(Candidate(package, fields["Version"], fields["SHA256"],
                               int(fields.get("Size", "0"))))
    return sorted(cands, key=lambda c: _version_key(c.version), reverse=True)


def _version_key(version: str) -> tuple[tuple[int, ...], int]:
    """Order good enough for one package's versions: the numbers, then '~' (a backport of
    the same upstream sorts below the suite's own build, as dpkg orders them)."""
    upstream = version.split("~")[0]
    return (tuple(int(n) for n in re.findall(r"\d+", upstream)), 0 if "~" in version else 1)


def candidate(cache: Path, package: str) -> Candidate:
    """The newest ``package`` in Debian's suites (the private lists refreshed once a day)."""
    check_package_name(package)
    root = cache / "apt"
    with file_lock(cache / "apt.lock", timeout=900):
        _prepare_root(root)
        stale_error = _refresh(root) if _lists_stale(root) else None
        out = subprocess.run(show_cmd(root, package), capture_output=True, text=True,
                             check=False, timeout=120)
    cands = parse_candidates(out.stdout, package)
    if not cands and stale_error:
        raise InfraError(stale_error)
    if not cands:
        suites = ", ".join(s for _, s in SUITES)
        raise UserError(f"--kernel-package {package}: not in Debian ({suites}); "
                        "pass an existing linux-source-X.Y or a tree with --kernel-src")
    return cands[0]


def download(cache: Path, cand: Candidate) -> Path:
    """The candidate's .deb in the cache, checked against the signed index."""
    root = cache / "apt"
    deb = deb_path(cache, cand)
    with file_lock(cache / "apt.lock", timeout=900):
        if not deb.exists() or file_sha256(deb) != cand.sha256:
            _download(root, cand, deb)
    return deb


def _refresh(root: Path) -> str | None:
    """apt-get update; its error text when it failed (old lists may still answer: a mirror
    in the middle of a sync fails some index files, and apt keeps the previous ones)."""
    try:
        _run(update_cmd(root), "apt-get update (private lists)", root)
    except InfraError as exc:
        return str(exc)
    (root / "state/updated").touch()
    return None


def _prepare_root(root: Path) -> None:
    for sub in ("state/lists/partial", "cache/archives/partial", "debs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "state/status").touch()
    text = sources_list(mirror())
    listing = root / "sources.list"
    if not listing.exists() or listing.read_text() != text:
        listing.write_text(text)
        (root / "state/updated").unlink(missing_ok=True)


def _lists_stale(root: Path) -> bool:
    stamp = root / "state/updated"
    return not stamp.exists() or time.time() - stamp.stat().st_mtime > LISTS_MAX_AGE


def _download(root: Path, cand: Candidate, deb: Path) -> None:
    deb.unlink(missing_ok=True)
    _run(download_cmd(root, cand), f"apt-get download {cand.package}={cand.version}",
         deb.parent)
    if not deb.exists():
        raise InfraError(f"apt-get download left no {deb.name} in {deb.parent}")
    got = file_sha256(deb)
    if got != cand.sha256:
        deb.unlink()
        raise InfraError(f"{deb.name}: SHA256 {got} differs from Debian's index "
                         f"{cand.sha256}; removed it, run again")


def _run(cmd: tuple[str, ...], what: str, cwd: Path) -> None:
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, check=False,
                                cwd=cwd, timeout=1800)
    except FileNotFoundError:
        raise UserError(f"{cmd[0]} not found: fetching Debian's packages needs apt; "
                        "use --kernel-src with a kernel tree instead") from None
    if result.returncode != 0:
        raise InfraError(f"{what} failed (exit {result.returncode}): "
                         f"{result.stderr.strip()[-300:]}")


def unpack_tarball(deb: Path, package: str, dest: Path,
                   timeout: float = UNPACK_TIMEOUT) -> Path:
    """usr/src/<package>.tar.xz out of the .deb into ``dest``; InfraError if dpkg-deb | tar
    outlives ``timeout`` (both are ended then)."""
    dest.mkdir(parents=True, exist_ok=True)
    member = f"./usr/src/{package}.tar.xz"
    deadline = Deadline(timeout)
    with subprocess.Popen(("dpkg-deb", "--fsys-tarfile", str(deb)), stdout=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, start_new_session=True) as deb_tar:
        try:
            result = subprocess.run(("tar", "-x", "-C", str(dest), member),
                                    stdin=deb_tar.stdout, capture_output=True, text=True,
                                    check=False, timeout=deadline.remaining)
            deb_tar.wait(timeout=max(1.0, deadline.remaining))
        except subprocess.TimeoutExpired:
            raise InfraError(f"unpacking {member} from {deb} exceeded {timeout:.0f}s "
                             "(dpkg-deb | tar); stopped it") from None
        finally:
            end_group(deb_tar)
    if result.returncode != 0 or deb_tar.returncode != 0:
        raise InfraError(f"unpacking {member} from {deb} failed: {result.stderr.strip()[-300:]}")
    return dest / member
