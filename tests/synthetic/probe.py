"""Both sides of the layout check for the fake kernel.

The headers' side is measured, not written down: ``compile_probe`` does what the guest does,
extracts the archive and compiles the suite's probe against it with gcc -S and bcc's flags, so
gcc decides every offset. The kernel's side, ``synthetic_btf``, is BTF written by hand for the
structures of tree.py (what pahole would encode from a kernel built from them); the good build
passing the layout check is gcc agreeing with that hand-made record.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from kheaders_suite.verify.probe import probe_command, probe_source
from tests.synthetic.btfgen import BtfBuilder, BtfMember

PROBE_STRUCTS = (
    ("task_struct", ("flags", "pid", "comm", "mm", "active_mm", "prio")),
    ("sock", ("__sk_common", "__sk_common.skc_family", "__sk_common.skc_state", "sk_rcvbuf",
              "sk_user_data")),
)
PROBE_HEADERS = ("linux/sched.h", "net/sock.h")
VOLATILE = 9


def compile_probe(archive: bytes, workdir: Path, srcarch: str, cc: str = "gcc") -> str:
    """The probe's assembly, compiled against ``archive`` extracted under ``workdir``."""
    root = workdir / "kheaders"
    root.mkdir(parents=True)
    blob = workdir / "kheaders.tar.xz"
    blob.write_bytes(archive)
    subprocess.run(("tar", "-xJf", str(blob), "-C", str(root)), check=True, timeout=60,
                   capture_output=True)
    source, output = workdir / "probe.c", workdir / "probe.s"
    source.write_text(probe_source(PROBE_STRUCTS, PROBE_HEADERS))
    subprocess.run(probe_command(cc, str(root), srcarch, str(source), str(output)),
                   check=True, timeout=60, capture_output=True)
    return output.read_text()


def synthetic_btf(sk_rcvbuf_bits: int = 32) -> bytes:
    """vmlinux BTF for tree.py's task_struct and sock (LP64), worked out by hand.

    ``sk_rcvbuf_bits`` moves one field, for the tamper where BTF and headers disagree.
    """
    b = BtfBuilder()
    u32 = b.int_("unsigned int", 4, signed=False)
    i32 = b.int_("int", 4)
    char = b.int_("char", 1)
    uchar = b.int_("unsigned char", 1, signed=False)
    u16 = b.modifier(8, b.int_("short unsigned int", 2, signed=False), "u16")
    b.int_("long int", 8)
    mm_ptr = b.ptr(b.struct("mm_struct", 8, [BtfMember("pgd", u32, 0)]))
    anon = b.struct("", 8, [BtfMember("mm", mm_ptr, 0), BtfMember("active_mm", mm_ptr, 0)],
                    union=True)
    b.struct("task_struct", 40, [
        BtfMember("flags", u32, 0), BtfMember("pid", b.modifier(8, i32, "pid_t"), 32),
        BtfMember("comm", b.array(char, i32, 16), 64), BtfMember("", anon, 192),
        BtfMember("in_execve", u32, 256, 1), BtfMember("in_iowait", u32, 257, 1),
        BtfMember("prio", i32, 288)])
    common = b.struct("sock_common", 4, [
        BtfMember("skc_family", u16, 0),
        BtfMember("skc_state", b.modifier(VOLATILE, uchar), 16),
        BtfMember("skc_reuse", uchar, 24, 4)])
    b.struct("sock", 16, [BtfMember("__sk_common", common, 0),
                          BtfMember("sk_rcvbuf", i32, sk_rcvbuf_bits),
                          BtfMember("sk_user_data", b.ptr(0), 64)])
    return b.encode()
