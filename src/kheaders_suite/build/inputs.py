"""What a build is made of: its config fragments, the key over the inputs that decide its
output, and the check that the resolved .config has what the fragments asked for.

kernel.key_inputs names the inputs (harness version, source identity, fragments, patches,
compiler, timestamp); build_key hashes them, so a second run with the same key does not build.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping
from pathlib import Path

from kheaders_suite.build import kconfig
from kheaders_suite.catalog.arches.arch import Arch
from kheaders_suite.catalog.flavors import FLAVORS
from kheaders_suite.catalog.paths import CONFIGS_DIR
from kheaders_suite.catalog.variants import Variant
from kheaders_suite.errors import ConfigMismatch, SuiteError, UserError
from kheaders_suite.host import tools

BASE_FRAGMENT = "base.config"


def fragments_for(arch: Arch, variant: Variant, extra: tuple[Path, ...] = (),
                  flavor: str = "plain") -> list[Path]:
    return [CONFIGS_DIR / BASE_FRAGMENT, CONFIGS_DIR / arch.fragment,
            CONFIGS_DIR / variant.fragment, *(CONFIGS_DIR / f for f in FLAVORS[flavor]),
            *extra]


def build_key(parts: Mapping[str, str]) -> str:
    """Stable hash of the named inputs (pure: same inputs, same key)."""
    blob = json.dumps(dict(sorted(parts.items())), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def compiler_version(arch: Arch) -> str:
    """The first line of the build compiler's --version (part of the key). Settings checked
    it is there at configure time; without it (bench.py builds directly) the same message."""
    cc = tools.compiler(arch)
    try:
        out = subprocess.run((cc.name, "--version"), capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise UserError(tools.missing_message([cc])) from None
    return out.stdout.splitlines()[0] if out.stdout else cc.name


def check_config(src: Path, obj: Path, frags: list[Path], user: tuple[Path, ...]) -> None:
    """Every requested symbol as asked in the resolved .config. ``frags`` are the filtered
    copies, the last ones those of the user's ``user`` fragments."""
    texts = [f.read_text() for f in frags]
    misses = kconfig.unmet(kconfig.merge_fragments(texts),
                           kconfig.parse_config((obj / ".config").read_text()))
    if misses:
        names = [str(f) for f in frags[:len(frags) - len(user)]] + [str(u) for u in user]
        owners = kconfig.requested_by(zip(names, texts, strict=True))
        raise config_error(kconfig.explain(misses, kconfig.defined_symbols(src)), owners,
                           {str(u) for u in user})


def config_error(misses: list[kconfig.Unmet], owners: Mapping[str, str],
                 user: set[str]) -> SuiteError:
    """A symbol of the user's --config-fragment that did not stick is bad input, named with
    its file; one of the suite's own fragments is the suite's fault (ConfigMismatch)."""
    text = (f"{len(misses)} requested symbols did not stick after olddefconfig: "
            + "; ".join(str(m) for m in misses))
    theirs = sorted({owners[m.symbol] for m in misses} & user)
    if theirs:
        return UserError(f"--config-fragment {', '.join(theirs)}: {text}; fix the fragment "
                         "(a misspelt symbol, or one whose dependencies are off)")
    return ConfigMismatch(text)
