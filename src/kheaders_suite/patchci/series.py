"""The series under test, read from the user's git tree or mail files into single messages.

A series is a list of patches, one mail message each, in the order ``git am`` applies them:

- ``--range A..B``: the commits of ``git rev-list A..B`` (in B, not in A), oldest first, as
  ``git format-patch`` writes them. They are applied onto --base (default A) with git am,
  like any other series: one path for both kinds of input, one way a patch fails. When the
  result has B's tree (the usual case: --base is A), the patched commit is B itself.
- ``--mbox FILE...``: patch files and mboxes (``git format-patch`` output, the .mbx b4 writes
  for a series), split with ``git mailsplit``; messages without a diff (a cover letter, a
  reply) are left out, and a cover letter names the series.

Reading the tree is read-only (rev-parse, rev-list, format-patch into a scratch directory):
the user's tree is never written to. Every bad input is a UserError naming its option.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path

from kheaders_suite.errors import InfraError, UserError
from kheaders_suite.host.digest import file_sha256
from kheaders_suite.text import first_line

# Every git command of kheaders-ci runs with these: nothing from the user's configuration may
# change what a patch says (diff.noprefix breaks format-patch's output for git am), run hooks
# in the clone, or ask for a signing key. Committer identity for the commits git am makes.
# core.trustctime=false: the build's work copy hard-links the clone's files (rsync
# --link-dest), which changes their ctime; trusted, that makes `git checkout --force` rewrite
# every file, new mtimes and all, and the next build of the clone is a cold one.
GIT_SETTINGS = (
    "-c", "core.hooksPath=/dev/null", "-c", "commit.gpgSign=false",
    "-c", "core.trustctime=false",
    "-c", "diff.noprefix=false", "-c", "diff.mnemonicPrefix=false",
    "-c", "am.threeWay=false", "-c", "am.keepcr=false", "-c", "advice.detachedHead=false",
    "-c", "user.name=kheaders-ci", "-c", "user.email=kheaders-ci@localhost",
)
# A clone of a kernel tree, or a checkout of it on a slow disk, takes minutes; not hours.
GIT_TIMEOUT = 3600.0
_SHA = re.compile(r"^[0-9a-f]{40}$")
_FROM_LINE = re.compile(r"^From ([0-9a-f]{40}) ", re.M)
_SUBJECT = re.compile(r"^Subject: (.*)$", re.M)


def git(repo: Path, *args: str) -> tuple[str, ...]:
    """git with the fixed settings, on ``repo``."""
    return ("git", "-C", str(repo), *GIT_SETTINGS, *args)


@dataclass(frozen=True)
class GitResult:
    rc: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_git(argv: Sequence[str], *, stdin: Path | None = None,
            env: Mapping[str, str] | None = None) -> GitResult:
    """Run one git command, its output captured (git never prompts: stdin is a file or
    /dev/null), in the C locale (git am's messages are parsed). A git that cannot be started
    is the machine's fault, not the input's."""
    full_env = {**os.environ, "LC_ALL": "C", "LANGUAGE": "", **(env or {})}
    try:
        with (stdin or Path(os.devnull)).open("rb") as source:
            done = subprocess.run(tuple(argv), stdin=source, capture_output=True, check=False,
                                  env=full_env, timeout=GIT_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InfraError(f"{' '.join(argv[:4])}...: {exc}") from None
    return GitResult(done.returncode, done.stdout.decode(errors="replace"),
                     done.stderr.decode(errors="replace"))


def checked(argv: Sequence[str], what: str, *, stdin: Path | None = None,
            env: Mapping[str, str] | None = None) -> GitResult:
    """run_git, and InfraError naming ``what`` if git failed where bad input cannot make it."""
    result = run_git(argv, stdin=stdin, env=env)
    if result.rc != 0:
        raise InfraError(f"{what} failed (git exit {result.rc}): "
                         f"{first_line(result.stderr) or first_line(result.stdout)}")
    return result


# --- the tree and its refs --------------------------------------------------------------------

def check_tree(tree: Path) -> Path:
    """The resolved top of a git tree (a work tree's top, or a bare repository), or UserError:
    a subdirectory of a git tree is refused with the top it belongs to."""
    if not tree.is_dir():
        raise UserError(f"--tree {tree}: no such directory; pass a kernel git tree")
    tree = tree.resolve()
    bare = run_git(git(tree, "rev-parse", "--is-bare-repository"))
    if bare.rc != 0:
        raise UserError(f"--tree {tree}: not a git tree; pass a kernel git checkout "
                        "(git clone) or a bare repository")
    where = "--absolute-git-dir" if bare.stdout.strip() == "true" else "--show-toplevel"
    top = Path(run_git(git(tree, "rev-parse", where)).stdout.strip())
    if top.resolve() != tree:
        raise UserError(f"--tree {tree}: inside the git tree {top}, not its top; pass {top}")
    return tree


def resolve_commit(tree: Path, ref: str, option: str) -> str:
    """The commit ``ref`` names in ``tree`` (as git rev-parse reads it), or UserError."""
    result = run_git(git(tree, "rev-parse", "--verify", "--quiet", "--end-of-options",
                         f"{ref}^{{commit}}"))
    sha = result.stdout.strip()
    if result.rc != 0 or not _SHA.match(sha):
        raise UserError(f"{option} {ref}: no such commit in {tree}; "
                        "pass a branch, tag or commit of that tree")
    return sha


def split_range(text: str) -> tuple[str, str]:
    """"A..B" -> (A, B); UserError for anything else (A...B is not a series)."""
    a, sep, b = text.partition("..")
    if not sep or not a or not b or b.startswith("."):
        raise UserError(f"--range {text}: expected A..B (the series is the commits in B "
                        "and not in A)")
    return a, b


# --- patches ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Patch:
    path: Path  # one message, as git am takes it
    subject: str  # without "[PATCH n/m]"
    origin: str  # the file it came from, or the commit it was made from
    message_id: str = ""

    @property
    def label(self) -> str:
        return f"'{self.subject}' ({self.origin})"


@dataclass(frozen=True)
class Series:
    patches: tuple[Patch, ...]
    option: str  # how the user gave it: "--range A..B" or "--mbox FILE..."
    description: str  # the report's name for it: cover letter, single patch, or first + N
    tip: str = ""  # --range: B's commit
    message_id: str = ""  # of the cover letter, else of the first patch

    @property
    def patchset_hash(self) -> str:
        """KCIDB's recipe: sha256 over the newline-terminated sha256 of each patch, in order
        (`sha256sum *.patch | cut -c-64 | sha256sum`)."""
        lines = "".join(file_sha256(p.path) + "\n" for p in self.patches)
        return hashlib.sha256(lines.encode()).hexdigest()


def mailsplit_cmd(mbox: Path, dest: Path) -> tuple[str, ...]:
    # -b: a file that does not start with a "From " line is one message (a bare patch file)
    return ("git", "mailsplit", "-b", f"-o{dest}", str(mbox))


def mailinfo_cmd(msg: Path, patch: Path) -> tuple[str, ...]:
    return ("git", "mailinfo", str(msg), str(patch))


def format_patch_cmd(tree: Path, a: str, b: str, dest: Path) -> tuple[str, ...]:
    return git(tree, "format-patch", "--quiet", "--no-cover-letter", "--no-signature",
               "--no-numbered", "-o", str(dest), f"{a}..{b}")


def read_message(path: Path, origin: str) -> tuple[Patch, bool]:
    """The message as a Patch, and whether it carries a diff (a cover letter does not):
    git mailinfo decides, as git am will (MIME, quoted-printable, "---" separators)."""
    with tempfile.TemporaryDirectory(prefix="kheaders-ci-mailinfo-") as tmp:
        result = checked(mailinfo_cmd(Path(tmp, "msg"), Path(tmp, "diff")),
                         f"git mailinfo {path}", stdin=path)
        has_diff = Path(tmp, "diff").stat().st_size > 0
    match = _SUBJECT.search(result.stdout)
    with path.open("rb") as mail:
        headers = BytesHeaderParser().parse(mail)
    message_id = str(headers.get("Message-ID", "") or "").strip()
    return Patch(path, match.group(1).strip() if match else "", origin, message_id), has_diff


def split_mbox(mbox: Path, dest: Path) -> list[Path]:
    """The messages of one file, each in its own file under ``dest``."""
    if not mbox.is_file():
        raise UserError(f"--mbox {mbox}: no such file; pass patch files or an mbox")
    dest.mkdir(parents=True)
    result = run_git(mailsplit_cmd(mbox, dest))
    if result.rc != 0 and "empty mbox" not in result.stderr:
        raise UserError(f"--mbox {mbox}: not a patch or mbox ({first_line(result.stderr)}); "
                        "pass git format-patch output or the mbox b4 wrote")
    return sorted(p for p in dest.iterdir() if p.name.isdigit())


def describe(patches: Sequence[Patch], cover: str, source: str) -> str:
    """The series' name in the report: its cover letter's subject, its single patch's, or
    the first patch's and how many follow; then where it came from."""
    if cover:
        title = cover
    elif len(patches) == 1:
        title = patches[0].subject
    else:
        title = f"{patches[0].subject} (+{len(patches) - 1} more)"
    count = f"{len(patches)} patch" + ("es" if len(patches) != 1 else "")
    return f"{title} [{count}, {source}]"


def mbox_series(files: Sequence[Path], scratch: Path) -> Series:
    """The patches of every file, in order; UserError if there is none."""
    option = "--mbox " + " ".join(str(f) for f in files)
    patches: list[Patch] = []
    cover: Patch | None = None
    for i, mbox in enumerate(files):
        for msg in split_mbox(mbox, scratch / f"mbox{i:03d}"):
            patch, has_diff = read_message(msg, mbox.name)
            if has_diff:
                patches.append(patch)
            elif cover is None and not patches:
                cover = patch  # the first message, without a diff: the cover letter
    if not patches:
        raise UserError(f"{option}: no patch in it (an empty series); pass the series' "
                        "patches or the mbox b4 wrote")
    ident = (cover or patches[0]).message_id
    return Series(tuple(patches), option,
                  describe(patches, cover.subject if cover else "",
                           ", ".join(f.name for f in files)),
                  message_id=ident)


def range_series(tree: Path, text: str, scratch: Path) -> tuple[Series, str]:
    """The commits of A..B as patches, and A's commit (the default base)."""
    a_ref, b_ref = split_range(text)
    a = resolve_commit(tree, a_ref, "--range")
    b = resolve_commit(tree, b_ref, "--range")
    merges = run_git(git(tree, "rev-list", "--merges", f"{a}..{b}")).stdout.split()
    if merges:
        raise UserError(f"--range {text}: {merges[-1][:12]} is a merge; pass a range of "
                        "plain commits (git am applies no merges)")
    scratch.mkdir(parents=True)
    checked(format_patch_cmd(tree, a, b, scratch), f"git format-patch {text}")
    patches = []
    for path in sorted(p for p in scratch.iterdir() if p.is_file()):
        patch, has_diff = read_message(path, "")
        sha = _FROM_LINE.match(path.read_text(errors="replace"))
        origin = f"commit {sha.group(1)[:12]}" if sha else path.name
        if has_diff:
            patches.append(Patch(path, patch.subject, origin, patch.message_id))
    if not patches:
        raise UserError(f"--range {text}: no commits in it (an empty series); pass A..B "
                        "with the series' commits in B and not in A")
    return Series(tuple(patches), f"--range {text}", describe(patches, "", text), tip=b), a


# --- why git am failed ------------------------------------------------------------------------

_AM_FAILED_AT = re.compile(r"^Patch failed at (\d+) ", re.M)
_FAILING_FILE = (
    re.compile(r"^error: patch failed: (.+):\d+$", re.M),
    re.compile(r"^error: (.+): does not exist in index$", re.M),
    re.compile(r"^error: (.+): already exists in (?:index|working directory)$", re.M),
    re.compile(r"^error: (.+): patch does not apply$", re.M),
)


def first_failing_file(output: str) -> str | None:
    """The first file git am named as failing, by the position of its line in the output."""
    hits = [(m.start(), m.group(1)) for rx in _FAILING_FILE for m in rx.finditer(output)]
    return min(hits)[1] if hits else None


def am_failure(output: str, series: Series, onto: str) -> str:
    """One line: which patch did not apply onto what, and its first failing file (or git
    am's own first complaint, for a patch that is not a patch at all)."""
    match = _AM_FAILED_AT.search(output)
    index = int(match.group(1)) - 1 if match else -1
    if 0 <= index < len(series.patches):
        which = f"patch {index + 1}/{len(series.patches)} {series.patches[index].label}"
    else:
        which = "the series"
    failing = first_failing_file(output)
    if failing is not None:
        why = f"first failing file {failing}"
    else:
        complaint = next((line.strip() for line in output.splitlines()
                          if line.startswith(("error:", "fatal:"))), first_line(output))
        why = complaint or "git am failed"
    return f"{series.option}: {which} does not apply to {onto}: {why}"
