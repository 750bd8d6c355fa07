"""The C dialect a consumer must compile the archive's headers with, read from the kernel.

Since 7.x the kernel builds with CC_FLAGS_DIALECT += $(CONFIG_CC_MS_EXTENSIONS), i.e.
-fms-extensions, and its headers rely on it: linux/fs.h embeds a tagged struct anonymously
(``struct __filename_head;`` inside struct filename), and without the flag gcc drops the
member and the header's own static_assert(sizeof(struct filename) % 64 == 0) fails (seen with
Debian's 7.3.4). The archive carries the answer: its include/generated/autoconf.h defines
CONFIG_CC_MS_EXTENSIONS with the flag's text. A consumer (bcc, the suite's probe and
workload) reads it there instead of guessing from the version.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

_MS = re.compile(r'^#define CONFIG_CC_MS_EXTENSIONS "([^"]*)"\s*$', re.M)
# The dialect flags the kernel's Kconfig offers (-fms-extensions, -fms-anonymous-structs):
# -f and -W words without a value. A series writes the string (Kconfig is its own), and the
# host compiles with it outside the build sandbox (patchci/layouts.py): "-wrapper prog,..."
# or "-fplugin=obj/x.so" there would run the series' code on the host.
_DIALECT_FLAG = re.compile(r"-[fW][a-z0-9][a-z0-9-]*")
# clang warns about what -fms-extensions allows; the kernel silences it the same way.
CLANG_QUIET = ("-Wno-microsoft-anon-tag",)


def dialect(autoconf: str, clang: bool = False) -> tuple[str, ...]:
    """Flags from an autoconf.h text: () for kernels that need none. Only dialect flags
    (_DIALECT_FLAG): any other word of the string is left out."""
    m = _MS.search(autoconf)
    if m is None or not m.group(1).strip():
        return ()
    flags = tuple(f for f in shlex.split(m.group(1)) if _DIALECT_FLAG.fullmatch(f))
    if not flags:
        return ()
    return (*flags, *CLANG_QUIET) if clang else flags


def of_tree(headers_root: Path, clang: bool = False) -> tuple[str, ...]:
    """The dialect of an object tree (or an extracted archive) at ``headers_root``."""
    autoconf = headers_root / "include/generated/autoconf.h"
    return dialect(autoconf.read_text(errors="replace"), clang) if autoconf.exists() else ()
