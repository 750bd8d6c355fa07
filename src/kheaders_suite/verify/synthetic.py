"""A small fake kernel build whose archive is made exactly as gen_kheaders.sh makes it.

``make_synthetic_build(tmp)`` writes a source tree, the object tree's header copy, a .config
and the archive (source tree's *.h, object tree's over them, comments stripped with the
kernel's rule, tar with "./" names and directory entries in --sort=name order, 0:0, modes
0644/0755, one mtime, xz), plus what a guest would report: its archive bytes, ``uname -r``,
the layout probe's output and a BTF blob that agrees with it. tests/ and the VM suite use it
as the known-good input the tamper catalogue (tamper.py) breaks one way at a time.
"""

from __future__ import annotations

import io
import lzma
import os
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kheaders_suite.build import BUILD_TIMESTAMP, KernelBuild
from kheaders_suite.source import KernelVersion
from kheaders_suite.verify.archive import Member
from kheaders_suite.verify.btfgen import BtfBuilder, BtfMember
from kheaders_suite.verify.generated import autoconf_defines
from kheaders_suite.verify.layout import Field, StructLayout
from kheaders_suite.verify.members import NO_UTSVERSION_SINCE, UTSVERSION, expected_members
from kheaders_suite.verify.metadata import DIR_MODE, FILE_MODE, tar_sort_key
from kheaders_suite.verify.probe import format_probe
from kheaders_suite.verify.strip import strip_comments

RELEASE = "6.12.0-synthetic"
VERSION = KernelVersion(6, 12, 0)
SRCARCH = "x86"

