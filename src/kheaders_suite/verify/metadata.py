"""Check 6: the archive's metadata is normalized for reproducibility, and the byte checks.

gen_kheaders.sh creates it with ``tar --owner=0 --group=0 --numeric-owner --sort=name
--mode=u=rw,go=r,a+X`` and ``--mtime=$KBUILD_BUILD_TIMESTAMP`` when set (the mode option
since 2024; 6.6 lacks it, 6.12 has it). So: uid/gid 0 (names empty or "root"), files 0644,
directories 0755 (after u=rw,go=r no x bit is left, so a+X adds x to directories only), one
mtime for all, and names in GNU tar's --sort=name order: each directory's entries sorted by
strcmp, depth first. That is *not* a plain sort of the paths: "include/linux/sched/..."
comes before "include/linux/sched.h" ("sched" < "sched.h"), though "/" > ".".

Also checked, because bcc extracts the archive as root: no absolute names and no "..".

identity (guest bytes vs the build's archive) and same_bytes (two builds of one key) live here
too: both are byte comparisons that report sizes and the first differing offset.
"""

from __future__ import annotations

from datetime import UTC, datetime

from kheaders_suite.verify.archive import Archive, ArchiveInput, Member, load
from kheaders_suite.verify.members import name_problem
from kheaders_suite.verify.result import CheckResult, failed, passed

NAME = "metadata"
FILE_MODE = 0o644
DIR_MODE = 0o755


def timestamp_epoch(timestamp: str) -> int:
    """KBUILD_BUILD_TIMESTAMP as the suite sets it ("2019-04-26 00:00:00 UTC"): the mtime
    tar --mtime gives every member."""
    parsed = datetime.strptime(timestamp, "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC)
    return int(parsed.timestamp())


def tar_sort_key(name: str) -> tuple[bytes, ...]:
    """GNU tar --sort=name order: a directory, then its entries by strcmp, recursively."""
    return tuple(part.encode() for part in name.split("/") if part) if name else ()


def _order_problems(members: tuple[Member, ...]) -> list[str]:
    keys = [tar_sort_key(m.name) for m in members]
    return [f"out of order: {members[i].raw_name!r} comes after {members[i - 1].raw_name!r}"
            for i in range(1, len(keys)) if keys[i] < keys[i - 1]]


def _mode_ok(member: Member, require_modes: bool) -> bool:
    # --mode applies to symlinks as well: a real 6.12 archive has them as 0644 too.
    return not require_modes or member.mode == (DIR_MODE if member.kind == "dir" else FILE_MODE)


def _member_problems(member: Member, require_modes: bool) -> list[str]:
    out = []
    if member.uid != 0 or member.gid != 0 or member.uname not in ("", "root") \
            or member.gname not in ("", "root"):
        out.append(f"owner: {member.raw_name} is {member.uid}:{member.gid} "
                   f"({member.uname or '-'}:{member.gname or '-'}), want 0:0")
    if not _mode_ok(member, require_modes):
        want = DIR_MODE if member.kind == "dir" else FILE_MODE
        out.append(f"mode: {member.raw_name} is {member.mode:04o}, want {want:04o}")
    why = name_problem(member.raw_name)
    if why is not None:
        out.append(f"unsafe name: {member.raw_name!r} escapes the extraction directory: {why}")
    if member.kind not in ("file", "dir", "symlink", "hardlink"):
        out.append(f"type: {member.raw_name!r} is a {member.kind}, neither file, directory "
                   "nor link")
    return out


def metadata(archive: ArchiveInput, mtime: int | None = None,
             require_modes: bool = True) -> CheckResult:
    """Owners, modes, order, mtimes; ``mtime`` (epoch) when KBUILD_BUILD_TIMESTAMP is known."""
    parsed = load(NAME, archive)
    if isinstance(parsed, CheckResult):
        return parsed
    if not parsed.members:
        return failed(NAME, "archive has no members")
    details = [p for m in parsed.members for p in _member_problems(m, require_modes)]
    details += _order_problems(parsed.members)
    details += _mtime_problems(parsed, mtime)
    if details:
        kinds = sorted({d.split(":")[0] for d in details})
        plural = "s" if len(details) != 1 else ""
        return failed(NAME, f"{len(details)} problem{plural} ({', '.join(kinds)}) in "
                      f"{len(parsed.members)} members", details)
    return passed(NAME, f"{len(parsed.members)} members: 0:0, modes 0644/0755, "
                  f"tar --sort=name order, mtime {parsed.members[0].mtime}")


def _mtime_problems(parsed: Archive, mtime: int | None) -> list[str]:
    times: dict[int, list[str]] = {}
    for member in parsed.members:
        times.setdefault(member.mtime, []).append(member.raw_name)
    if len(times) == 1 and (mtime is None or mtime in times):
        return []
    common = max(times, key=lambda t: len(times[t]))
    if mtime is not None:
        common = mtime
    return [f"mtime: {names[0]} (and {len(names) - 1} more) has {t}, want {common}"
            for t, names in sorted(times.items()) if t != common]


def first_difference(a: bytes, b: bytes) -> int | None:
    """Offset of the first differing byte (the shorter length if one is a prefix)."""
    if a == b:
        return None
    limit = min(len(a), len(b))
    lo, hi = 0, limit  # binary search on prefix equality: fast on 4 MB blobs
    while lo < hi:
        mid = (lo + hi) // 2
        if a[lo : mid + 1] == b[lo : mid + 1]:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _byte_compare(name: str, a: bytes, b: bytes, a_label: str, b_label: str) -> CheckResult:
    offset = first_difference(a, b)
    if offset is None:
        return passed(name, f"{len(a)} bytes, identical")
    sizes = f"{a_label} {len(a)} bytes, {b_label} {len(b)} bytes"
    if offset == min(len(a), len(b)):
        shorter = a_label if len(a) < len(b) else b_label
        return failed(name, f"{sizes}: {shorter} is a prefix of the other (cut at {offset})")
    detail = [f"at {offset:#x}: {a_label} {a[offset:offset + 16].hex(' ')}",
              f"at {offset:#x}: {b_label} {b[offset:offset + 16].hex(' ')}"]
    return failed(name, f"{sizes}: first difference at offset {offset} ({offset:#x})", detail)


def identity(guest_bytes: bytes, build_archive_bytes: bytes) -> CheckResult:
    """What the guest serves is byte-identical to the archive the build produced."""
    return _byte_compare("identity", guest_bytes, build_archive_bytes, "guest", "build")


def same_bytes(a: bytes, b: bytes) -> CheckResult:
    """Two builds of one key (same config, same KBUILD_BUILD_TIMESTAMP) give the same bytes."""
    return _byte_compare("same_bytes", a, b, "first build", "second build")
