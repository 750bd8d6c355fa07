"""A git tree's identity: its HEAD commit's tree, and how its work tree differs from it.

Two clones of one commit, a re-clone, a checkout there and back: one identity, so one build.
A build copies the work tree (worktree.py), so the identity is of the work tree's content as
git sees it, ignored files (build outputs) left out:

- ``git rev-parse HEAD^{tree}``: every tracked path, mode and blob of the commit;
- ``git diff-index HEAD``: the paths whose index entry or file may differ from HEAD: staged
  changes, edits, deletions, mode changes, and files git has not re-read since their stat
  changed (a touch, a copy of the tree);
- ``git ls-files --others --exclude-standard``: untracked files git does not ignore.

Each of those paths is read from the work tree and hashed as git hashes a blob; a path whose
mode and blob are HEAD's drops out (a touched file, a change staged and undone), so the
identity does not depend on git's stat cache or on what is staged. Nothing is written:
no index refresh, no objects. Submodules are left out (a kernel tree has none).
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from kheaders_suite.errors import InfraError, UserError
from kheaders_suite.host import proc

# In the identity: a change of method changes every key.
METHOD = "git:1"
# An 80,000-file tree takes seconds; the bound is for a hung filesystem.
GIT_TIMEOUT = 600.0
# What points git at another repository or index: a hook sets them, and a suite run from
# another repository's hook would read that one instead of the tree.
_REPO_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
             "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR")
# --no-optional-locks: a read must not refresh (write) the index. core.trustctime=false: the
# build's work copy hard-links the tree's files (rsync --link-dest), which changes their
# ctime; trusted, every file would look changed after the first build and be read again.
_SETTINGS = ("--no-optional-locks", "-c", "core.trustctime=false")
_ABSENT = "000000"


@dataclass(frozen=True)
class Blob:
    mode: str  # as git records it: 100644, 100755, 120000
    oid: str


def git_cmd(tree: Path, *args: str) -> tuple[str, ...]:
    unset = tuple(part for name in _REPO_ENV for part in ("-u", name))
    return ("env", *unset, "git", "-C", str(tree), *_SETTINGS, *args)


def head_tree_cmd(tree: Path) -> tuple[str, ...]:
    return git_cmd(tree, "rev-parse", "--verify", "HEAD^{tree}")


def changed_cmd(tree: Path) -> tuple[str, ...]:
    return git_cmd(tree, "diff-index", "-z", "--no-renames", "--ignore-submodules=all",
                   "HEAD", "--")


def untracked_cmd(tree: Path) -> tuple[str, ...]:
    return git_cmd(tree, "ls-files", "-z", "--others", "--exclude-standard")


def parse_changed(out: str) -> dict[str, Blob | None]:
    """``git diff-index -z`` output: each path, with its blob in HEAD (None: not in HEAD).
    Paths are read as UTF-8 (proc.run_captured's text): a kernel tree's are ASCII."""
    fields = out.split("\0")
    found: dict[str, Blob | None] = {}
    for meta, path in zip(fields[0::2], fields[1::2], strict=False):
        if not meta.startswith(":"):
            raise ValueError(f"not a git diff-index record: {meta!r}")
        mode, _, oid, _, _ = meta[1:].split(" ")
        found[path] = None if mode == _ABSENT else Blob(mode, oid)
    return found


def parse_paths(out: str) -> list[str]:
    return [p for p in out.split("\0") if p]


def blob_id(data: bytes, algorithm: str) -> str:
    """The object id git gives ``data`` as a blob (``git hash-object``, without writing)."""
    return hashlib.new(algorithm, b"blob %d\0" % len(data) + data).hexdigest()


def worktree_blob(tree: Path, rel: str, algorithm: str) -> Blob | None:
    """The work tree's file at ``rel`` as git would record it; None if there is no file."""
    path = tree / rel
    try:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            return Blob("120000", blob_id(os.fsencode(os.readlink(path)), algorithm))
        if not stat.S_ISREG(st.st_mode):
            return None
        mode = "100755" if st.st_mode & stat.S_IXUSR else "100644"
        return Blob(mode, blob_id(path.read_bytes(), algorithm))
    except (FileNotFoundError, NotADirectoryError):
        return None


def differences(tree: Path, head: dict[str, Blob | None], algorithm: str) -> list[str]:
    """One record per path whose work tree state is not HEAD's, sorted by path."""
    records = []
    for rel in sorted(head):
        now = worktree_blob(tree, rel, algorithm)
        if now != head[rel]:
            records.append(f"{rel}\0{now.mode}\0{now.oid}" if now else f"{rel}\0{_ABSENT}\0")
    return records


def compose(head_tree: str, records: list[str]) -> str:
    """``git:1:<HEAD's tree>``, and ``+<hash of the differences>`` when there are some."""
    if not records:
        return f"{METHOD}:{head_tree}"
    digest = hashlib.sha256("\0\0".join(records).encode())
    return f"{METHOD}:{head_tree}+{digest.hexdigest()}"


def _git(argv: tuple[str, ...], what: str) -> str:
    return proc.run_captured(argv, what=what, error=InfraError, timeout=GIT_TIMEOUT)


def git_identity(tree: Path) -> str:
    """The identity of the git tree at ``tree`` (its top: ``tree/.git`` exists)."""
    try:
        head_tree = _git(head_tree_cmd(tree), f"git rev-parse in {tree}").strip()
    except InfraError as exc:
        raise UserError(f"--kernel-src {tree}: git cannot read its HEAD "
                        f"({str(exc).splitlines()[0]}); commit the tree, or pass a copy "
                        "without .git") from None
    head = parse_changed(_git(changed_cmd(tree), f"git diff-index in {tree}"))
    for rel in parse_paths(_git(untracked_cmd(tree), f"git ls-files in {tree}")):
        head.setdefault(rel, None)
    algorithm = "sha1" if len(head_tree) == 40 else "sha256"
    return compose(head_tree, differences(tree, head, algorithm))