SOURCE_FILES: dict[str, str] = {
    "include/linux/kconfig.h": "/* SPDX-License-Identifier: GPL-2.0 */\n"
    "#include <generated/autoconf.h>\n",
    "include/linux/sched.h": "/* SPDX-License-Identifier: GPL-2.0 */\n"
    "#ifndef _LINUX_SCHED_H\n#define _LINUX_SCHED_H\n/*\n * Define 'struct task_struct'.\n */\n"
    "#include <linux/sched/signal.h>\n// kept: a C99 comment /* even with this */\n"
    'static const char sched_banner[] = "/* not a comment to C, one to perl";\n'
    "struct task_struct { unsigned int flags; /* PF_* */ int pid; char comm[16]; };\n"
    "#endif /* _LINUX_SCHED_H */\n",
    "include/linux/sched/signal.h": "/* SPDX-License-Identifier: GPL-2.0 */\n"
    "/** kernel-doc: signals */\nstruct signal_struct { int nr_threads; };\n",
    "include/linux/types.h": "/* SPDX-License-Identifier: GPL-2.0 */\ntypedef int pid_t;\n",
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


def epoch(timestamp: str = BUILD_TIMESTAMP) -> int:
    """KBUILD_BUILD_TIMESTAMP ("2019-04-26 00:00:00 UTC") as the archive's mtime."""
    parsed = datetime.strptime(timestamp, "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC)
    return int(parsed.timestamp())


def autoconf_text(dot_config: str, version: str = "6.12.0") -> str:
    """include/generated/autoconf.h as scripts/kconfig/confdata.c writes it."""
    head = ("/*\n * Automatically generated file; DO NOT EDIT.\n"
            f" * Linux/x86 {version} Kernel Configuration\n */\n")
    return head + "".join(f"#define {k} {v}\n" for k, v in autoconf_defines(dot_config).items())


def objtree_files(dot_config: str, release: str) -> dict[str, str]:
    return {
        "include/generated/autoconf.h": autoconf_text(dot_config),
        "include/generated/utsrelease.h": f'#define UTS_RELEASE "{release}"\n',
        UTSVERSION: '#define UTS_VERSION "#1 SMP PREEMPT_DYNAMIC Fri Apr 26 00:00:00 UTC '
        '2019"\n',
        "include/generated/uapi/linux/version.h": "#define LINUX_VERSION_CODE 396288\n",
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


def staged_members(source_dir: Path, objtree_headers: Path, srcarch: str,
                   version: KernelVersion, mtime: int) -> list[Member]:
    """What gen_kheaders.sh puts in its temp dir, as normalized members in tar order."""
    entries: list[Member] = []
    names = expected_members(source_dir, objtree_headers, srcarch, version)
    dirs = {"/".join(n.split("/")[:i]) for n in names for i in range(len(n.split("/")))}
    for name in sorted(names | dirs, key=tar_sort_key):
        if name in dirs:
            raw = f"./{name}/" if name else "./"
            entries.append(Member(name, raw, "dir", DIR_MODE, 0, 0, "", "", mtime))
            continue
        obj = objtree_headers / name
        path = obj if os.path.lexists(obj) else source_dir / name
        if path.is_symlink():
            entries.append(Member(name, f"./{name}", "symlink", FILE_MODE, 0, 0, "", "",
                                  mtime, linkname=os.readlink(path)))
        else:
            entries.append(Member(name, f"./{name}", "file", FILE_MODE, 0, 0, "", "", mtime,
                                  strip_comments(path.read_bytes())))
    return entries


def write_tar(members: Iterable[Member]) -> bytes:
    """An uncompressed GNU-format tar of the members, in the order given."""
    kinds = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
             "hardlink": tarfile.LNKTYPE, "other": tarfile.FIFOTYPE}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for m in members:
            info = tarfile.TarInfo(m.raw_name)
            info.type, info.mode, info.mtime = kinds[m.kind], m.mode, m.mtime
            info.uid, info.gid, info.uname, info.gname = m.uid, m.gid, m.uname, m.gname
            info.linkname, info.size = m.linkname, len(m.data)
            tar.addfile(info, io.BytesIO(m.data) if m.kind == "file" else None)
    return buf.getvalue()


def write_archive(members: Iterable[Member]) -> bytes:
    """tar, then xz with xz(1)'s defaults (CRC64), as ``tar -I $XZ`` does."""
    return lzma.compress(write_tar(members), format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64)


def synthetic_btf(sk_rcvbuf_bits: int = 64) -> bytes:
    """vmlinux BTF for the fake kernel: bitfields, an anonymous union, a nested struct.

    ``sk_rcvbuf_bits`` moves one field, for the tamper that makes BTF disagree.
    """
    b = BtfBuilder()
    u32 = b.int_("unsigned int", 4, signed=False)
    i32 = b.int_("int", 4)
    char = b.int_("char", 1)
    u16 = b.int_("short unsigned int", 2, signed=False)
    b.int_("long int", 8)
    comm = b.array(char, i32, 16)
    mm = b.struct("mm_struct", 8, [BtfMember("pgd", u32, 0)])
    mm_ptr = b.ptr(mm)
    anon = b.struct("", 8, [BtfMember("mm", mm_ptr, 0), BtfMember("active_mm", mm_ptr, 0)],
                    union=True)
    b.struct("task_struct", 48, [
        BtfMember("flags", u32, 0), BtfMember("pid", b.modifier(8, i32, "pid_t"), 32),
        BtfMember("comm", comm, 64), BtfMember("", anon, 192),
        BtfMember("in_execve", u32, 256, 1), BtfMember("in_iowait", u32, 257, 1),
        BtfMember("prio", i32, 320)])
    common = b.struct("sock_common", 8, [BtfMember("skc_family", u16, 0),
                                         BtfMember("skc_state", char, 16)])
    b.struct("sock", 16, [BtfMember("__sk_common", common, 0),
                          BtfMember("sk_rcvbuf", b.modifier(10, i32), sk_rcvbuf_bits)])
    return b.encode()


def synthetic_probe_layouts() -> dict[str, StructLayout]:
    """What the probe reports for the fake kernel's headers (agrees with synthetic_btf)."""
    return {
        "task_struct": StructLayout("task_struct", 48, {
            "flags": Field(0, 4), "pid": Field(32, 4), "comm": Field(64, 16),
            "mm": Field(192, 8), "active_mm": Field(192, 8), "prio": Field(320, 4)}),
        "sock": StructLayout("sock", 16, {
            "__sk_common.skc_family": Field(0, 2), "__sk_common.skc_state": Field(16, 1),
            "sk_rcvbuf": Field(64, 4)}),
    }


@dataclass(frozen=True)
class SyntheticBuild:
    """A fake build and what its guest reports; tamper.py returns altered copies."""

    root: Path
    source_dir: Path
    objtree_headers: Path
    srcarch: str
    version: KernelVersion
    release: str
    dot_config: str
    archive: bytes  # kernel/kheaders_data.tar.xz as the build wrote it
    guest_archive: bytes  # /sys/kernel/kheaders.tar.xz as the guest serves it
    uname_r: str
    mtime: int
    probe_output: str
    btf: bytes

    def kernel_build(self) -> KernelBuild:
        """A KernelBuild record for this fake build (files written under ``root``)."""
        out = self.root / "build"
        out.mkdir(parents=True, exist_ok=True)
        (out / "config").write_text(self.dot_config)
        (out / "kheaders_data.tar.xz").write_bytes(self.archive)
        for name in ("bzImage", "build.log"):
            (out / name).touch()
        return KernelBuild(key="synthetic", arch="x86_64", variant="synthetic",
                           release=self.release, dir=out, image=out / "bzImage",
                           config=out / "config", archive=out / "kheaders_data.tar.xz",
                           modroot=None, source_dir=self.source_dir, srcarch=self.srcarch,
                           objtree_headers=self.objtree_headers, log=out / "build.log",
                           seconds=0.0, source_origin="synthetic")


def make_synthetic_build(tmp: Path, version: KernelVersion = VERSION,
                         with_utsversion: bool = True) -> SyntheticBuild:
    """Write the fake trees under ``tmp`` and pack their archive as gen_kheaders.sh would."""
    source, objtree = tmp / "src", tmp / "objtree"
    write_tree(source, SOURCE_FILES, SOURCE_LINKS)
    generated = objtree_files(CONFIG, RELEASE)
    if not with_utsversion or version >= NO_UTSVERSION_SINCE:
        generated.pop(UTSVERSION)
    write_tree(objtree, generated)
    mtime = epoch()
    archive = write_archive(staged_members(source, objtree, SRCARCH, version, mtime))
    return SyntheticBuild(tmp, source, objtree, SRCARCH, version, RELEASE, CONFIG, archive,
                          archive, RELEASE, mtime, format_probe(synthetic_probe_layouts()),
                          synthetic_btf())

