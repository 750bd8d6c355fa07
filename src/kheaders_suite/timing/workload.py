"""The workload: C sources shaped like bcc tools, and the compiler command lines (pure).

The sources (workload/*.c) include what real tracing tools include (linux/sched.h, fs.h,
net/sock.h, skbuff.h, mm_types.h, blk-mq.h/bio.h, ...) and touch the types, so the compiler
does what it does for a bcc program: parse a few hundred kernel headers, then a little code.

Flags follow bcc's kbuild_helper for an archive-extracted tree: ``-D__KERNEL__``, ``-include
include/linux/kconfig.h`` and its seven -I dirs (kheaders-facts.md, "Who reads it"), plus
what gcc 12 needs to take kernel-internal headers as a userspace ``-c -O2`` compile: nothing
more than bcc's own -fno-stack-protector and no unwind tables, and for gcc the kernel's own
-fno-strict-aliasing (its top-level Makefile passes it for every file, and 6.1's rculist.h
type-puns: gcc 12 -O2 -Wall warns -Wstrict-aliasing on 6.1.192 without it; 6.12 and 7.x do
not). With -Wall this set is warning free against 6.1, 6.12, 7.2 and 7.3 headers (x86_64).
Templates carry {root}, {src}, {out}; the guest fills them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kheaders_suite.verify import cflags

WORKLOAD_DIR = Path(__file__).parent / "workload"
# The reduced sweep (CI) compiles one file, for time (sweep.py): the scheduler/VFS side
# (sched.h, fs.h, cred.h), which most tracing tools include.
REDUCED = ("execsnoop.c",)
CLANG_BPF = "clang-bpf"  # bcc's compiler, as bcc runs it


def all_sources() -> tuple[Path, ...]:
    return tuple(sorted(WORKLOAD_DIR.glob("*.c")))


def sources(sweep: str) -> tuple[Path, ...]:
    every = all_sources()
    if sweep == "full":
        return every
    return tuple(p for p in every if p.name in REDUCED)


def include_dirs(srcarch: str) -> tuple[str, ...]:
    """bcc's -I list, relative to the tree's root, in bcc's order."""
    arch = f"arch/{srcarch}/include"
    return (arch, f"{arch}/generated", f"{arch}/uapi", f"{arch}/generated/uapi",
            "include", "include/uapi", "include/generated/uapi")


def common_flags(srcarch: str, dialect: tuple[str, ...] = ()) -> tuple[str, ...]:
    return (*dialect, "-D__KERNEL__", '-DKBUILD_MODNAME="bcc"',
            "-include", "{root}/include/linux/kconfig.h",
            *(f"-I{{root}}/{d}" for d in include_dirs(srcarch)),
            "-fno-stack-protector", "-fno-unwind-tables", "-fno-asynchronous-unwind-tables")


def gcc_template(srcarch: str, cc: str = "gcc",
                 dialect: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The guest's gcc, as a userspace compile of kernel-internal headers; ``dialect`` is the
    kernel's C dialect (cflags.of_tree)."""
    return (cc, "-c", "-O2", "-Wall", "-Wno-address-of-packed-member",
            "-Wno-deprecated-declarations", "-fno-strict-aliasing",
            *common_flags(srcarch, dialect), "{src}", "-o", "{out}")


# What bcc's loader.cc adds for x86 hosts: the kernel's percpu/current macros repeat
# __seg_gs (-Wduplicate-decl-specifier, 4 warnings against 6.12 without it).
CLANG_ARCH_FLAGS = {"x86": ("-Wno-duplicate-decl-specifier", "-fcf-protection")}


def clang_bpf_template(srcarch: str, cc: str = "clang-14",
                       dialect: tuple[str, ...] = ()) -> tuple[str, ...]:
    """clang as bcc drives it (bcc 0.26 links LLVM 14: Debian's clang-14): the front end
    for the machine's own triple, emitting LLVM IR, which bcc then hands to the BPF back
    end. No -target: the guest's clang defaults to its own triple, what bcc asks for
    (get_clang_target_cb); ``-target bpf`` rejects the kernel's inline asm (x86's "=a",
    arm64's "+Q" constraints: every workload file fails against 6.12). bcc's loader.cc
    and kbuild_helper.cc flags, but for -nostdinc (bcc brings its own copy of clang's
    builtin headers; this clang has its resource directory), -O0 (overridden by -O2) and
    -D__HAVE_BUILTIN_BSWAP*__ (compiler-clang.h defines them: -Wmacro-redefined on x86)."""
    return (cc, "-O2", "-emit-llvm", "-g", "-gdwarf-4", "-D__BPF_TRACING__",
            "-Wno-deprecated-declarations",
            "-Wno-gnu-variable-sized-type-not-at-end", "-Wno-pragma-once-outside-header",
            "-Wno-address-of-packed-member", "-Wno-unknown-warning-option",
            "-Wno-unused-value", "-Wno-pointer-sign", *CLANG_ARCH_FLAGS.get(srcarch, ()),
            "-fno-jump-tables", "-x", "c", "-c",
            *common_flags(srcarch, dialect), "{src}", "-o", "{out}")


def frontend_args(srcarch: str, headers_root: Path | None = None) -> tuple[str, ...]:
    """clang's front end (libclang parse: preprocess, parse, semantic analysis) with bcc's
    include flags and the kernel's dialect; the guest's native target."""
    dialect = cflags.of_tree(headers_root, clang=True) if headers_root else ()
    return ("-x", "c", "-Wall", "-Wno-address-of-packed-member", "-Wno-unknown-warning-option",
            *common_flags(srcarch, dialect))


def templates(srcarch: str, headers_root: Path | None = None) -> dict[str, tuple[str, ...]]:
    """Every compiler the sweep tries; the guest skips those it does not have. The dialect
    flags come from the build's headers at ``headers_root`` (cflags.of_tree)."""
    gcc = cflags.of_tree(headers_root) if headers_root else ()
    clang = cflags.of_tree(headers_root, clang=True) if headers_root else ()
    return {"gcc": gcc_template(srcarch, dialect=gcc),
            CLANG_BPF: clang_bpf_template(srcarch, dialect=clang)}


def fill(template: Sequence[str], root: str, src: str, out: str) -> tuple[str, ...]:
    """The argv for one compile (the guest script does the same substitution)."""
    values = {"{root}": root, "{src}": src, "{out}": out}
    filled = []
    for arg in template:
        for key, value in values.items():
            arg = arg.replace(key, value)
        filled.append(arg)
    return tuple(filled)
