"""Check 7c: structure layouts seen through the archive's headers agree with the kernel's BTF.

Both sides become ``StructLayout`` records: the probe (probe.py) compiled in the guest against
the extracted archive, and the running kernel's /sys/kernel/btf/vmlinux (btf.py). Every field
the probe asked for must have the same size and offset in BTF; a header edit that changes a
structure without the kernel being rebuilt (or a config mismatch between archive and kernel,
or CONFIG_RANDSTRUCT, which userspace compilers do not apply) shows up here.

Member paths may be dotted (``sock`` ``__sk_common.skc_family``): anonymous structs and unions
are flattened into their parent as C does, named nested structs are followed by type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kheaders_suite.verify.result import CheckResult, failed, passed


@dataclass(frozen=True)
class Field:
    bit_offset: int
    size: int | None = None  # bytes; None when unknown
    bitfield_size: int = 0  # 0: not a bitfield
    type_key: str | None = None  # key of its struct/union type in the layout map, if any


@dataclass(frozen=True)
class StructLayout:
    name: str
    size: int
    members: dict[str, Field] = field(default_factory=dict)
    kind: str = "struct"


Layouts = Mapping[str, StructLayout]


def resolve(layouts: Layouts, struct: str, path: str) -> Field | None:
    """The field at a dotted path, its offset counted from the start of ``struct``."""
    layout = layouts.get(struct)
    offset = 0
    found: Field | None = None
    for part in path.split("."):
        if layout is None:
            return None
        found = layout.members.get(part)
        if found is None:
            return None
        offset += found.bit_offset
        layout = layouts.get(found.type_key) if found.type_key else None
    if found is None:
        return None
    return Field(offset, found.size, found.bitfield_size, found.type_key)


def _compare_struct(name: str, want: StructLayout, btf: Layouts) -> list[str]:
    have = btf.get(name)
    if have is None:
        return [f"struct {name}: not in BTF"]
    out = []
    if have.size != want.size:
        out.append(f"struct {name}: size {want.size} from the headers, {have.size} in BTF")
    for path, probe_field in want.members.items():
        got = resolve(btf, name, path)
        if got is None:
            out.append(f"{name}.{path}: not in BTF")
        elif got.bitfield_size:
            out.append(f"{name}.{path}: a {got.bitfield_size}-bit bitfield in BTF")
        elif got.bit_offset != probe_field.bit_offset:
            out.append(f"{name}.{path}: offset {probe_field.bit_offset // 8} from the headers, "
                       f"{got.bit_offset / 8:g} in BTF")
        elif None not in (probe_field.size, got.size) and probe_field.size != got.size:
            out.append(f"{name}.{path}: size {probe_field.size} from the headers, "
                       f"{got.size} in BTF")
    return out


def compare_layouts(probe: Layouts, btf: Layouts) -> CheckResult:
    """Every struct size and requested field of the probe must agree with BTF."""
    name = "layouts"
    if not probe:
        return failed(name, "the probe reported no structures")
    details = [d for s in sorted(probe) for d in _compare_struct(s, probe[s], btf)]
    fields = sum(len(p.members) for p in probe.values())
    if details:
        noun = "disagreement" if len(details) == 1 else "disagreements"
        return failed(name, f"{len(details)} {noun} over {len(probe)} structs, "
                      f"{fields} fields", details)
    return passed(name, f"{len(probe)} structs, {fields} fields agree with BTF")
