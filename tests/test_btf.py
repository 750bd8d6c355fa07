"""The BTF reader, the layout probe and their comparison (no VM).

Synthetic blobs cover the encodings; when the tools are there, real data too: the host's
/sys/kernel/btf/vmlinux against ``bpftool btf dump``, and the probe compiled with gcc -S
(x86_64 and cross arm64) against BTF that pahole encodes from the same headers' DWARF.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from kheaders_suite.verify.btf import BtfError, parse_btf
from kheaders_suite.verify.layout import Field, StructLayout, compare_layouts, resolve
from kheaders_suite.verify.probe import (
    DEFAULT_STRUCTS,
    bcc_include_flags,
    format_probe,
    parse_probe,
    probe_command,
    probe_source,
)
from tests.synthetic.btfgen import BtfBuilder, BtfMember

TYPEDEF, CONST, VOLATILE = 8, 10, 9
PROBE_ROOT = Path(__file__).parent / "data/verify/probe"
PROBE_STRUCTS = (
    ("task_struct", ("__state", "stack", "usage", "flags", "prio", "mm", "mm_cookie", "pid",
                     "tgid", "extra", "comm", "tasks", "tasks.prev")),
    ("sock", ("__sk_common", "__sk_common.skc_family", "__sk_common.skc_daddr",
              "__sk_common.skc_rcv_saddr", "__sk_common.skc_state", "sk_rcvbuf", "sk_peer",
              "sk_type")),
    ("sock_common", ("skc_addrpair", "skc_family")),
)
# Worked out by hand for LP64 (x86_64 and arm64 agree): see tests/data/verify/probe.
PROBE_WANT = {
    "task_struct": (104, {"__state": (0, 4), "stack": (8, 8), "usage": (16, 4),
                          "flags": (20, 4), "prio": (28, 4), "mm": (32, 8),
                          "mm_cookie": (32, 8), "pid": (40, 4), "tgid": (44, 4),
                          "extra": (48, 24), "comm": (72, 16), "tasks": (88, 16),
                          "tasks.prev": (96, 8)}),
    "sock": (40, {"__sk_common": (0, 16), "__sk_common.skc_family": (8, 2),
                  "__sk_common.skc_daddr": (0, 4), "__sk_common.skc_rcv_saddr": (4, 4),
                  "__sk_common.skc_state": (10, 1), "sk_rcvbuf": (16, 4), "sk_peer": (24, 8),
                  "sk_type": (32, 2)}),
    "sock_common": (16, {"skc_addrpair": (0, 8), "skc_family": (8, 2)}),
}


def sample_blob(endian: str = "<", kflag: bool = True) -> bytes:
    b = BtfBuilder(endian=endian)
    u32 = b.int_("unsigned int", 4, signed=False)  # 1
    i64 = b.int_("long int", 8)  # 2
    char = b.int_("char", 1)  # 3
    pid_t = b.modifier(TYPEDEF, u32, "pid_t")  # 4
    cpid = b.modifier(CONST, b.modifier(VOLATILE, pid_t))  # 6 -> 5 -> 4
    arr = b.array(char, u32, 16)  # 7
    inner = b.struct("inner", 8, [BtfMember("a", u32, 0), BtfMember("b", u32, 32)])  # 8
    ptr = b.ptr(inner)  # 9
    anon = b.struct("", 8, [BtfMember("p", ptr, 0), BtfMember("q", i64, 0)], union=True)
    b.struct("outer", 48, [
        BtfMember("x", cpid, 0), BtfMember("bits1", u32, 32, 3), BtfMember("bits2", u32, 35, 5),
        BtfMember("", anon, 64), BtfMember("name", arr, 128), BtfMember("in", inner, 256),
        BtfMember("tail", b.modifier(TYPEDEF, inner, "inner_t"), 320)], kflag=kflag)
    return b.encode()


def test_parse_synthetic_blob() -> None:
    layouts = parse_btf(sample_blob())
    outer = layouts["outer"]
    assert outer.size == 48
    assert outer.kind == "struct"
    assert outer.members["x"] == Field(0, 4)
    assert outer.members["bits1"] == Field(32, None, 3)
    assert outer.members["bits2"] == Field(35, None, 5)
    assert outer.members["p"] == Field(64, 8)  # the anonymous union is flattened
    assert outer.members["q"] == Field(64, 8)
    assert outer.members["name"] == Field(128, 16)
    assert outer.members["in"] == Field(256, 8, 0, "inner")
    assert outer.members["tail"] == Field(320, 8, 0, "inner")  # through the typedef
    assert "" not in outer.members
    assert resolve(layouts, "outer", "tail.b") == Field(352, 4)
    assert resolve(layouts, "outer", "p.a") is None  # pointers are not followed
    assert resolve(layouts, "outer", "nope") is None
    anon_keys = [k for k in layouts if k.startswith("#")]
    assert len(anon_keys) == 1
    assert layouts[anon_keys[0]].kind == "union"


def test_big_endian_blob() -> None:
    assert parse_btf(sample_blob(">")) == parse_btf(sample_blob("<"))


def test_old_bitfield_encoding() -> None:
    """Without kind_flag a bitfield is an INT whose encoding has fewer bits than its size."""
    b = BtfBuilder()
    u32 = b.int_("unsigned int", 4, signed=False)
    three = b.int_("unsigned int", 4, signed=False, bits=3)
    shifted = b.int_("unsigned int", 4, signed=False, bits=2, bit_offset=5)
    b.struct("s", 8, [BtfMember("whole", u32, 0), BtfMember("f3", three, 32),
                      BtfMember("f2", shifted, 32)], kflag=False)
    members = parse_btf(b.encode())["s"].members
    assert members["whole"] == Field(0, 4)
    assert members["f3"] == Field(32, None, 3)
    assert members["f2"] == Field(37, None, 2)


def test_same_name_twice_keyed_by_id() -> None:
    b = BtfBuilder()
    u32 = b.int_("unsigned int", 4)
    b.struct("dup", 4, [BtfMember("a", u32, 0)])
    b.struct("dup", 8, [BtfMember("b", u32, 32)])
    layouts = parse_btf(b.encode())
    assert layouts["dup"].size == 4
    assert layouts["#3"].size == 8
    assert layouts["#3"].name == "dup"


@pytest.mark.parametrize(("blob", "says"), [
    (b"\x9f\xeb", "too short"),
    (b"\x00\x00" + b"\x00" * 30, "bad magic"),
    (struct.pack("<HBBI4I", 0xEB9F, 2, 0, 24, 0, 0, 0, 1) + b"\0", "version 2"),
    (struct.pack("<HBBI4I", 0xEB9F, 1, 0, 24, 0, 100, 0, 1) + b"\0", "sections end"),
    (struct.pack("<HBBI4I", 0xEB9F, 1, 0, 24, 0, 12, 12, 1)
     + struct.pack("<3I", 0, 25 << 24, 0) + b"\0", "unknown kind 25"),
    (struct.pack("<HBBI4I", 0xEB9F, 1, 0, 24, 0, 12, 12, 1)
     + struct.pack("<3I", 0, 1 << 24, 4) + b"\0", "overruns"),
])
def test_malformed_blobs(blob: bytes, says: str) -> None:
    with pytest.raises(BtfError, match=says):
        parse_btf(blob)


def test_compare_layouts_names_every_disagreement() -> None:
    btf = parse_btf(sample_blob())
    probe = {
        "outer": StructLayout("outer", 56, {"x": Field(0, 4), "bits1": Field(32, 4),
                                            "q": Field(72, 8), "name": Field(128, 8),
                                            "gone": Field(0, 4)}),
        "missing": StructLayout("missing", 8),
    }
    result = compare_layouts(probe, btf, [("outer", ()), ("missing", ())])
    assert not result.ok
    assert result.details == [
        "struct missing: not in BTF",
        "struct outer: size 56 from the headers, 48 in BTF",
        "outer.bits1: a 3-bit bitfield in BTF",
        "outer.q: offset 9 from the headers, 8 in BTF",
        "outer.name: size 8 from the headers, 16 in BTF",
        "outer.gone: not in BTF",
    ]
    assert not compare_layouts({}, btf, [("outer", ())]).ok


def _missing(what: str) -> str:
    return f"{what}: asked for, not in the probe's output"


@pytest.mark.parametrize(("drop", "says"), [
    pytest.param(r"@@kh", [_missing(f"struct {n}") for n, _ in PROBE_STRUCTS],
                 id="nothing-parsed"),
    pytest.param(r" sock[ .]", [_missing("struct sock")], id="one-struct-missing"),
    pytest.param(r" sock\.sk_rcvbuf ", [_missing("sock.sk_rcvbuf")], id="one-field-missing"),
    pytest.param(r"member task_struct\.",
                 [_missing(f"task_struct.{m}") for _, ms in PROBE_STRUCTS[:1] for m in ms],
                 id="struct-without-fields"),
])
def test_a_probe_that_measured_less_than_asked_fails(drop: str, says: list[str]) -> None:
    """The probe's output with lines cut (a compile that stopped early, a parser that lost
    lines): every struct and member asked for and not measured is named."""
    full = {n: StructLayout(n, size, {p: Field(o * 8, sz) for p, (o, sz) in m.items()})
            for n, (size, m) in PROBE_WANT.items()}
    text = format_probe(full)
    kept = "\n".join(line for line in text.splitlines() if not re.search(drop, line))
    assert kept != text
    result = compare_layouts(parse_probe(kept), parse_btf(sample_blob()), PROBE_STRUCTS)
    assert not result.ok
    assert result.details == says
    assert "asked for" in result.render()


def test_probe_text_round_trip() -> None:
    layouts = {name: StructLayout(name, size, {p: Field(o * 8, s) for p, (o, s) in m.items()})
               for name, (size, m) in PROBE_WANT.items()}
    assert parse_probe(format_probe(layouts)) == layouts
    asm = '\t.ascii "@@kh struct x $16"\n#APP\n.ascii "@@kh member x.a #8 $4"\n'
    assert parse_probe(asm) == {"x": StructLayout("x", 16, {"a": Field(64, 4)})}


def test_probe_source_shape() -> None:
    text = probe_source([("sock", ["__sk_common.skc_family"])], ["net/sock.h"])
    assert "#include <net/sock.h>" in text
    assert 'asm volatile("\\n.ascii \\"@@kh struct sock %c0\\"" : : ' \
           '"i" ((long)(sizeof(struct sock))));' in text
    assert "offsetof(struct sock, __sk_common.skc_family)" in text
    with pytest.raises(ValueError, match="not a member path"):
        probe_source([("sock", ["a; evil()"])])
    with pytest.raises(ValueError, match="not a struct name"):
        probe_source([("sock x", [])])
    assert sum(len(m) for _, m in DEFAULT_STRUCTS) == 111


def test_bcc_flags_and_command() -> None:
    assert bcc_include_flags("/tmp/k", "arm64") == (
        "-include", "/tmp/k/include/linux/kconfig.h", "-D__KERNEL__",
        "-I/tmp/k/arch/arm64/include", "-I/tmp/k/arch/arm64/include/generated",
        "-I/tmp/k/include", "-I/tmp/k/arch/arm64/include/uapi",
        "-I/tmp/k/arch/arm64/include/generated/uapi", "-I/tmp/k/include/uapi",
        "-I/tmp/k/include/generated/uapi")
    cmd = probe_command("gcc", "/r", "x86", "p.c", "p.s")
    assert cmd[0] == "gcc"
    assert cmd[-6:] == ("-O2", "-w", "-S", "-o", "p.s", "p.c")


COMPILERS = [pytest.param("gcc", id="x86_64"),
             pytest.param("aarch64-linux-gnu-gcc", id="arm64")]


def _compile_probe(cc: str, tmp: Path) -> str:
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} not installed")
    src = tmp / "probe.c"
    src.write_text(probe_source(PROBE_STRUCTS, ("linux/sched.h", "net/sock.h")))
    subprocess.run(probe_command(cc, str(PROBE_ROOT), "x86", str(src), str(tmp / "probe.s")),
                   check=True, timeout=60, capture_output=True)
    return (tmp / "probe.s").read_text()


@pytest.mark.parametrize("cc", COMPILERS)
def test_probe_compiles_and_reads_back(cc: str, tmp_path: Path) -> None:
    got = parse_probe(_compile_probe(cc, tmp_path))
    assert {n: (lay.size, {p: (f.bit_offset // 8, f.size) for p, f in lay.members.items()})
            for n, lay in got.items()} == PROBE_WANT


@pytest.mark.parametrize("cc", COMPILERS)
def test_probe_agrees_with_pahole_btf(cc: str, tmp_path: Path) -> None:
    """The same headers, compiled with -g and turned into BTF by pahole, as a kernel build
    with DEBUG_INFO_BTF does: the probe and the BTF reader must agree (and see bitfields)."""
    if shutil.which("pahole") is None:
        pytest.skip("pahole not installed")
    probe = parse_probe(_compile_probe(cc, tmp_path))
    src = tmp_path / "dwarf.c"
    src.write_text("#include <linux/sched.h>\n#include <net/sock.h>\n"
                   "struct task_struct t; struct sock s;\n")
    obj = tmp_path / "dwarf.o"
    flags = bcc_include_flags(str(PROBE_ROOT), "x86")
    subprocess.run((cc, *flags, "-g", "-c", "-o", str(obj), str(src)), check=True, timeout=60)
    btf_file = tmp_path / "dwarf.btf"
    subprocess.run(("pahole", f"--btf_encode_detached={btf_file}", str(obj)), check=True,
                   timeout=60, capture_output=True)
    btf = parse_btf(btf_file.read_bytes())
    compare_layouts(probe, btf, PROBE_STRUCTS).require()
    assert btf["sock_common"].members["skc_reuse"].bitfield_size == 4
    assert btf["task_struct"].members["sched_contributes_to_load"] == Field(193, None, 1)


VMLINUX = Path("/sys/kernel/btf/vmlinux")
_RAW_TYPE = re.compile(r"^\[(\d+)\] (STRUCT|UNION) '([^']*)' size=(\d+) vlen=\d+$")
_RAW_MEMBER = re.compile(r"^\s+'([^']*)' type_id=\d+ bits_offset=(\d+)(?: bitfield_size=(\d+))?$")


def _bpftool_structs(text: str) -> dict[str, tuple[int, dict[str, tuple[int, int]]]]:
    """name -> (size, {member: (bit offset, bitfield size)}) for names used once."""
    out: dict[str, tuple[int, dict[str, tuple[int, int]]]] = {}
    seen: dict[str, int] = {}
    current: dict[str, tuple[int, int]] | None = None
    for line in text.splitlines():
        head = _RAW_TYPE.match(line)
        if head:
            name = head.group(3)
            seen[name] = seen.get(name, 0) + 1
            current = {}
            if name != "(anon)":
                out[name] = (int(head.group(4)), current)
            continue
        if line.startswith("["):
            current = None
            continue
        member = _RAW_MEMBER.match(line)
        if member and current is not None and member.group(1) != "(anon)":
            current[member.group(1)] = (int(member.group(2)), int(member.group(3) or 0))
    return {n: v for n, v in out.items() if seen[n] == 1}


def test_host_vmlinux_btf_matches_bpftool() -> None:
    """Every uniquely named struct and union of the running kernel: size and each direct
    member's offset and bitfield size as bpftool reads them."""
    if shutil.which("bpftool") is None or not VMLINUX.exists():
        pytest.skip("needs bpftool and /sys/kernel/btf/vmlinux")
    data = VMLINUX.read_bytes()
    dump = subprocess.run(("bpftool", "btf", "dump", "file", str(VMLINUX), "format", "raw"),
                          capture_output=True, text=True, check=True, timeout=120).stdout
    want = _bpftool_structs(dump)
    layouts = parse_btf(data)
    bad = []
    for name, (size, members) in want.items():
        got = layouts[name]
        if got.size != size:
            bad.append(f"{name}: size {got.size}, bpftool {size}")
        for member, (bits, bitfield) in members.items():
            field = got.members.get(member)
            if field is None or (field.bit_offset, field.bitfield_size) != (bits, bitfield):
                bad.append(f"{name}.{member}: {field}, bpftool {bits}/{bitfield}")
    print(f"\nhost BTF: {len(want)} structs/unions compared, task_struct "
          f"{layouts['task_struct'].size} bytes (bpftool {want['task_struct'][0]})")
    assert not bad, bad[:20]
