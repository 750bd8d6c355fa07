"""A foreign arch's root filesystem built in the background while its kernel builds (or
waits for another arch's cold build): mmdebstrap is mostly downloads and qemu-user, so it
overlaps well with a compile."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kheaders_suite.catalog.arches.arch import Arch


@dataclass
class RootfsPrefetch:
    """The arches whose prefetch this run started, at most one each. Held on the config's
    stash (PREFETCH): the run owns it, not the module."""

    started: set[str] = field(default_factory=set)

    def start(self, cache_dir: Path, arch: Arch, say: Callable[[str], None]) -> None:
        """Start ``arch``'s root filesystem in a daemon thread, once per run. The boot asks
        for it again under the same lock, and reports any failure itself."""
        if arch.name in self.started:
            return
        self.started.add(arch.name)

        def work() -> None:
            from kheaders_suite.boot.rootfs import ensure_rootfs

            try:
                ensure_rootfs(cache_dir, arch, say)
            except Exception as exc:  # the boot retries and raises it where it belongs
                say(f"{arch.name}: root filesystem in the background failed: {exc}")

        threading.Thread(target=work, name=f"rootfs-{arch.name}", daemon=True).start()


PREFETCH = pytest.StashKey[RootfsPrefetch]()


def prefetch(config: pytest.Config) -> RootfsPrefetch:
    """The run's prefetch state, made on first use."""
    return config.stash.setdefault(PREFETCH, RootfsPrefetch())
