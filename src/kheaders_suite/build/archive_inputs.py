"""Whether the archive in an object tree was made from what it would be made from now.

Every suite build makes gen_kheaders.sh regenerate kernel/kheaders_data.tar.xz when its own
test would wrongly keep it (BuildOptions.force_kheaders_regen): that test misses a
config-only change in every version, and before 6.17 a same-size header edit within the
minute. Regenerating costs most of a .c edit's make (x86_64 6.12 under the 2-core host:
27.5 s of 43.9 s, the comment-stripping and xz of ~47 MB of headers), for an archive that
cannot have changed.

So after each make the harness records a digest of what the archive packs and what decides
its bytes: every ``*.h`` under ``include/`` and ``arch/$SRCARCH/include/`` of the work copy
and of the object tree, by content (never by mtime: the same-size edit keeps ``ls -l``),
the object tree's ``.config``, ``gen_kheaders.sh`` and the build timestamp. A build whose
digest, taken after configure, differs from the recorded one deletes kheaders.md5 (a
prerequisite of the archive in every version), which regenerates it; a matching one leaves
the decision to kbuild, which then keeps it. A make that does not record (a failed one, or
upstream's logic for the incremental experiments) leaves no digest, and the next build
regenerates.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

# In the object tree: the digest of the inputs the archive there was made from.
STAMP = "kernel/.kheaders-suite-archive-inputs"
MD5 = "kernel/kheaders.md5"  # what gen_kheaders.sh compares; deleting it regenerates
SCRIPT = "kernel/gen_kheaders.sh"


def _headers(root: Path, srcarch: str) -> list[Path]:
    found: list[Path] = []
    for top in (root / "include", root / "arch" / srcarch / "include"):
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            found += [Path(dirpath, n) for n in sorted(filenames) if n.endswith(".h")]
    return found


def _part(label: str, path: Path) -> bytes:
    """The file's name and content's digest; a missing file as missing."""
    try:
        content = hashlib.sha256(path.read_bytes()).digest()
    except FileNotFoundError:
        content = b"missing"
    return f"{label}\0".encode() + content


def digest(src: Path, obj: Path, srcarch: str, timestamp: str) -> str:
    """The archive's inputs as they stand (pure of mtimes)."""
    h = hashlib.sha256(f"timestamp\0{timestamp}\0".encode())
    for root, label in ((src, "src"), (obj, "obj")):
        for path in _headers(root, srcarch):
            h.update(_part(f"{label}/{path.relative_to(root)}", path))
    h.update(_part("obj/.config", obj / ".config"))
    h.update(_part(f"src/{SCRIPT}", src / SCRIPT))
    return h.hexdigest()


def regenerate_if_changed(src: Path, obj: Path, srcarch: str, timestamp: str) -> bool:
    """Before make: delete kheaders.md5 unless the archive was made from these inputs.
    True when it was deleted (the archive will be regenerated)."""
    stamp = obj / STAMP
    recorded = stamp.read_text() if stamp.is_file() else None
    stamp.unlink(missing_ok=True)  # until this make records it again
    if recorded == digest(src, obj, srcarch, timestamp):
        return False
    (obj / MD5).unlink(missing_ok=True)
    return True


def record(src: Path, obj: Path, srcarch: str, timestamp: str) -> None:
    """After a make that built the archive: the inputs it was made from."""
    stamp = obj / STAMP
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest(src, obj, srcarch, timestamp))


def forget(obj: Path) -> None:
    """Before a make with upstream's logic, which may keep a stale archive."""
    (obj / STAMP).unlink(missing_ok=True)
