import os
from pathlib import Path

import pytest

from kheaders_suite import source
from kheaders_suite.errors import UserError


def fake_kernel(root: Path) -> Path:
    for rel in ("Kconfig", "kernel/gen_kheaders.sh", "scripts/kconfig/merge_config.sh"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("")
    (root / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 192\nEXTRAVERSION =\n")
    return root


def test_version_from_makefile(tmp_path: Path) -> None:
    assert source.read_version(fake_kernel(tmp_path)) == source.KernelVersion(6, 1, 192)
    assert str(source.KernelVersion(6, 12, 117)) == "6.12.117"


def test_missing_path_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"^--kernel-src .*/nope: no such directory"):
        source.user_source(tmp_path / "nope")


def test_not_a_kernel_tree_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text("all:\n")
    with pytest.raises(UserError) as err:
        source.user_source(tmp_path)
    assert "missing Kconfig" in str(err.value)
    assert "\n" not in str(err.value)


def test_configured_in_place_tree_is_refused(tmp_path: Path) -> None:
    (fake_kernel(tmp_path) / ".config").write_text("CONFIG_X=y\n")
    with pytest.raises(UserError, match="make mrproper"):
        source.user_source(tmp_path)


def test_identity_changes_on_edit_but_ignores_git(tmp_path: Path) -> None:
    tree = fake_kernel(tmp_path)
    first = source.user_source(tree).identity
    (tree / ".git").mkdir()
    (tree / ".git/index").write_text("x")
    assert source.user_source(tree).identity == first
    (tree / "Kconfig").write_text("config FOO\n")
    assert source.user_source(tree).identity != first


def test_embedded_source_requires_the_package() -> None:
    with pytest.raises(UserError, match=r"linux-source-0\.0 is not installed; run ci/setup"):
        source.embedded_source(Path(os.devnull), "linux-source-0.0")
