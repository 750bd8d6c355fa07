from pathlib import Path

from kheaders_suite import kconfig
from kheaders_suite.paths import CONFIGS_DIR

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
