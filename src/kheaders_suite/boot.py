"""Boot a build and return a connected ``Guest``: accelerator, root, port, retry on a port clash."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

from kheaders_suite import accel, arches, console, tools
from kheaders_suite.build import KernelBuild
from kheaders_suite.errors import VMLost
from kheaders_suite.guest import Guest, connect
from kheaders_suite.settings import Settings
from kheaders_suite.vm import VM, VMSpec, free_port, shell_command

PORT_ATTEMPTS = 3
# Where a foreign-arch guest sees the build dir (/mnt exists, empty, in Debian roots).
FOREIGN_BUILD_MOUNT = "/mnt"


def vng_binary() -> str:
    """vng from the suite's venv, else PATH, new enough (tools.VNG_MIN); UserError if not."""
    return str(tools.checked_vng())


def spec_for(build: KernelBuild, s: Settings, decision: accel.Accel,
             progress: Callable[[str], None]) -> VMSpec:
    arch = arches.get(build.arch)
    root = None
    rodirs: tuple[tuple[Path, str], ...] = ()
    if not arch.is_native:
        from kheaders_suite.rootfs import ensure_rootfs

        root = ensure_rootfs(s.cache_dir, arch, progress)
        rodirs = ((build.dir, FOREIGN_BUILD_MOUNT),)
    return VMSpec(build=build, arch=arch, accel=decision, port=free_port(), cpus=s.guest_cpus,
                  memory=s.guest_memory, root=root, rodirs=rodirs)


def boot(build: KernelBuild, s: Settings, log: Path,
         progress: Callable[[str], None]) -> Guest:
    arch = arches.get(build.arch)
    decision = accel.detect(s.accel, arch, s.cache_dir, image=build.image)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    spec = spec_for(build, s, decision, progress)
    label = f"{arch.name}-{build.variant}"
    for attempt in range(1, PORT_ATTEMPTS + 1):
        progress(f"{label}: booting {build.release} under {decision.name}, console {log}")
        vm = VM(spec, log, vng_binary())
        try:
            guest = connect(vm, decision.scale(arch))
        except VMLost as exc:
            vm.close()
            if console.hostfwd_conflict(vm.console_text()) and attempt < PORT_ATTEMPTS:
                spec = spec_for(build, s, decision, progress)
                continue
            raise VMLost(f"{exc}\nthe same boot with a shell: "
                         f"{shlex.join(shell_command(spec, 'vng'))}") from None
        except BaseException:
            vm.close()  # whatever broke while connecting, no QEMU is left behind
            raise
        shown = guest.profile.render() if guest.profile else "no profile"
        progress(f"{label}: ready after {guest.boot_seconds:.1f}s ({shown})")
        return guest
    raise AssertionError("unreachable")
