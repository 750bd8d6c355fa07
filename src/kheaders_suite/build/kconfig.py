"""Step 2: the config. Merge fragments with merge_config.sh, resolve, verify every symbol.

Like the KUnit runner, after olddefconfig every requested symbol is compared with the resolved
.config and every one that did not stick is named.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from kheaders_suite.errors import UserError
from kheaders_suite.source.tree import KernelVersion

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")
# What Kconfig's conf_read_simple() takes as a value: y/m/n (lower case), a quoted string with
# \" and \\ escapes, a decimal or hex number. Anything else it warns about and drops, and
# merge_config.sh passes it on without a word, so a typo would silently ask for nothing.
_VALUE = re.compile(r'^(?:[ymn]|"(?:[^"\\]|\\.)*"|-?[0-9]+|(?:0[xX])?[0-9a-fA-F]+)$')
# A line that means to be a "# when" condition (a comment that merely starts with "when"
# does not have the operator).
_WHEN_LIKE = re.compile(r"^#\s*when\s*[<>=]")


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


def syntax_error(line: str) -> str | None:
    """Why ``line`` of a fragment is not one, or None for a symbol line, comment or blank."""
    text = line.rstrip()
    if _WHEN_LIKE.match(text) and not _WHEN.match(text):
        return "is not a condition '# when <op> X.Y' (<op>: <, <=, ==, >= or >)"
    if not text or text.startswith("#"):
        return None
    m = _SET.match(text)
    if m is None:
        return "is not CONFIG_NAME=value, '# CONFIG_NAME is not set', a comment or blank"
    if not _VALUE.match(m.group(2)):
        return f"has the value {m.group(2)!r}: not y, m, n, a \"quoted string\" or a number"
    return None


def check_syntax(path: Path) -> None:
    """UserError naming ``path``:line for the first line Kconfig would not read as meant."""
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        why = syntax_error(line)
        if why is not None:
            raise UserError(f"{path}:{number}: {line.strip()!r} {why}; fix the line")


@dataclass(frozen=True)
class Unmet:
    symbol: str
    wanted: str
    got: str  # 'n' when absent from .config (not set or not visible)
    defined: bool = True  # False: no Kconfig file of the tree declares the symbol

    def __str__(self) -> str:
        if not self.defined:
            return f"{self.symbol}: wanted {self.wanted}, but no Kconfig in the tree defines it"
        return f"{self.symbol}: wanted {self.wanted}, got {self.got}"


def unmet(wanted: Mapping[str, str], resolved: Mapping[str, str]) -> list[Unmet]:
    """Every requested symbol whose resolved value differs (absent counts as 'n')."""
    misses = []
    for symbol, value in sorted(wanted.items()):
        got = resolved.get(symbol, "n")
        if got != value:
            misses.append(Unmet(symbol, value, got))
    return misses


def explain(misses: Iterable[Unmet], defined: set[str]) -> list[Unmet]:
    """``misses`` with each symbol no Kconfig defines marked (a typo, or another version's)."""
    return [replace(m, defined=m.symbol.removeprefix("CONFIG_") in defined) for m in misses]


def requested_by(fragments: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Symbol -> the name of the last of (name, text) ``fragments`` asking for it: the one
    whose value counts."""
    owner: dict[str, str] = {}
    for name, text in fragments:
        owner.update(dict.fromkeys(parse_config(text), name))
    return owner


# "config FOO" and "menuconfig FOO" declare a symbol. Documentation/ holds example Kconfig
# files whose symbols no build knows.
_DECLARE = re.compile(r"^[ \t]*(?:menu)?config[ \t]+([A-Za-z0-9_]+)[ \t]*(?:#.*)?$", re.M)
_NOT_KCONFIG = {".git", "Documentation"}


def defined_symbols(tree: Path) -> set[str]:
    """Every symbol any Kconfig* file of ``tree`` declares, on any arch (without CONFIG_)."""
    found: set[str] = set()
    for root, dirs, files in os.walk(tree):
        dirs[:] = [d for d in dirs if d not in _NOT_KCONFIG]
        for name in files:
            if name.startswith("Kconfig"):
                text = Path(root, name).read_text(errors="replace")
                found.update(_DECLARE.findall(text))
    return found


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


def _lines_for(text: str, version: KernelVersion) -> Iterator[tuple[int, str]]:
    """(line number, line) of the fragment as ``version`` needs it: symbol lines whose
    "# when" fails and the conditions themselves left out."""
    condition: tuple[str, KernelVersion] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if m := _WHEN.match(line.strip()):
            condition = (m.group(1), KernelVersion.parse(m.group(2)))
            continue
        is_symbol = bool(_SET.match(line.strip()) or _UNSET.match(line.strip()))
        if is_symbol and condition is not None:
            keep = _holds(condition[0], version, condition[1])
            condition = None
            if not keep:
                continue
        yield number, line


def for_version(text: str, version: KernelVersion) -> str:
    """The fragment as ``version`` needs it: symbol lines whose "# when" fails dropped."""
    return "\n".join(line for _, line in _lines_for(text, version)) + "\n"


def symbol_lines(text: str, version: KernelVersion) -> list[tuple[int, str]]:
    """(line number, symbol) of every symbol the fragment asks ``version`` for."""
    found = []
    for number, line in _lines_for(text, version):
        if m := _SET.match(line.strip()) or _UNSET.match(line.strip()):
            found.append((number, m.group(1)))
    return found


def check_defined(path: Path, version: KernelVersion, defined: set[str], tree: Path) -> None:
    """UserError naming ``path``:line of the first symbol no Kconfig of ``tree`` declares."""
    for number, symbol in symbol_lines(path.read_text(errors="replace"), version):
        if symbol.removeprefix("CONFIG_") not in defined:
            raise UserError(f"{path}:{number}: {symbol} is not defined by any Kconfig in "
                            f"{tree} (kernel {version}); check its spelling, or remove it")


# merge_config.sh splits its list of fragments at white space ("for ORIG_MERGE_FILE in
# $MERGE_LIST"), so a copy's name keeps only these characters of the original's.
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._+-]")


def write_for_version(fragments: Iterable[Path], version: KernelVersion, dest: Path) -> list[Path]:
    """Filtered copies of ``fragments`` under ``dest`` (numbered: merge order is kept), named
    so that merge_config.sh can take them (a user's "my frag.config" is 03-my_frag.config)."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for i, frag in enumerate(fragments):
        path = dest / f"{i:02d}-{_UNSAFE_NAME.sub('_', frag.name)}"
        path.write_text(for_version(frag.read_text(), version))
        written.append(path)
    return written
