"""All archive checks against one build, parsing the guest's archive once."""

from __future__ import annotations

from kheaders_suite.records import KernelBuild
from kheaders_suite.source.tree import KernelVersion
from kheaders_suite.verify.archive import ArchiveError, Limits, read_archive, xz_size
from kheaders_suite.verify.content import content
from kheaders_suite.verify.generated import config, release
from kheaders_suite.verify.members import expected_members, member_list, optional_members
from kheaders_suite.verify.metadata import identity, metadata
from kheaders_suite.verify.result import CheckResult, failed

ARCHIVE_CHECKS = ("member_list", "content", "config", "release", "metadata")


def check_archive(guest_bytes: bytes, build: KernelBuild, uname_r: str | None = None, *,
                  version: KernelVersion | None = None, mtime: int | None = None,
                  require_modes: bool = True) -> list[CheckResult]:
    """identity, member_list, content, config, release, metadata: every result, pass or fail.

    ``uname_r`` defaults to the build's release; ``version`` to the one in that release;
    ``mtime`` (epoch of KBUILD_BUILD_TIMESTAMP) is checked when given. The guest's archive
    may expand to Limits.from_build of the build's own, no further.
    """
    build_bytes = build.archive.read_bytes() if build.archive is not None else None
    results = [_identity(guest_bytes, build_bytes)]
    limits = Limits.from_build(xz_size(build_bytes) if build_bytes is not None else None)
    try:
        parsed = read_archive(guest_bytes, limits)
    except ArchiveError as exc:
        return results + [failed(n, f"archive unreadable: {exc}") for n in ARCHIVE_CHECKS]
    ver = version or KernelVersion.parse(build.release)
    expected = expected_members(build.source_dir, build.objtree_headers, build.srcarch, ver)
    results += [
        member_list(parsed, expected, optional_members(ver)),
        content(parsed, build.source_dir, build.objtree_headers),
        config(parsed, build.config.read_text()),
        release(parsed, uname_r if uname_r is not None else build.release),
        metadata(parsed, mtime, require_modes),
    ]
    return results


def _identity(guest_bytes: bytes, build_bytes: bytes | None) -> CheckResult:
    if build_bytes is None:
        return failed("identity", "the build made no archive (CONFIG_IKHEADERS off?)")
    return identity(guest_bytes, build_bytes)


def report(results: list[CheckResult]) -> str:
    """Every failure rendered in full, then one line per passing check."""
    bad = [r.render() for r in results if not r.ok]
    good = [r.render().splitlines()[0] for r in results if r.ok]
    return "\n".join(bad + good)
