"""A variant's guest steps run in a booted guest: the mount or modprobe that makes its archive
appear, and the steps that make it go away. For the plugin's ``kheaders`` fixture, the timing
runner and any test that needs the archive for a while of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from kheaders_suite.catalog.variants import GuestStep, expand, get
from kheaders_suite.records import KernelBuild
from kheaders_suite.session.guest import Guest


@contextmanager
def archive_present(guest: Guest, build: KernelBuild) -> Iterator[str]:
    """The variant's setup steps (mount, modprobe), its archive path, then its teardown."""
    variant = get(build.variant)
    facts = build_facts(build, guest)
    for step in variant.setup:
        run_step(guest, expand(step, facts))
    try:
        yield variant.archive_path
    finally:
        for step in variant.teardown:
            run_step(guest, expand(step, facts))


def build_facts(build: KernelBuild, guest: Guest) -> dict[str, str]:
    """Placeholders for variant steps, as paths the guest sees."""
    modroot = guest.guest_path(build.modroot) if build.modroot else ""
    return {"modroot": modroot, "release": build.release}


def run_step(guest: Guest, step: GuestStep) -> None:
    __tracebackhide__ = True
    if step.unless is not None and guest.run(step.unless).rc == 0:
        return
    guest.run(step.argv, check=True)
