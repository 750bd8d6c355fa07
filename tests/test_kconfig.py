from pathlib import Path

import pytest

from kheaders_suite.build import kconfig
from kheaders_suite.catalog.paths import CONFIGS_DIR
from kheaders_suite.source.tree import KernelVersion

RESOLVED = """\
CONFIG_IKHEADERS=m
# CONFIG_DEBUG_FS is not set
CONFIG_LOCALVERSION="-x"
CONFIG_LOG_BUF_SHIFT=17
"""


def test_parse_config_reads_values_and_unset() -> None:
    values = kconfig.parse_config(RESOLVED)
    assert values == {"CONFIG_IKHEADERS": "m", "CONFIG_DEBUG_FS": "n",
                      "CONFIG_LOCALVERSION": '"-x"', "CONFIG_LOG_BUF_SHIFT": "17"}


def test_later_fragments_override_earlier() -> None:
    merged = kconfig.merge_fragments(["CONFIG_IKHEADERS=y\nCONFIG_A=y\n", "CONFIG_IKHEADERS=m\n"])
    assert merged == {"CONFIG_IKHEADERS": "m", "CONFIG_A": "y"}


def test_unmet_names_every_symbol_that_did_not_stick() -> None:
    wanted = {"CONFIG_IKHEADERS": "y", "CONFIG_DEBUG_FS": "y", "CONFIG_GONE": "y",
              "CONFIG_OFF": "n", "CONFIG_LOG_BUF_SHIFT": "17"}
    misses = kconfig.unmet(wanted, kconfig.parse_config(RESOLVED))
    assert [str(m) for m in misses] == [
        "CONFIG_DEBUG_FS: wanted y, got n",
        "CONFIG_GONE: wanted y, got n",
        "CONFIG_IKHEADERS: wanted y, got m",
    ]


def test_make_args_out_of_tree_with_cross_compiler() -> None:
    args = kconfig.make_args(Path("/s"), Path("/o"), "arm64", "aarch64-linux-gnu-",
                             "ccache aarch64-linux-gnu-gcc")
    assert args == ("make", "-C", "/s", "O=/o", "ARCH=arm64", "CC=ccache aarch64-linux-gnu-gcc",
                    "CROSS_COMPILE=aarch64-linux-gnu-")


def test_merge_config_starts_from_allnoconfig() -> None:
    cmd = kconfig.merge_config_cmd(Path("/s"), Path("/o"), [Path("/a.config"), Path("/b.config")])
    assert cmd == ("/s/scripts/kconfig/merge_config.sh", "-n", "-O", "/o", "/a.config",
                   "/b.config")


def test_tiny_fragments_only_those_present(tmp_path: Path) -> None:
    (tmp_path / "kernel/configs").mkdir(parents=True)
    (tmp_path / "kernel/configs/tiny.config").write_text("")
    assert kconfig.tiny_fragments(tmp_path, "x86") == [tmp_path / "kernel/configs/tiny.config"]


def test_shipped_fragments_parse_and_request_ikheaders() -> None:
    for name in ("sysfs", "proc", "debugfs"):
        text = (CONFIGS_DIR / f"variant-{name}.config").read_text()
        assert kconfig.parse_config(text) == {"CONFIG_IKHEADERS": "y"}
    module = (CONFIGS_DIR / "variant-module.config").read_text()
    assert kconfig.parse_config(module) == {"CONFIG_IKHEADERS": "m"}
    base = kconfig.parse_config((CONFIGS_DIR / "base.config").read_text())
    assert base["CONFIG_DEBUG_INFO_BTF"] == "y"
    assert base["CONFIG_MODULES"] == "y"


FRAGMENT = """# 7.3 folded PROC_SYSCTL into SYSCTL.
CONFIG_PROC_FS=y
# when <7.3
CONFIG_PROC_SYSCTL=y
# when >=7.3
CONFIG_SYSCTL=y
# when ==6.1
# CONFIG_FOO is not set
"""


@pytest.mark.parametrize(("version", "want"), [
    (KernelVersion(6, 1, 192), {"CONFIG_PROC_FS": "y", "CONFIG_PROC_SYSCTL": "y",
                                "CONFIG_FOO": "n"}),
    (KernelVersion(7, 2, 13), {"CONFIG_PROC_FS": "y", "CONFIG_PROC_SYSCTL": "y"}),
    (KernelVersion(7, 3, 4), {"CONFIG_PROC_FS": "y", "CONFIG_SYSCTL": "y"}),
])
def test_fragment_lines_follow_the_kernel_version(version: KernelVersion,
                                                  want: dict[str, str]) -> None:
    assert kconfig.parse_config(kconfig.for_version(FRAGMENT, version)) == want


def test_the_base_fragment_asks_7_3_for_sysctl_by_its_new_name() -> None:
    text = (CONFIGS_DIR / "base.config").read_text()
    new = kconfig.parse_config(kconfig.for_version(text, KernelVersion(7, 3)))
    old = kconfig.parse_config(kconfig.for_version(text, KernelVersion(6, 12)))
    assert "CONFIG_PROC_SYSCTL" not in new
    assert new["CONFIG_SYSCTL"] == "y"
    assert old["CONFIG_PROC_SYSCTL"] == "y"


def test_filtered_copies_keep_the_merge_order(tmp_path: Path) -> None:
    frags = []
    for name in ("base.config", "arch.config", "variant.config"):
        (tmp_path / name).write_text(FRAGMENT)
        frags.append(tmp_path / name)
    out = kconfig.write_for_version(frags, KernelVersion(7, 3), tmp_path / "out")
    assert [p.name for p in out] == ["00-base.config", "01-arch.config", "02-variant.config"]
