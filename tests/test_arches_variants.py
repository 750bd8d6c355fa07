import pytest

from kheaders_suite.catalog import arches, variants
from kheaders_suite.errors import UserError


def test_unknown_arch_lists_the_valid_ones() -> None:
    want = r"--arch 'riscv64': unknown architecture; choose from x86_64, arm64"
    with pytest.raises(UserError, match=want):
        arches.get("riscv64")


def test_unknown_variant_lists_the_valid_ones() -> None:
    with pytest.raises(UserError, match="choose from sysfs, module, proc, debugfs"):
        variants.get("configfs")


def test_each_variant_has_its_own_place_except_module_shares_sysfs() -> None:
    assert variants.get("module").archive_path == variants.get("sysfs").archive_path
    assert len(variants.archive_paths()) == 3


def test_variant_names_do_not_contain_each_other() -> None:
    """-k selects by substring: no variant name may be part of another or of an arch."""
    names = list(variants.names()) + list(arches.names())
    for a in names:
        for b in names:
            assert a == b or a not in b


def test_expand_fills_build_facts() -> None:
    step = variants.get("module").setup[0]
    got = variants.expand(step, {"modroot": "/b/modroot", "release": "6.12.117"})
    assert got.argv == ("modprobe", "-d", "/b/modroot", "kheaders")
