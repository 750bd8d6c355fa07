import os
from pathlib import Path

import pytest

from kheaders_suite.errors import UserError
from kheaders_suite.source import tree as source


def fake_kernel(root: Path, version: str = "6.1.192") -> Path:
    major, minor, sub = version.split(".")
    for rel in ("Kconfig", "kernel/gen_kheaders.sh", "scripts/kconfig/merge_config.sh"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("")
    (root / "Makefile").write_text(
        f"VERSION = {major}\nPATCHLEVEL = {minor}\nSUBLEVEL = {sub}\nEXTRAVERSION =\n")
    return root


def test_version_from_makefile(tmp_path: Path) -> None:
    assert source.read_version(fake_kernel(tmp_path)) == source.KernelVersion(6, 1, 192)
    assert str(source.KernelVersion(6, 12, 117)) == "6.12.117"


def test_missing_path_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"^--kernel-src .*/nope: no such directory"):
        source.user_source(tmp_path / "nope", tmp_path / "cache")


def test_not_a_kernel_tree_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text("all:\n")
    with pytest.raises(UserError) as err:
        source.user_source(tmp_path, tmp_path / "cache")
    assert "missing Kconfig" in str(err.value)
    assert "\n" not in str(err.value)


def test_configured_in_place_tree_is_refused(tmp_path: Path) -> None:
    (fake_kernel(tmp_path) / ".config").write_text("CONFIG_X=y\n")
    with pytest.raises(UserError, match="make mrproper"):
        source.user_source(tmp_path, tmp_path / "cache")


def test_identity_is_the_content_by_the_trees_kind(tmp_path: Path) -> None:
    """tests/test_identity.py has the rest: a .git makes it a git tree, read by git."""
    tree = fake_kernel(tmp_path / "linux")
    first = source.user_source(tree, tmp_path / "cache").identity
    assert first.startswith("tree:1:")
    (tree / "Kconfig").write_text("config FOO\n")
    assert source.user_source(tree, tmp_path / "cache").identity != first


def test_package_name_must_be_a_kernel_source_package() -> None:
    with pytest.raises(UserError, match=r"^--kernel-package 'linux-headers-6\.1': not a Debian "
                                        r"kernel source package; pass linux-source-X\.Y"):
        source.embedded_source(Path(os.devnull), "linux-headers-6.1")


@pytest.mark.parametrize("version", ["5.15.170", "8.0.1", "4.19.0"])
def test_tree_outside_the_supported_range_is_one_line_naming_it(
        tmp_path: Path, version: str) -> None:
    with pytest.raises(UserError) as err:
        source.user_source(fake_kernel(tmp_path / "linux", version), tmp_path / "cache")
    assert f"kernel {version} is outside the supported range 6.1 to 7.x" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("version", ["6.1.0", "6.12.117", "7.3.4", "7.99.0"])
def test_supported_range_bounds(tmp_path: Path, version: str) -> None:
    tree = fake_kernel(tmp_path / "linux", version)
    assert str(source.user_source(tree, tmp_path / "cache").version) == version


def test_a_path_with_spaces_and_quotes_is_a_tree_like_any_other(tmp_path: Path) -> None:
    tree = fake_kernel(tmp_path / "my \"kernels\" dir" / "linux 7.3")
    assert source.user_source(tree, tmp_path / "cache").path == tree.resolve()
