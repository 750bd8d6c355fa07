"""A variant's guest steps run in a booted guest: the mount or modprobe that makes its archive
appear, and the steps that make it go away. For the plugin's ``kheaders`` fixture, the timing
runner and any test that needs the archive for a while of its own.

Each step is the kernel's interface (kheaders.ko's init and exit, debugfs): when one fails,
or the archive cannot be read once they ran, the kernel failed (errors.KernelInterfaceFailed,
a FAIL of every test that needed it), not the harness.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from kheaders_suite.catalog.variants import GuestStep, expand, get
from kheaders_suite.errors import KernelInterfaceFailed
from kheaders_suite.records import KernelBuild
from kheaders_suite.session.guest import Guest
from kheaders_suite.text import first_line


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
    """Run a variant's step; KernelInterfaceFailed naming it and what the kernel said."""
    __tracebackhide__ = True
    if step.unless is not None and guest.run(step.unless).rc == 0:
        return
    done = guest.run(step.argv)
    if done.rc != 0:
        said = first_line(done.stderr) or first_line(done.stdout) or "(no message)"
        raise KernelInterfaceFailed(
            f"kernel interface failed: {done.command} (exit {done.rc}): {said}\n"
            f"{done.describe()}")


def served_archive(guest: Guest, path: str) -> bytes:
    """The archive's bytes as the kernel serves them at ``path``; KernelInterfaceFailed when
    the kernel serves none there (missing, unreadable: the guest's errno)."""
    __tracebackhide__ = True
    try:
        return guest.read_bytes(path)
    except OSError as exc:
        raise KernelInterfaceFailed(
            f"kernel interface failed: reading {path}: {exc.strerror or exc}") from exc
