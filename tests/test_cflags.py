"""The kernel's C dialect, read from the archive's autoconf.h: 7.x headers need
-fms-extensions (linux/fs.h embeds a tagged struct anonymously)."""

import subprocess
from pathlib import Path

import pytest

from kheaders_suite.verify import cflags

MS = '#define CONFIG_CC_MS_EXTENSIONS "-fms-extensions"\n'
# What 7.3's linux/fs.h does, in small: a tagged struct embedded anonymously, and a size check.
HEADER = """struct head { long a; long b; };
struct filename { struct head; char iname[48]; };
_Static_assert(sizeof(struct filename) % 64 == 0, "embedded anonymously");
"""


def test_flags_from_autoconf() -> None:
    assert cflags.dialect("#define CONFIG_X 1\n" + MS) == ("-fms-extensions",)
    assert cflags.dialect(MS, clang=True) == ("-fms-extensions", "-Wno-microsoft-anon-tag")
    assert cflags.dialect("#define CONFIG_X 1\n") == ()
    assert cflags.dialect('#define CONFIG_CC_MS_EXTENSIONS ""\n') == ()


def test_of_tree_reads_generated_autoconf(tmp_path: Path) -> None:
    assert cflags.of_tree(tmp_path) == ()
    (tmp_path / "include/generated").mkdir(parents=True)
    (tmp_path / "include/generated/autoconf.h").write_text(MS)
    assert cflags.of_tree(tmp_path) == ("-fms-extensions",)


@pytest.mark.parametrize(("flags", "ok"), [((), False), (("-fms-extensions",), True)])
def test_the_dialect_is_what_makes_such_a_header_compile(
        tmp_path: Path, flags: tuple[str, ...], ok: bool) -> None:
    (tmp_path / "h.c").write_text(HEADER)
    done = subprocess.run(("gcc", *flags, "-fsyntax-only", str(tmp_path / "h.c")),
                          capture_output=True, text=True, check=False)
    assert (done.returncode == 0) == ok, done.stderr


@pytest.mark.parametrize("hostile", [
    "-wrapper /bin/sh,-c,touch${IFS}MARKER",
    "-fms-extensions -wrapper /bin/sh,-c,touch${IFS}MARKER",
    "-fplugin=MARKER.so",
])
def test_a_series_dialect_string_runs_nothing_on_the_host(tmp_path: Path, hostile: str) -> None:
    """The string is the series' (its Kconfig): only dialect flags reach the host's gcc."""
    marker = tmp_path / "marker"
    autoconf = f'#define CONFIG_CC_MS_EXTENSIONS "{hostile.replace("MARKER", str(marker))}"\n'
    flags = cflags.dialect(autoconf)
    assert flags in ((), ("-fms-extensions",))
    (tmp_path / "h.c").write_text("int x;\n")
    subprocess.run(("gcc", *flags, "-fsyntax-only", str(tmp_path / "h.c")),
                   capture_output=True, text=True, check=False)
    assert not marker.exists()
