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

from collections.abc import Mapping, Sequence
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
# (struct, member paths) the probe was asked to measure, as probe.probe_source takes them
Requested = Sequence[tuple[str, Sequence[str]]]


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


def _unmeasured(probe: Layouts, requested: Requested) -> list[str]:
    """Every requested struct and member the probe's output does not carry."""
    out = []
    for struct, members in requested:
        got = probe.get(struct)
        if got is None:
            out.append(f"struct {struct}: asked for, not in the probe's output")
            continue
        out += [f"{struct}.{m}: asked for, not in the probe's output"
                for m in members if m not in got.members]
    return out


def compare_layouts(probe: Layouts, btf: Layouts, requested: Requested) -> CheckResult:
    """The probe measured every struct and member in ``requested`` (what its source asked
    for: probe.probe_source's ``structs``), and every one agrees with BTF. A probe that
    parsed nothing, or only part, fails here instead of agreeing vacuously."""
    name = "layouts"
    missing = _unmeasured(probe, requested)
    if not probe:
        return failed(name, "the probe reported no structures", missing)
    if missing:
        wanted = sum(1 + len(m) for _, m in requested)
        got = sum(1 + sum(m in probe[s].members for m in ms) for s, ms in requested if s in probe)
        return failed(name, f"the probe measured {got} of the {wanted} structs and fields "
                      "asked for", missing)
    details = [d for s in sorted(probe) for d in _compare_struct(s, probe[s], btf)]
    fields = sum(len(p.members) for p in probe.values())
    if details:
        noun = "disagreement" if len(details) == 1 else "disagreements"
        return failed(name, f"{len(details)} {noun} over {len(probe)} structs, "
                      f"{fields} fields", details)
    return passed(name, f"{len(probe)} structs, {fields} fields agree with BTF")
