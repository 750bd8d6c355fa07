"""Check 7a: what the archive's headers say structures look like, measured in the guest.

How the numbers get out: the probe is never linked or run. A userspace program cannot link
against kernel-internal headers compiled with -D__KERNEL__ (they redefine what libc defines),
and running a cross-compiled binary needs the other arch. Instead it uses the trick of the
kernel's own asm-offsets (include/linux/kbuild.h): every value is an "i" (immediate) operand
of an ``asm volatile`` that writes it into an ``.ascii`` directive, and the file is only
compiled to assembly (``gcc -S``). The compiler must fold sizeof/offsetof to constants to
satisfy "i", so the .s file carries lines like

    .ascii "@@kh struct task_struct 9152"
    .ascii "@@kh member task_struct.pid 2464 4"

``%c0`` prints the bare number (no "$" on x86, no "#" on arm64); ``parse_probe`` still
accepts either prefix. Nothing is assembled, so the same text comes out of a native gcc in the
guest and of aarch64-linux-gnu-gcc on the host, and the parser does not depend on the
assembler syntax of .quad/.xword or on ELF. Bitfields are left out: offsetof cannot take one.

The probe does not see CONFIG_RANDSTRUCT's shuffling (a compiler plugin the userspace
compile does not run), so against such a kernel the comparison fails, as bcc would.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from kheaders_suite.verify.layout import Field, StructLayout

TAG = "@@kh"
# Members present from 6.1 to 7.3 and not bitfields (page.index became __folio_index in
# 6.16 and file.f_count f_ref in 6.13, so neither is listed; a member that is renamed away is
# a compile error of the probe, so this list is checked against every supported kernel).
DEFAULT_STRUCTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("task_struct", ("__state", "stack", "flags", "prio", "mm", "active_mm", "pid", "tgid",
                     "real_parent", "parent", "children", "group_leader", "comm", "cred",
                     "real_cred", "files", "nsproxy", "signal", "tasks")),
    ("mm_struct", ("mm_mt", "mmap_base", "task_size", "pgd", "mm_users", "mm_count",
                   "map_count", "start_code", "end_code", "start_brk", "brk", "start_stack",
                   "arg_start", "env_start", "exe_file")),
    ("file", ("f_path", "f_inode", "f_op", "f_mode", "f_flags", "f_pos", "f_cred",
              "private_data", "f_mapping")),
    ("inode", ("i_mode", "i_uid", "i_gid", "i_flags", "i_op", "i_sb", "i_mapping", "i_ino",
               "i_size", "i_private", "i_rdev")),
    ("super_block", ("s_list", "s_dev", "s_blocksize", "s_maxbytes", "s_type", "s_op",
                     "s_flags", "s_magic", "s_root", "s_id", "s_fs_info")),
    ("sk_buff", ("len", "data_len", "mac_len", "protocol", "head", "data", "tail", "end",
                 "truesize", "users", "sk", "dev", "cb")),
    ("sock", ("__sk_common", "__sk_common.skc_family", "__sk_common.skc_state",
              "__sk_common.skc_daddr", "sk_rcvbuf", "sk_sndbuf", "sk_socket", "sk_priority",
              "sk_mark", "sk_err", "sk_receive_queue", "sk_write_queue")),
    ("dentry", ("d_flags", "d_parent", "d_name", "d_inode", "d_op", "d_sb", "d_fsdata")),
    ("cred", ("usage", "uid", "gid", "euid", "egid", "fsuid", "securebits", "cap_effective",
              "user_ns")),
    ("page", ("flags", "lru", "mapping", "private", "_refcount")),
)
DEFAULT_HEADERS = ("linux/sched.h", "linux/mm_types.h", "linux/fs.h", "linux/dcache.h",
                   "linux/cred.h", "linux/skbuff.h", "net/sock.h")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PATH = re.compile(rf"{_IDENT.pattern}(?:\.{_IDENT.pattern})*")
_LINE = re.compile(TAG + r" (struct|member) (\S+) [$#]?(\d+)(?: [$#]?(\d+))?")


def bcc_include_flags(root: str, srcarch: str) -> tuple[str, ...]:
    """The flags bcc compiles with against an extracted archive at ``root`` (its order)."""
    arch = f"{root}/arch/{srcarch}/include"
    return ("-include", f"{root}/include/linux/kconfig.h", "-D__KERNEL__",
            f"-I{arch}", f"-I{arch}/generated", f"-I{root}/include", f"-I{arch}/uapi",
            f"-I{arch}/generated/uapi", f"-I{root}/include/uapi",
            f"-I{root}/include/generated/uapi")


def probe_command(cc: str, root: str, srcarch: str, source: str,
                  output: str, dialect: tuple[str, ...] = ()) -> tuple[str, ...]:
    """gcc -S of the probe: assembly only, so nothing is linked, run, or even assembled.

    -O2 as the kernel is built: at -O0 gcc expands inline helpers whose asm takes "i"
    operands from their parameters (x86 WARN_ON -> _BUG_FLAGS in 6.12's linux/rwsem.h) and
    stops with "impossible constraint in 'asm'". -w: kernel headers are not warning-clean
    for a userspace compile, and warnings are not what this measures. ``dialect``: the
    kernel's C dialect flags (cflags.of_tree: -fms-extensions since 7.x).
    """
    return (cc, *dialect, *bcc_include_flags(root, srcarch), "-O2", "-w", "-S", "-o", output,
            source)


def _emit(kind: str, name: str, *values: str) -> str:
    operands = ", ".join(f'"i" ((long)({v}))' for v in values)
    refs = " ".join(f"%c{i}" for i in range(len(values)))
    return f'\tasm volatile("\\n.ascii \\"{TAG} {kind} {name} {refs}\\"" : : {operands});'


def probe_source(structs: Sequence[tuple[str, Sequence[str]]] = DEFAULT_STRUCTS,
                 headers: Sequence[str] = DEFAULT_HEADERS) -> str:
    """C source whose ``gcc -S`` output carries every struct size and member offset/size."""
    lines = ["/* kheaders-suite layout probe: compile with -S only, see probe.py */"]
    lines += [f"#include <{h}>" for h in headers]
    lines += ["#include <linux/stddef.h>", "", "void kheaders_layout_probe(void);",
              "void kheaders_layout_probe(void)", "{"]
    for name, members in structs:
        if not _IDENT.fullmatch(name):
            raise ValueError(f"not a struct name: {name!r}")
        lines.append(_emit("struct", name, f"sizeof(struct {name})"))
        for member in members:
            if not _PATH.fullmatch(member):
                raise ValueError(f"not a member path: {member!r}")
            lines.append(_emit("member", f"{name}.{member}",
                               f"offsetof(struct {name}, {member})",
                               f"sizeof(((struct {name} *)0)->{member})"))
    lines += ["}", ""]
    return "\n".join(lines)


def parse_probe(text: str) -> dict[str, StructLayout]:
    """Layouts from the probe's assembly (or from its lines already extracted)."""
    sizes: dict[str, int] = {}
    members: dict[str, dict[str, Field]] = {}
    for match in _LINE.finditer(text):
        kind, name, first, second = match.groups()
        if kind == "struct":
            sizes[name] = int(first)
            continue
        struct, _, path = name.partition(".")
        size = int(second) if second is not None else None
        members.setdefault(struct, {})[path] = Field(int(first) * 8, size)
    return {s: StructLayout(s, size, members.get(s, {})) for s, size in sizes.items()}


def format_probe(layouts: dict[str, StructLayout]) -> str:
    """The lines parse_probe reads, from layouts (for synthetic guests and reports)."""
    out = []
    for name, layout in layouts.items():
        out.append(f"{TAG} struct {name} {layout.size}")
        for path, f in layout.members.items():
            size = f" {f.size}" if f.size is not None else ""
            out.append(f"{TAG} member {name}.{path} {f.bit_offset // 8}{size}")
    return "\n".join(out) + "\n"
