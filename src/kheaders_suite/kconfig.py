"""Step 2: the config. Merge fragments with merge_config.sh, resolve, verify every symbol.

Like the KUnit runner, after olddefconfig every requested symbol is compared with the resolved
.config and every one that did not stick is named.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kheaders_suite.source import KernelVersion

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


def parse_config(text: str) -> dict[str, str]:
    """Symbol -> value ('y', 'm', '"str"', '17'); '# X is not set' gives 'n'."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if m := _SET.match(line):
            values[m.group(1)] = m.group(2)
        elif m := _UNSET.match(line):
            values[m.group(1)] = "n"
    return values


def merge_fragments(texts: Iterable[str]) -> dict[str, str]:
    """What the fragments ask for, later fragments overriding earlier ones."""
    wanted: dict[str, str] = {}
    for text in texts:
        wanted.update(parse_config(text))
    return wanted


@dataclass(frozen=True)
class Unmet:
    symbol: str
    wanted: str
    got: str  # 'n' when absent from .config (not set or not visible)

    def __str__(self) -> str:
        return f"{self.symbol}: wanted {self.wanted}, got {self.got}"


def unmet(wanted: Mapping[str, str], resolved: Mapping[str, str]) -> list[Unmet]:
    """Every requested symbol whose resolved value differs (absent counts as 'n')."""
    misses = []
    for symbol, value in sorted(wanted.items()):
        got = resolved.get(symbol, "n")
        if got != value:
            misses.append(Unmet(symbol, value, got))
    return misses


def make_args(src: Path, obj: Path, make_arch: str, cross: str, cc: str) -> tuple[str, ...]:
    """The make prefix shared by every step: out of tree, arch, compiler (ccache-wrapped)."""
    args = ("make", "-C", str(src), f"O={obj}", f"ARCH={make_arch}", f"CC={cc}")
    return (*args, f"CROSS_COMPILE={cross}") if cross else args


def merge_config_cmd(src: Path, obj: Path, fragments: Iterable[Path]) -> tuple[str, ...]:
    """merge_config.sh over allnoconfig (-n), as tinyconfig starts from allnoconfig.

    ARCH, CROSS_COMPILE and CC reach the make it runs through the environment.
    """
    return (str(src / "scripts/kconfig/merge_config.sh"), "-n", "-O", str(obj),
            *(str(f) for f in fragments))


def tiny_fragments(src: Path, srcarch: str) -> list[Path]:
    """The fragments `make tinyconfig` applies, so our base starts from tinyconfig."""
    candidates = [
        src / "kernel/configs/tiny-base.config",
        src / "kernel/configs/tiny.config",
        src / "arch" / srcarch / "configs/tiny.config",
    ]
    return [c for c in candidates if c.exists()]


# A fragment line "# when >=7.3" (or <, <=, >, ==; on major.minor) applies to the next symbol
# line only: Kconfig symbols are renamed and removed between the kernels the suite builds, and
# a fragment asks for each under the name its version knows. merge_config.sh reads the
# filtered copy.
_WHEN = re.compile(r"^#\s*when\s*(<=|>=|==|<|>)\s*(\d+\.\d+)\s*$")


def _holds(op: str, version: KernelVersion, bound: KernelVersion) -> bool:
    have, want = (version.major, version.minor), (bound.major, bound.minor)
    return {"<": have < want, "<=": have <= want, ">": have > want,
            ">=": have >= want, "==": have == want}[op]


def for_version(text: str, version: KernelVersion) -> str:
    """The fragment as ``version`` needs it: symbol lines whose "# when" fails dropped."""
    out: list[str] = []
    condition: tuple[str, KernelVersion] | None = None
    for line in text.splitlines():
        if m := _WHEN.match(line.strip()):
            condition = (m.group(1), KernelVersion.parse(m.group(2)))
            continue
        is_symbol = bool(_SET.match(line.strip()) or _UNSET.match(line.strip()))
        if is_symbol and condition is not None:
            keep = _holds(condition[0], version, condition[1])
            condition = None
            if not keep:
                continue
        out.append(line)
    return "\n".join(out) + "\n"


def write_for_version(fragments: Iterable[Path], version: KernelVersion, dest: Path) -> list[Path]:
    """Filtered copies of ``fragments`` under ``dest`` (numbered: merge order is kept)."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for i, frag in enumerate(fragments):
        path = dest / f"{i:02d}-{frag.name}"
        path.write_text(for_version(frag.read_text(), version))
        written.append(path)
    return written
