"""The fake kernel's trees: a source tree, the object tree's generated headers, a .config.

Small, but with what the real ones have that the checks must get right: comments the kernel's
rule strips (and one it keeps, SPDX; one it wrongly takes from a string literal), a symlink,
a non-header under include/, another arch's headers, generated headers in the object tree
(utsversion.h among them: 6.12's script packs it, 7.3's rules leave it out). The headers
compile: the layout probe is built against the archive made from them (probe.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from kheaders_suite.source.tree import KernelVersion
from kheaders_suite.verify.generated import autoconf_defines

SRCARCH = "x86"
SOURCE_FILES: dict[str, str] = {
    "include/linux/kconfig.h": "/* SPDX-License-Identifier: GPL-2.0 */\n"
    "#include <generated/autoconf.h>\n",
    "include/linux/stddef.h": "/* SPDX-License-Identifier: GPL-2.0 */\n"
    "#define offsetof(TYPE, MEMBER) __builtin_offsetof(TYPE, MEMBER)\n",
    "include/linux/sched.h": "/* SPDX-License-Identifier: GPL-2.0 */\n"
    "#ifndef _LINUX_SCHED_H\n#define _LINUX_SCHED_H\n/*\n * Define 'struct task_struct'.\n */\n"
    "#include <linux/types.h>\n#include <linux/sched/signal.h>\n"
    "// kept: a C99 comment /* even with this */\n"
    'static const char sched_banner[] = "/* not a comment to C, one to perl */ kept";\n'
    "struct mm_struct;\n"
    "struct task_struct {\n\tunsigned int flags; /* PF_* */\n\tpid_t pid;\n\tchar comm[16];\n"
    "\tunion {\n\t\tstruct mm_struct *mm;\n\t\tstruct mm_struct *active_mm;\n\t};\n"
    "\tunsigned int in_execve:1;\n\tunsigned int in_iowait:1;\n\tint prio;\n};\n"
    "#endif /* _LINUX_SCHED_H */\n",
    "include/linux/sched/signal.h": "/* SPDX-License-Identifier: GPL-2.0 */\n"
    "/** kernel-doc: signals */\nstruct signal_struct { int nr_threads; };\n",
    "include/linux/types.h": "/* SPDX-License-Identifier: GPL-2.0 */\n"
    "#ifndef _LINUX_TYPES_H\n#define _LINUX_TYPES_H\ntypedef int pid_t;\n"
    "typedef unsigned short u16;\n#endif /* _LINUX_TYPES_H */\n",
    "include/net/sock.h": "/* SPDX-License-Identifier: GPL-2.0-or-later */\n"
    "#ifndef _SOCK_H\n#define _SOCK_H\n#include <linux/types.h>\n"
    "/* what the socket hash tables need */\nstruct sock_common {\n\tu16 skc_family;\n"
    "\tvolatile unsigned char skc_state;\n\tunsigned char skc_reuse:4;\n};\n"
    "struct sock {\n\tstruct sock_common __sk_common;\n\tint sk_rcvbuf;\n"
    "\tvoid *sk_user_data;\n};\n#endif /* _SOCK_H */\n",
    "include/uapi/linux/input-event-codes.h": "/* SPDX-License-Identifier: GPL-2.0 WITH "
    "Linux-syscall-note */\n#define EV_KEY 0x01 /* keys */\n",
    "include/uapi/Kbuild": "# not a header: packed by 5.2 only, never since 7199ff7d7400\n",
    "arch/x86/include/asm/page.h": "/* x86 pages */\n#define PAGE_SHIFT 12\n",
    "arch/x86/include/uapi/asm/unistd.h": "/* SPDX-License-Identifier: GPL-2.0 */\n"
    "#include <asm/unistd_64.h>\n",
    "arch/arm64/include/asm/page.h": "/* another arch: never packed for x86 */\n",
}
SOURCE_LINKS = {"include/dt-bindings/input/linux-event-codes.h":
                "../../uapi/linux/input-event-codes.h"}
CONFIG = """\
#
# Automatically generated file; DO NOT EDIT.
# Linux/x86 6.12.0 Kernel Configuration
#
CONFIG_CC_VERSION_TEXT="gcc (Debian 12.2.0-14) 12.2.0"
CONFIG_64BIT=y
CONFIG_X86_64=y
CONFIG_LOCALVERSION="-synthetic"
# CONFIG_LOCALVERSION_AUTO is not set
CONFIG_NR_CPUS=64
CONFIG_PHYSICAL_START=0x1000000
CONFIG_IKHEADERS=y
CONFIG_EXT4_FS=m
# CONFIG_DEBUG_INFO_BTF is not set
"""
UTSVERSION = "include/generated/utsversion.h"


def release_of(version: KernelVersion) -> str:
    return f"{version.major}.{version.minor}.0-synthetic"


def autoconf_text(dot_config: str, version: KernelVersion) -> str:
    """include/generated/autoconf.h as scripts/kconfig/confdata.c writes it."""
    head = ("/*\n * Automatically generated file; DO NOT EDIT.\n"
            f" * Linux/x86 {version} Kernel Configuration\n */\n")
    return head + "".join(f"#define {k} {v}\n" for k, v in autoconf_defines(dot_config).items())


def objtree_files(dot_config: str, version: KernelVersion, release: str) -> dict[str, str]:
    code = (version.major << 16) + (version.minor << 8)
    return {
        "include/generated/autoconf.h": autoconf_text(dot_config, version),
        "include/generated/utsrelease.h": f'#define UTS_RELEASE "{release}"\n',
        UTSVERSION: '#define UTS_VERSION "#1 SMP PREEMPT_DYNAMIC Fri Apr 26 00:00:00 UTC '
        '2019"\n',
        "include/generated/uapi/linux/version.h": f"#define LINUX_VERSION_CODE {code}\n",
        "arch/x86/include/generated/asm/syscalls_64.h": "/* generated */\n__SYSCALL(0, read)\n",
        "arch/x86/include/generated/uapi/asm/unistd_64.h": "#define __NR_read 0\n",
    }


def write_tree(top: Path, files: dict[str, str], links: dict[str, str] | None = None) -> None:
    for name, text in files.items():
        path = top / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for name, target in (links or {}).items():
        path = top / name
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)
