"""The installed package is the tool: a wheel carries every module, the VM suite and the data
kheaders-ci, kheaders-compare, kheaders-ci-merge and kheaders-suite need."""

from __future__ import annotations

import tomllib
from typing import Any

from kheaders_suite.catalog.paths import REPO_ROOT

SRC = REPO_ROOT / "src"


def setuptools_config() -> dict[str, Any]:
    config: dict[str, Any] = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    return dict(config["tool"]["setuptools"])


def test_every_package_is_listed_for_the_wheel() -> None:
    """The packages are listed (a package mapped from outside src/ cannot be found), so a
    new one of src/ must be added to pyproject.toml by hand, or a wheel would lack it."""
    found = {".".join(p.parent.relative_to(SRC).parts) for p in SRC.rglob("__init__.py")}
    assert set(setuptools_config()["packages"]) == found | {"kheaders_suite.vmtests"}


def test_the_vm_suite_is_mapped_from_the_checkouts_vmtests() -> None:
    assert setuptools_config()["package-dir"] == {"": "src", "kheaders_suite.vmtests": "vmtests"}
    data = setuptools_config()["package-data"]
    for pattern in data["kheaders_suite.vmtests"]:
        assert list((REPO_ROOT / "vmtests").glob(pattern)), pattern
    for pattern in data["kheaders_suite"]:
        assert list((SRC / "kheaders_suite").glob(pattern)), pattern
