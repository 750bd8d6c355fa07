"""Checks 4 and 5: the generated headers in the archive agree with the build and the guest.

config: include/generated/autoconf.h against .config, symbol by symbol, the way
scripts/kconfig/confdata.c writes it: y -> ``#define CONFIG_X 1``, m -> ``#define
CONFIG_X_MODULE 1``, strings as written in .config (already quoted and escaped), int as is,
hex with a "0x" prefix added when .config lacks it, n / "is not set" -> absent. The archive's
copy went through the comment stripping too, which removes only its header comment. A config
change that did not regenerate the archive (suspected since commit 0e0345b77ac4 made the
include/config stamps non-*.h while autoconf.h stays out of the md5) shows up here.

release: UTS_RELEASE in include/generated/utsrelease.h equals the guest's ``uname -r``.
"""

from __future__ import annotations

import re

from kheaders_suite.verify.archive import ArchiveInput, load
from kheaders_suite.verify.result import CheckResult, failed, passed
from kheaders_suite.verify.strip import strip_comments

AUTOCONF = "include/generated/autoconf.h"
UTSRELEASE = "include/generated/utsrelease.h"
_CONFIG_LINE = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_DEFINE = re.compile(rb"^#define\s+(CONFIG_[A-Za-z0-9_]+)(?:[ \t]+(.*?))?\s*$", re.M)
_UTS_RELEASE = re.compile(rb'^#define\s+UTS_RELEASE\s+"([^"]*)"', re.M)


def autoconf_defines(dot_config_text: str) -> dict[str, str]:
    """The macros autoconf.h must define for this .config, name -> value text."""
    defines: dict[str, str] = {}
    for line in dot_config_text.splitlines():
        match = _CONFIG_LINE.match(line.strip())
        if not match:
            continue  # comments, "# CONFIG_X is not set", blank lines
        name, value = match.groups()
        if value == "y":
            defines[name] = "1"
        elif value == "m":
            defines[f"{name}_MODULE"] = "1"
        elif value == "n":
            continue
        elif value.startswith('"') or re.fullmatch(r"-?\d+", value):
            defines[name] = value
        else:  # hex: confdata.c prints "0x" unless the value already has it
            defines[name] = value if value.lower().startswith("0x") else f"0x{value}"
    return defines


def parse_autoconf(data: bytes) -> dict[str, str]:
    return {m.group(1).decode(): (m.group(2) or b"").decode(errors="replace")
            for m in _DEFINE.finditer(data)}


def _member_bytes(check: str, archive: ArchiveInput, member_name: str) -> bytes | CheckResult:
    """The regular file ``member_name`` of the archive, or the check's failure."""
    parsed = load(check, archive)
    if isinstance(parsed, CheckResult):
        return parsed
    member = parsed.get(member_name)
    if member is None or member.kind != "file":
        return failed(check, f"{member_name} is not in the archive")
    return member.data


def config(archive: ArchiveInput, dot_config_text: str) -> CheckResult:
    """autoconf.h in the archive against the build's .config, naming every symbol that differs."""
    name = "config"
    data = _member_bytes(name, archive, AUTOCONF)
    if isinstance(data, CheckResult):
        return data
    got = parse_autoconf(data)
    # Stripped like the member: a string value holding "/*...*/" loses it on both sides.
    want = {k: strip_comments(v.encode()).decode(errors="replace")
            for k, v in autoconf_defines(dot_config_text).items()}
    details = [f"{k}: .config gives {want[k]}, archive {got[k]}"
               for k in sorted(want.keys() & got.keys()) if want[k] != got[k]]
    details += [f"{k}: .config gives {want[k]}, archive lacks it"
                for k in sorted(want.keys() - got.keys())]
    details += [f"{k}: archive defines {got[k]}, .config does not set it"
                for k in sorted(got.keys() - want.keys())]
    if not {"CONFIG_IKHEADERS", "CONFIG_IKHEADERS_MODULE"} & want.keys():
        details.insert(0, "CONFIG_IKHEADERS is not y or m in .config, yet there is an archive")
    if details:
        return failed(name, f"{AUTOCONF} disagrees with .config on {len(details)} symbols",
                      details)
    return passed(name, f"{len(want)} symbols agree (CONFIG_IKHEADERS"
                  f"{'_MODULE' if 'CONFIG_IKHEADERS_MODULE' in want else ''} among them)")


def uts_release(utsrelease_h: bytes) -> str | None:
    """The release utsrelease.h defines (``#define UTS_RELEASE "6.12.117"``); None if none."""
    match = _UTS_RELEASE.search(utsrelease_h)
    return match.group(1).decode(errors="replace") if match else None


def release(archive: ArchiveInput, uname_r: str) -> CheckResult:
    """UTS_RELEASE in the archive's utsrelease.h equals the running kernel's release."""
    name = "release"
    data = _member_bytes(name, archive, UTSRELEASE)
    if isinstance(data, CheckResult):
        return data
    archived, running = uts_release(data), uname_r.strip()
    if archived is None:
        return failed(name, f"no UTS_RELEASE in {UTSRELEASE}",
                      data.decode(errors="replace").splitlines()[:5])
    if archived != running:
        return failed(name, f"archive is for {archived!r}, guest runs {running!r}")
    return passed(name, f"UTS_RELEASE {archived!r} matches uname -r")
