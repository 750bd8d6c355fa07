"""Architectures as data: one frozen record per file, looked up by name.

Adding an architecture means adding one file here (and its fragment under
catalog/kernels/configs/) and listing it in ``_ALL``; nothing else changes.
"""

from __future__ import annotations

import platform

from kheaders_suite.catalog.arches import arm64, x86_64
from kheaders_suite.catalog.arches.arch import Arch
from kheaders_suite.errors import UserError


def _all() -> dict[str, Arch]:
    return {a.name: a for a in (x86_64.ARCH, arm64.ARCH)}


def names() -> tuple[str, ...]:
    return tuple(_all())


def get(name: str) -> Arch:
    arches = _all()
    if name not in arches:
        valid = ", ".join(arches)
        raise UserError(f"--arch {name!r}: unknown architecture; choose from {valid}")
    return arches[name]


def host() -> Arch:
    """The arch this machine runs, for the default --arch."""
    for arch in _all().values():
        if arch.uts_machine == platform.machine():
            return arch
    raise UserError(f"host machine {platform.machine()!r} is not supported; pass --arch")
