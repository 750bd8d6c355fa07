"""A plain tree's identity (no .git): a hash of every file's path, mode and content.

Reading a kernel tree (1.4 GB) takes seconds, so each file's hash is kept in a cache file,
<cache>/identity/<hash of the tree's path>.json, under what any change to the file changes:
size, mtime, ctime and inode. ctime too, because a same-size edit whose mtime is put back
(cp -p, tar, rsync -t onto the file) still moves it, and nothing can set it back. A warm
check is then a walk of the tree (one lstat a file) and a read of the cache file.

Several processes (xdist workers) may compute at once: each reads the cache and writes a
whole new file under a name of its own, renamed over the old one, so a reader sees one whole
file or another. A cache file that does not parse is ignored and replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kheaders_suite.errors import UserError

# In the identity: a change of method changes every key.
METHOD = "tree:1"
CACHE_VERSION = 1
# A file changed again within the timestamp tick it was hashed in keeps its stamp, so a file
# whose ctime is this close to the hashing is hashed again next time instead of cached.
# 2 s: filesystems with whole-second timestamps too.
SETTLE_NS = 2_000_000_000
_STAMP_FIELDS = 4  # size, mtime_ns, ctime_ns, inode; then the sha256


@dataclass(frozen=True)
class TreeHash:
    identity: str
    files: int
    hashed: int  # files read this time: not in the cache, or changed since


def cache_file(cache: Path, tree: Path) -> Path:
    return cache / "identity" / f"{hashlib.sha256(str(tree).encode()).hexdigest()[:16]}.json"


def kind(mode: int) -> str:
    """f, x (executable), l (symlink: hashed by its target), o (other: no content). Of the
    permission bits only the owner's x: the rest depend on the umask of whoever unpacked
    the tree, and change no build."""
    if stat.S_ISLNK(mode):
        return "l"
    if stat.S_ISREG(mode):
        return "x" if mode & stat.S_IXUSR else "f"
    return "o"


def walk(tree: Path) -> Iterator[tuple[str, str, os.stat_result]]:
    """(path relative to ``tree``, full path, lstat) of everything but directories; .git left
    out. Strings, not Paths: a kernel tree has 90,000 files, and a Path costs ~10 us."""
    pending = [""]
    top = os.fspath(tree)
    while pending:
        rel_dir = pending.pop()
        with os.scandir(os.path.join(top, rel_dir)) as entries:
            for entry in entries:
                rel = f"{rel_dir}{entry.name}"
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != ".git":
                        pending.append(f"{rel}/")
                    continue
                try:
                    yield rel, entry.path, entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # removed while the tree is walked
                    continue


def load_cache(path: Path) -> dict[str, Any]:
    """rel -> [size, mtime_ns, ctime_ns, inode, sha256]; {} for a missing or broken file.
    Entries are checked where they are used (_cached): most never are."""
    try:
        doc = json.loads(path.read_text())
        files = doc["files"] if doc["version"] == CACHE_VERSION else {}
        return files if isinstance(files, dict) else {}
    except (OSError, ValueError, TypeError, KeyError):
        return {}


def _cached(entry: Any, stamp: list[int]) -> str | None:
    """The entry's sha256 if it is well-formed and ``stamp`` is its."""
    if isinstance(entry, list) and len(entry) == _STAMP_FIELDS + 1 and \
            entry[:_STAMP_FIELDS] == stamp and isinstance(entry[-1], str) and \
            len(entry[-1]) == 64:
        return entry[-1]
    return None


def save_cache(path: Path, tree: Path, files: dict[str, list[Any]]) -> None:
    """Written whole under a name of its own, then renamed into place. A cache that cannot
    be written (a full disk) costs the next check its speed, nothing else."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump({"version": CACHE_VERSION, "tree": str(tree), "files": files}, handle,
                      separators=(",", ":"))
        os.replace(tmp, path)
    except OSError:
        pass
    finally:
        Path(tmp).unlink(missing_ok=True)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _content(path: str, st: os.stat_result, stamp: list[int], known: Any
             ) -> tuple[str, bool]:
    """(sha256 of the content, whether the file was read now)."""
    if stat.S_ISLNK(st.st_mode):
        return hashlib.sha256(os.fsencode(os.readlink(path))).hexdigest(), False
    if not stat.S_ISREG(st.st_mode):
        return "", False
    cached = _cached(known, stamp)
    if cached is not None:
        return cached, False
    return file_sha256(path), True


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def plain_identity(tree: Path, cache: Path, settle_ns: int = SETTLE_NS) -> TreeHash:
    """``tree:1:<sha256>`` of the tree at ``tree``, with the per-file cache under ``cache``."""
    settled = time.time_ns() - settle_ns
    where = cache_file(cache, tree)
    known = load_cache(where)
    digest = hashlib.sha256()
    kept: dict[str, list[Any]] = {}
    files = hashed = 0
    try:
        for rel, path, st in sorted(walk(tree)):
            stamp = _stamp(st)
            try:
                sha, read = _content(path, st, stamp, known.get(rel))
            except FileNotFoundError:  # removed since the walk
                continue
            digest.update(b"%s\0%s\0%s\0" % (os.fsencode(rel), kind(st.st_mode).encode(),
                                             sha.encode()))
            files, hashed = files + 1, hashed + read
            if stat.S_ISREG(st.st_mode) and st.st_ctime_ns < settled:
                kept[rel] = [*stamp, sha]
    except (PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        raise UserError(f"--kernel-src {tree}: cannot read {exc.filename} ({exc.strerror}); "
                        "a build could not either") from None
    if kept != known:
        save_cache(where, tree, kept)
    return TreeHash(f"{METHOD}:{digest.hexdigest()}", files, hashed)
