"""Build flavors: what every build of a run adds to base, arch and variant."""

from __future__ import annotations

# Flavors: what every build of a run adds to base, arch and variant. "plain" adds nothing (nor
# a suffix to its keys, work trees and step counts); "debug" adds the kernel's checkers in an
# object tree of its own (switching flavors would rebuild the whole kernel).
FLAVORS: dict[str, tuple[str, ...]] = {"plain": (), "debug": ("flavor-debug.config",)}
# Every guest deadline is multiplied by this on top of the accelerator's scale: KASAN checks
# every access and lockdep every lock operation. Measured on 7.3.4 x86_64 under TCG with two
# debug guests and a build sharing 2 cores: 50 kheaders.ko load/unload cycles with 3 readers
# ran past the plain 300 s deadline (on 6.12, one debug guest alone, they passed within it).
FLAVOR_TIMEOUT_FACTOR: dict[str, float] = {"plain": 1.0, "debug": 3.0}
