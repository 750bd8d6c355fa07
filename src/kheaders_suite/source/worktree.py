"""The copy of the source a workspace builds from, with a variant's patches applied.

The user's tree (or the extracted Debian tree) is never written: the work copy is made with
rsync --link-dest (hard links where the filesystem allows, so it is nearly free), and a file a
patch touches is first replaced by a private copy. A work copy that was synced from another
tree or machine (a CI cache of the base's object tree) is compared by content, so that what
did not change keeps its mtime and make rebuilds only what did. All variants of one arch build
in one work copy and one object tree, so switching variant rebuilds only what the patch and
the config change (kernel/kheaders.o and a relink), not the whole kernel.

Nothing here writes through a symlink: the tree (a clone, a series' files) decides what the
work copy holds, and a link in it may point anywhere on the host. A file to change is reached
by no link on the way and is not one itself; the suite's own files there and a private copy
replace whatever is at their name; a touch touches the link itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kheaders_suite.errors import InfraError, PatchFailed, UserError
from kheaders_suite.host import proc
from kheaders_suite.source.tree import KernelVersion

_STATE = ".kheaders-suite-patched.json"
_ORIGIN = ".kheaders-suite-synced-from"
# Bounds, far above what they take here (a first copy ~30 s, a later sync ~2 s, a patch
# under 1 s): a hung filesystem ends the build with an error instead of waiting forever.
COPY_TIMEOUT = 1800.0
PATCH_TIMEOUT = 120.0
_PATCHED_FILE = re.compile(r"^\+\+\+ (?:b/)?(\S+)", re.M)
_CHECKING = re.compile(r"^checking file (\S+)", re.M)


@dataclass(frozen=True)
class PatchSeries:
    name: str
    min_version: KernelVersion
    max_version: KernelVersion  # inclusive, on major.minor; minor 999 stands for "X.x"
    patches: tuple[Path, ...]

    @property
    def range(self) -> str:
        return range_name(self.min_version, self.max_version)


ANY_MINOR = 999


def parse_range(name: str) -> tuple[KernelVersion, KernelVersion]:
    """"6.1-6.16" or "6.17-7.x": inclusive bounds on major.minor."""
    low, sep, high = name.partition("-")
    if not sep:
        raise ValueError(f"not a version range: {name!r}")
    upper = (KernelVersion(int(high[:-2]), ANY_MINOR) if high.endswith(".x")
             else KernelVersion.parse(high))
    return KernelVersion.parse(low), KernelVersion(upper.major, upper.minor, 10**6)


def range_name(low: KernelVersion, high: KernelVersion) -> str:
    top = f"{high.major}.x" if high.minor == ANY_MINOR else f"{high.major}.{high.minor}"
    return f"{low.major}.{low.minor}-{top}"


def pick_series(root: Path, name: str, version: KernelVersion) -> PatchSeries:
    """The series whose version range holds ``version``.

    <root>/<name>/<min>-<max>/*.patch (root: catalog/kernels/patches/), e.g. proc/6.1-6.16:
    one dir per range of kernels whose kernel/kheaders.c and init/Kconfig the patch was made
    for. A version in the supported range that no dir covers is an error naming what is
    carried, and the directory to add."""
    ranges = []
    for sub in sorted((root / name).iterdir()) if (root / name).is_dir() else []:
        try:
            ranges.append((*parse_range(sub.name), sub))
        except ValueError:
            continue
    for low, high, folder in sorted(ranges):
        if low <= version <= high:
            return PatchSeries(name, low, high, tuple(sorted(folder.glob("*.patch"))))
    have = ", ".join(range_name(lo, hi) for lo, hi, _ in sorted(ranges)) or "none"
    raise PatchFailed(f"no {name} patch covers kernel {version} (carried: {have}); "
                      f"add {root / name}/<min>-<max>/ for it")


def patched_files(patch_text: str) -> list[str]:
    return [p for p in _PATCHED_FILE.findall(patch_text) if p != "/dev/null"]


def first_failing_file(patch_output: str) -> str:
    """The first file GNU patch reported a failure for, from its --dry-run output."""
    current = "?"
    for line in patch_output.splitlines():
        if m := _CHECKING.match(line) or re.match(r"^patching file (\S+)", line):
            current = m.group(1)
        elif "FAILED" in line or "can't find file" in line or "malformed" in line:
            return current
    return current


def patch_cmd(work: Path, patch: Path, dry_run: bool) -> tuple[str, ...]:
    args = ("patch", "-p1", "--forward", "--batch", "--no-backup-if-mismatch", "-d", str(work))
    return (*args, *(("--dry-run",) if dry_run else ()), "-i", str(patch))


def rsync_cmd(src: Path, work: Path, by_content: bool = False) -> tuple[str, ...]:
    """By size and mtime, hard-linking the tree's files (-a --link-dest); or ``by_content``:
    by checksum, with neither -t nor --link-dest (rsync links a matching file in place of an
    equal one), so that an unchanged file keeps its mtime and make does not rebuild from it,
    and a changed one is written now, newer than any object."""
    if by_content:
        return ("rsync", "-rlpgoD", "--checksum", "--delete", "--exclude=/.git",
                f"{src}/", f"{work}/")
    return ("rsync", "-a", "--delete", "--exclude=/.git", f"--link-dest={src}",
            f"{src}/", f"{work}/")


def origin_of(src: Path) -> str:
    """The tree a work copy was last synced from, on this machine since its boot, while its
    files carry the tree's mtimes (hard links, or copies made with -a): then size and mtime
    tell what changed. Any other work copy (restored from another CI runner's cache, made
    from a clone since removed: its unchanged files are older than the tree's) is synced by
    content."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    st = src.stat()
    return f"{src} {st.st_dev}:{st.st_ino} {boot}"


def carries_mtimes(src: Path, work: Path) -> bool:
    """Whether the work copy's files carry the tree's mtimes (after a reboot: hard links)
    or not (restored from elsewhere, or made from a clone since removed: then it stays
    synced by content), told by the top Makefile. Wrong either way, a sync is slower or a
    build longer, never wrong."""
    try:
        return (work / "Makefile").stat().st_mtime_ns == (src / "Makefile").stat().st_mtime_ns
    except OSError:
        return False


def sync(src: Path, work: Path, version: KernelVersion, series: PatchSeries | None) -> None:
    """Make ``work`` equal to ``src`` plus ``series``, touching only what differs."""
    work.mkdir(parents=True, exist_ok=True)
    previous = _read_state(work)
    origin = origin_of(src)
    by_content = any(work.iterdir()) and _read_origin(work) != origin
    proc.run_captured(rsync_cmd(src, work, by_content), what="rsync of the kernel source",
                      error=InfraError, timeout=COPY_TIMEOUT)
    if not by_content or carries_mtimes(src, work):  # else rsync --delete removed it
        _replace(work / _ORIGIN, origin)
    # rsync restored previously patched files with their old mtimes; make compares mtimes,
    # so without a touch an object built from the patched file would be kept.
    for rel in previous:
        path = _inside(work, rel)
        if os.path.lexists(path):
            _unshare(path)  # never touch the shared inode: it is the user's file
            os.utime(path, follow_symlinks=False)
    touched: list[str] = []
    for patch in series.patches if series else ():
        touched += _apply(work, patch, version)
    _write_state(work, touched)


def _apply(work: Path, patch: Path, version: KernelVersion) -> list[str]:
    files = patched_files(patch.read_text(errors="replace"))
    for rel in files:
        _regular(work, rel)  # GNU patch refuses a link too, but names no reason
    dry = subprocess.run(patch_cmd(work, patch, True), capture_output=True, text=True,
                         timeout=PATCH_TIMEOUT)
    if dry.returncode != 0:
        raise PatchFailed(
            f"carried patch {patch.parent.parent.name}/{patch.parent.name}/{patch.name} "
            f"does not apply to {version}: "
            f"first failing file {first_failing_file(dry.stdout + dry.stderr)}"
        )
    for rel in files:
        _unshare(_regular(work, rel))
    proc.run_captured(patch_cmd(work, patch, False), what=f"applying {patch.name}",
                      error=InfraError, timeout=PATCH_TIMEOUT)
    return files


def edit_file(work: Path, rel: str, text: str, mtime_ns: int | None = None) -> None:
    """Change one file of the work copy, as a developer's edit would: on a private copy (never
    the shared inode), with ``mtime_ns`` when given, and recorded so the next sync restores
    the original and touches it (make must see the restored file as newer)."""
    path = _regular(work, rel)
    _unshare(path)
    path.write_text(text)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    touched = _read_state(work)
    if rel not in touched:
        _write_state(work, [*touched, rel])


def _inside(work: Path, rel: str) -> Path:
    """``work / rel``, refused (UserError naming it) when ``rel`` leaves the work copy or a
    directory on the way is a symlink: writing there would write wherever the link points."""
    if os.path.isabs(rel) or ".." in Path(rel).parts:
        raise UserError(f"{rel}: not a path inside the work copy {work}; refusing to write it")
    path = work
    for part in Path(rel).parts[:-1]:
        path = path / part
        if path.is_symlink():
            raise UserError(f"{path} is a symlink (to {os.readlink(path)}); refusing to write "
                            f"{rel} through it")
    return work / rel


def _regular(work: Path, rel: str) -> Path:
    """``_inside(work, rel)``, refused as well when it is a symlink itself."""
    path = _inside(work, rel)
    if path.is_symlink():
        raise UserError(f"{path} is a symlink (to {os.readlink(path)}); refusing to write "
                        "through it")
    return path


def _unshare(path: Path) -> None:
    """Replace a hard-linked file or symlink by a private copy, so that a change cannot reach
    the original: a link is copied as a link, never what it points at. The copy is made in a
    new directory of its own, so no name the tree holds is written."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if st.st_nlink < 2 or not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        return
    scratch = Path(tempfile.mkdtemp(prefix=".unshare-", dir=path.parent))
    try:
        if stat.S_ISLNK(st.st_mode):
            (scratch / path.name).symlink_to(os.readlink(path))
        else:
            shutil.copy2(path, scratch / path.name)
        os.replace(scratch / path.name, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _replace(path: Path, text: str) -> None:
    """``path`` holding ``text``, in a new file renamed over whatever is there (a link the
    tree put at this name included), never written through it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _read_origin(work: Path) -> str | None:
    try:
        return (work / _ORIGIN).read_text()
    except OSError:
        return None


def _read_state(work: Path) -> list[str]:
    try:
        return list(json.loads((work / _STATE).read_text()))
    except (FileNotFoundError, ValueError):
        return []


def _write_state(work: Path, touched: Sequence[str]) -> None:
    _replace(work / _STATE, json.dumps(list(touched)))
