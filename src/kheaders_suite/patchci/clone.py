"""The clone kheaders-ci builds from: base and patched checked out, in turn, at one path.

``git clone --shared --no-checkout`` of the user's tree into
<cache>/patchci/clones/<hash of the tree's path>/linux: the objects stay the tree's (the
clone costs a checkout, not a copy of the history), and nothing is written to the tree but
git's own "freshening" of the mtime of an object the clone's git am would have written again
(its guard against pruning; contents never change). The path is stable, so the suite's
object tree for it (build.workspace: one per source path and arch) is reused: the patched
build is incremental on the base's, and a later run on the same tree starts from the last
one's objects. A run holds the clone's lock throughout, since another run's checkout would
change the source under its builds.

The series is applied with ``git am`` onto a detached checkout of the base, committed with a
fixed identity and the base's commit date, so the same base and series give the same
patched commit on every run.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kheaders_suite.errors import SuiteError, UserError
from kheaders_suite.host.locks import file_lock
from kheaders_suite.patchci.series import (
    Series,
    am_failure,
    checked,
    git,
    run_git,
)
from kheaders_suite.source import tree as source

# A run holds the lock for hours (two kernel builds per job under TCG); a second run on the
# same tree waits for it rather than checking out under its builds.
LOCK_TIMEOUT = 24 * 3600.0


def clone_path(cache: Path, tree: Path) -> Path:
    digest = hashlib.sha256(str(tree.resolve()).encode()).hexdigest()[:16]
    return cache / "patchci" / "clones" / digest / "linux"


def clone_cmd(tree: Path, dest: Path) -> tuple[str, ...]:
    return ("git", "clone", "--shared", "--no-checkout", "--quiet", "--", str(tree), str(dest))


def fetch_cmd(clone: Path) -> tuple[str, ...]:
    return git(clone, "fetch", "--quiet", "--prune", "origin")


def checkout_cmd(clone: Path, sha: str) -> tuple[str, ...]:
    return git(clone, "checkout", "--quiet", "--detach", "--force", sha)


def am_cmd(clone: Path, patches: tuple[Path, ...]) -> tuple[str, ...]:
    return git(clone, "am", "--no-3way", *(str(p) for p in patches))


@contextmanager
def clone_lock(clone: Path, say: Callable[[str], None]) -> Iterator[None]:
    lock = clone.parent.with_suffix(".lock")
    with file_lock(lock, LOCK_TIMEOUT,
                   lambda: say(f"waiting for another kheaders-ci run on this tree ({lock})")):
        yield


def _intact(clone: Path) -> bool:
    if not (clone / ".git").is_dir():
        return False
    result = run_git(git(clone, "rev-parse", "--is-inside-work-tree"))
    return result.rc == 0 and result.stdout.strip() == "true"


def ensure_clone(tree: Path, clone: Path) -> bool:
    """The clone, made now (True) or reused and refreshed (False). A clone a killed run left
    half-made, or in the middle of a git am, is made whole again first."""
    if _intact(clone):
        if (clone / ".git" / "rebase-apply").exists():
            run_git(git(clone, "am", "--abort"))
        checked(fetch_cmd(clone), f"git fetch into {clone}")
        return False
    partial = clone.with_name(clone.name + ".partial")
    for path in (clone, partial):
        shutil.rmtree(path, ignore_errors=True)
    clone.parent.mkdir(parents=True, exist_ok=True)
    checked(clone_cmd(tree, partial), f"git clone --shared {tree}")
    partial.rename(clone)
    return True


def remove_clone(clone: Path) -> None:
    """Remove a clone this run made (its <hash> directory; the lock file stays)."""
    shutil.rmtree(clone.parent, ignore_errors=True)


def checkout(clone: Path, sha: str) -> None:
    checked(checkout_cmd(clone, sha), f"git checkout {sha[:12]} in {clone}")


def check_kernel_checkout(clone: Path, what: str) -> None:
    """The suite's own test of a --kernel-src tree (a kernel with CONFIG_IKHEADERS, in the
    supported range, with no .config: O= builds refuse a tree configured in place), on the
    checkout, its message naming the commit instead of the option."""
    try:
        source.check_kernel_tree(clone)
    except UserError as exc:
        raise UserError(str(exc).replace(f"--kernel-src {clone}", what)) from None


def apply(clone: Path, base: str, series: Series, onto: str) -> str:
    """Check out ``base``, apply the series with git am; the patched commit. On failure,
    git am --abort and a one-line UserError naming the patch and its first failing file."""
    checkout(clone, base)
    date = checked(git(clone, "log", "-1", "--format=%cI", base), "git log").stdout.strip()
    result = run_git(am_cmd(clone, tuple(p.path for p in series.patches)),
                     env={"GIT_COMMITTER_DATE": date})
    if result.rc != 0:
        run_git(git(clone, "am", "--abort"))
        raise UserError(am_failure(result.output, series, onto))
    return checked(git(clone, "rev-parse", "HEAD"), "git rev-parse HEAD").stdout.strip()


def tree_of(repo: Path, commit: str) -> str:
    return checked(git(repo, "rev-parse", f"{commit}^{{tree}}"), "git rev-parse").stdout.strip()


@dataclass(frozen=True)
class Prepared:
    """Both sides, ready to check out: what the runs and the report need."""

    tree: Path  # the user's tree (never written to)
    clone: Path
    base_ref: str
    base: str  # the base commit
    patched: str  # the patched commit, in the clone
    published: str  # the patched commit as the user's tree has it (--range whose tip's tree
    #                 is the result), else ""
    series: Series
    created: bool  # the clone was made by this run (removed again if validation fails)


def prepare(tree: Path, clone: Path, base_ref: str, base: str, series: Series) -> Prepared:
    """Clone (or refresh), apply the series, and check both commits are kernel trees the
    suite can build. Any failure removes a clone this call made: nothing half-made stays."""
    created = ensure_clone(tree, clone)
    try:
        onto = f"{base_ref} ({base[:12]})"
        checkout(clone, base)
        check_kernel_checkout(clone, f"--base {onto}")
        patched = apply(clone, base, series, onto)
        check_kernel_checkout(clone, f"the patched tree ({patched[:12]})")
    except SuiteError:
        if created:
            remove_clone(clone)
        raise
    published = series.tip if series.tip and tree_of(clone, patched) == tree_of(
        clone, series.tip) else ""
    return Prepared(tree, clone, base_ref, base, patched, published, series, created)
