"""Whether the archive in an object tree was made from what it would be made from now.

Every suite build makes gen_kheaders.sh regenerate kernel/kheaders_data.tar.xz when its own
test would wrongly keep it (BuildOptions.force_kheaders_regen): that test misses a
config-only change in every version, and before 6.17 a same-size header edit within the
minute. Regenerating costs most of a .c edit's make (x86_64 6.12 under the 2-core host:
27.5 s of 43.9 s, the comment-stripping and xz of ~47 MB of headers), for an archive that
cannot have changed.

So after each make the harness records what the archive packs and what decides its bytes,
each by its sha256: every ``*.h`` under ``include/`` and ``arch/$SRCARCH/include/`` of the
work copy and of the object tree (by content, never by mtime: the same-size edit keeps
``ls -l``), the object tree's ``.config``, ``gen_kheaders.sh`` and the build timestamp. A
build whose inputs, taken after configure, differ from those the last good make started
from deletes kheaders.md5 (a prerequisite of the archive in every version), which
regenerates it, and says which changed; matching ones leave the decision to kbuild, which
then keeps it. What is recorded is the state before make, compared with the state before
the next: make itself rewrites .config (syncconfig: under the suite's ccache one compiler
probe answers otherwise than configure's plain gcc), so a state taken after make never
matches the next configure's. A make that does not record (a failed one, or
upstream's logic for the incremental experiments) leaves no digest, and the next build
regenerates.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

# In the object tree: the inputs the archive there was made from, {name: sha256}; PENDING:
# those of the make under way, which become STAMP when it succeeds.
STAMP = "kernel/.kheaders-suite-archive-inputs.json"
PENDING = "kernel/.kheaders-suite-archive-inputs.pending.json"
MD5 = "kernel/kheaders.md5"  # what gen_kheaders.sh compares; deleting it regenerates
SCRIPT = "kernel/gen_kheaders.sh"
NAMED = 3  # changed inputs named in the message


def _headers(root: Path, srcarch: str) -> list[Path]:
    found: list[Path] = []
    for top in (root / "include", root / "arch" / srcarch / "include"):
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            found += [Path(dirpath, n) for n in sorted(filenames) if n.endswith(".h")]
    return found


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return "missing"


def inputs(src: Path, obj: Path, srcarch: str, timestamp: str) -> dict[str, str]:
    """The archive's inputs as they stand, by content (pure of mtimes)."""
    found = {"timestamp": timestamp, "obj/.config": _sha256(obj / ".config"),
             f"src/{SCRIPT}": _sha256(src / SCRIPT)}
    for root, label in ((src, "src"), (obj, "obj")):
        for path in _headers(root, srcarch):
            found[f"{label}/{path.relative_to(root)}"] = _sha256(path)
    return found


def changed(before: dict[str, str], now: dict[str, str]) -> list[str]:
    """The inputs that differ, added or removed, sorted."""
    return sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))


def _recorded(stamp: Path) -> dict[str, str]:
    try:
        loaded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def regenerate_if_changed(src: Path, obj: Path, srcarch: str, timestamp: str) -> str:
    """Before make: delete kheaders.md5 unless the last good make started from these inputs.
    "" when it was kept, else why it will be regenerated (what changed)."""
    stamp, pending = obj / STAMP, obj / PENDING
    recorded = _recorded(stamp)
    stamp.unlink(missing_ok=True)  # until this make records it again
    now = inputs(src, obj, srcarch, timestamp)
    pending.parent.mkdir(parents=True, exist_ok=True)
    pending.write_text(json.dumps(now, sort_keys=True))
    differ = changed(recorded, now) if recorded else []
    if recorded and not differ:
        return ""
    (obj / MD5).unlink(missing_ok=True)
    if not recorded:
        return "no record of what the archive in the object tree was made from"
    more = f" and {len(differ) - NAMED} more" if len(differ) > NAMED else ""
    return f"{', '.join(differ[:NAMED])}{more} changed"


def record(obj: Path) -> None:
    """After a make that built the archive: the inputs it started from are the record."""
    with contextlib.suppress(FileNotFoundError):
        os.replace(obj / PENDING, obj / STAMP)


def forget(obj: Path) -> None:
    """Before a make with upstream's logic, which may keep a stale archive."""
    for name in (STAMP, PENDING):
        (obj / name).unlink(missing_ok=True)
