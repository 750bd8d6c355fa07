"""The ways CONFIG_IKHEADERS can expose its archive, one record each.

A variant is data: a config fragment, the patch series it needs (None for mainline), where the
archive must appear, and the guest steps that make it appear and go away. Adding a fifth way
means adding one record here plus its fragment (and patches); nothing else.

session/steps.py runs those steps in a booted guest.
"""

from __future__ import annotations

from dataclasses import dataclass

from kheaders_suite.errors import UserError


@dataclass(frozen=True)
class GuestStep:
    """One command run in the guest; skipped when ``unless`` (a probe command) succeeds."""

    argv: tuple[str, ...]
    unless: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Variant:
    name: str
    # Fragment under catalog/kernels/configs/, merged after the base and arch fragments.
    fragment: str
    # Patch series under catalog/kernels/patches/<series>/<min-version>/, or None for mainline code.
    patch_series: str | None
    # Absolute path of the archive in the guest once ``setup`` has run.
    archive_path: str
    setup: tuple[GuestStep, ...]
    teardown: tuple[GuestStep, ...]
    summary: str


_DEBUGFS = "/sys/kernel/debug"

VARIANTS: tuple[Variant, ...] = (
    Variant(
        name="sysfs",
        fragment="variant-sysfs.config",
        patch_series=None,
        archive_path="/sys/kernel/kheaders.tar.xz",
        setup=(),
        teardown=(),
        summary=('mainline built-in, a sysfs bin_attribute on kernel_kobj since commit '
                 'f7b101d33046 ("kheaders: Move from proc to sysfs")'),
    ),
    Variant(
        name="module",
        fragment="variant-module.config",
        patch_series=None,
        archive_path="/sys/kernel/kheaders.tar.xz",
        # -d: the guest's /lib/modules is the host's (read-only, maybe absent); the build's
        # modules are installed under its own dir, which the guest sees at the same path.
        setup=(GuestStep(("modprobe", "-d", "{modroot}", "kheaders")),),
        teardown=(GuestStep(("modprobe", "-r", "-d", "{modroot}", "kheaders")),),
        summary="CONFIG_IKHEADERS=m: the file exists while kheaders.ko is loaded",
    ),
    Variant(
        name="proc",
        fragment="variant-proc.config",
        patch_series="proc",
        archive_path="/proc/kheaders.tar.xz",
        setup=(),
        teardown=(),
        summary="the 2019 v5 patch: proc_create(), mode 0444, proc_set_size()",
    ),
    Variant(
        name="debugfs",
        fragment="variant-debugfs.config",
        patch_series="debugfs",
        archive_path=f"{_DEBUGFS}/kheaders.tar.xz",
        # debugfs's root is 0700 by default; mode=0755 lets an unprivileged reader reach
        # the 0444 file, which is what a tracing tool run as a user would need.
        setup=(
            GuestStep(
                ("mount", "-t", "debugfs", "-o", "mode=0755", "debugfs", _DEBUGFS),
                unless=("mountpoint", "-q", _DEBUGFS),
            ),
            GuestStep(("mount", "-o", "remount,mode=0755", _DEBUGFS)),
        ),
        teardown=(GuestStep(("umount", _DEBUGFS)),),
        # < 6.8 debugfs_create_blob(); from 6.8 a read-only debugfs_create_file(), so root
        # cannot write into the archive's read-only memory: commit 71cd3c636404 ("fs: debugfs:
        # Add write functionality to debugfs blobs") made blobs writable.
        summary="/sys/kernel/debug/kheaders.tar.xz, where review asked for it",
    ),
)


def expand(step: GuestStep, facts: dict[str, str]) -> GuestStep:
    """Fill ``{modroot}``-style placeholders from the build's facts."""
    def fill(argv: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if argv is None else tuple(a.format(**facts) for a in argv)

    return GuestStep(fill(step.argv) or (), fill(step.unless))


def names() -> tuple[str, ...]:
    return tuple(v.name for v in VARIANTS)


def get(name: str) -> Variant:
    for variant in VARIANTS:
        if variant.name == name:
            return variant
    raise UserError(f"--variant {name!r}: unknown variant; choose from {', '.join(names())}")


def archive_paths() -> frozenset[str]:
    """Every place any variant may put the archive: a variant must use only its own."""
    return frozenset(v.archive_path for v in VARIANTS)
