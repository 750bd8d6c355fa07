"""Records passed between the stages: plain data, no behaviour beyond reading itself.

A build produces a ``KernelBuild``, a boot a ``BootProfile`` (beside its Guest), a guest
command a ``CommandResult``; a ``Target`` names what a VM test runs on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from kheaders_suite.errors import GuestCommandFailed, GuestStepFailed

# Where a long step (a build, a root filesystem, a boot) says how it is going: one line a call.
Progress = Callable[[str], None]


def target_id(arch: str, variant: str) -> str:
    """The one spelling of a target in test ids, cache entries and reports: "<arch>-<variant>"."""
    return f"{arch}-{variant}"


@dataclass(frozen=True)
class Target:
    arch: str
    variant: str

    @property
    def id(self) -> str:
        return target_id(self.arch, self.variant)


@dataclass(frozen=True)
class KernelBuild:
    """What a build produced, as plain paths: everything later steps need."""

    key: str
    arch: str
    variant: str
    release: str
    dir: Path
    image: Path
    config: Path
    archive: Path | None  # copy of kernel/kheaders_data.tar.xz, None if IKHEADERS off
    modroot: Path | None  # INSTALL_MOD_PATH: <modroot>/lib/modules/<release>
    source_dir: Path  # the pristine tree the work copy mirrors
    srcarch: str
    objtree_headers: Path  # copy of the object tree's *.h (include/, arch/*/include/)
    log: Path
    seconds: float
    source_origin: str = ""
    cached: bool = field(default=False, compare=False)

    def to_json(self) -> str:
        data = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}
        data.pop("cached")
        return json.dumps(data, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> KernelBuild:
        data = json.loads(text)
        paths = {f.name for f in fields(cls) if "Path" in str(f.type)}
        conv: dict[str, Any] = {
            k: (Path(v) if k in paths and v is not None else v) for k, v in data.items()}
        return cls(**conv, cached=True)


@dataclass(frozen=True)
class BootProfile:
    """Where a boot's seconds went, from the launch of vng. Host seconds since the launch,
    except ``init`` and ``init_done``, which are the guest kernel's own timestamps."""

    kernel_start: float | None  # when the guest's clock read 0: vng, QEMU and firmware
    init: float | None  # guest seconds at "Run ... as init process": the kernel's boot
    init_done: float | None  # guest seconds at the init's "initialization done"
    ssh: float  # SSH session authenticated
    ready: float  # the first command answered through the agent: ready for tests

    def stages(self) -> list[tuple[str, float | None]]:
        """Consecutive stages that add up to ``ready`` (None where the console did not say)."""
        done_at = (None if self.kernel_start is None or self.init_done is None
                   else self.kernel_start + self.init_done)
        return [
            ("vng+qemu+firmware", self.kernel_start),
            ("kernel", self.init),
            ("init", _minus(self.init_done, self.init)),
            ("sshd+ssh", _minus(self.ssh, done_at)),
            ("agent+first command", self.ready - self.ssh),
        ]

    def render(self) -> str:
        return ", ".join(f"{name} {'?' if v is None else f'{v:.1f}'}"
                         for name, v in self.stages())


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


@dataclass(frozen=True)
class CommandResult:
    command: str
    rc: int
    stdout: str
    stderr: str
    duration: float

    def check(self) -> CommandResult:
        """A harness step must succeed: GuestStepFailed (an ERROR) if it did not."""
        __tracebackhide__ = True
        if self.rc != 0:
            raise GuestStepFailed(f"harness step failed in the guest:\n{self.describe()}")
        return self

    def expect(self, why: str) -> CommandResult:
        """The kernel must let this succeed: GuestCommandFailed (a FAIL) saying ``why``."""
        __tracebackhide__ = True
        if self.rc != 0:
            raise GuestCommandFailed(f"{why}\n{self.describe()}")
        return self

    def describe(self) -> str:
        return (f"$ {self.command}\nexit {self.rc} after {self.duration:.2f}s\n"
                f"--- stdout ---\n{self.stdout[-3000:]}\n--- stderr ---\n{self.stderr[-3000:]}")
