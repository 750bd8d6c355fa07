"""A cached build is used only when it is whole.

An entry (``<cache>/builds/<arch>-<variant>-<key>/``) is complete once its ``build.json`` is
there: it is written last, atomically (a temporary file renamed over it), after
``sha256sums.json``, which lists every output a boot and the checks read (image, config,
System.map, the archive, the installed modules). On every cache hit both are read back and
the outputs hashed (~50 ms): a truncated image, a missing module or a half-written record
makes the entry unusable, and the build runs again instead of booting it. An entry made
before the sums existed is unusable too (rebuilt once, then sealed): nothing could tell its
truncated image from a whole one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from kheaders_suite.host.digest import file_sha256
from kheaders_suite.records import KernelBuild

RECORD = "build.json"
SUMS = "sha256sums.json"


def outputs(build: KernelBuild) -> Iterator[Path]:
    """The files a boot and the checks read from an entry."""
    yield from (build.image, build.config, build.dir / "System.map")
    if build.archive is not None:
        yield build.archive
    if build.modroot is not None:
        yield from sorted(p for p in build.modroot.rglob("*") if p.is_file())


def write_atomically(path: Path, text: str) -> None:
    """``path`` holds ``text`` entirely or is left as it was (a full disk included)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write(build: KernelBuild) -> None:
    """Seal the entry: the sums, then the record that says it is complete."""
    sums = {str(p.relative_to(build.dir)): file_sha256(p) for p in outputs(build)}
    write_atomically(build.dir / SUMS, json.dumps(sums, indent=1, sort_keys=True))
    write_atomically(build.dir / RECORD, build.to_json())


def load(out: Path) -> tuple[KernelBuild | None, str | None]:
    """(the build, None) for a whole entry; (None, why) for an unusable one; (None, None)
    when there is no entry."""
    record = out / RECORD
    if not record.exists():
        return None, None
    try:
        build = KernelBuild.from_json(record.read_text())
    except (OSError, ValueError, TypeError) as exc:
        return None, f"{RECORD} unreadable ({exc})"
    why = _damage(out)
    return (None, why) if why else (build, None)


def _damage(out: Path) -> str | None:
    """Why the entry at ``out`` is not whole (its sums name every output it points at)."""
    sums_file = out / SUMS
    if not sums_file.exists():
        return f"no {SUMS} (an entry from before the sums, or one never sealed): rebuilt"
    try:
        sums: dict[str, str] = json.loads(sums_file.read_text())
    except (OSError, ValueError) as exc:
        return f"{SUMS} unreadable ({exc})"
    for rel, digest in sums.items():
        path = out / rel
        if not path.is_file():
            return f"{rel} missing"
        if file_sha256(path) != digest:
            return f"{rel} differs from when it was built (truncated or corrupt)"
    return None


def discard(out: Path) -> None:
    """Remove an unusable entry, so nothing of it is taken for the new build's."""
    shutil.rmtree(out, ignore_errors=True)


__all__ = ["RECORD", "SUMS", "discard", "load", "outputs", "write", "write_atomically"]
