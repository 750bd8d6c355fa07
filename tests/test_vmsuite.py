"""The VM suite as a program (vmsuite.py), from the checkout: where it is found, the pytest
arguments it is run with, and that those give the ids `pytest vmtests` gives from the
checkout's top, from any working directory. The installed wheel: tests/test_wheel.py."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from kheaders_suite import vmsuite
from kheaders_suite.catalog.paths import REPO_ROOT
from kheaders_suite.errors import InfraError

SRC = REPO_ROOT / "src"


def outer_free_env(**extra: str) -> dict[str, str]:
    """This environment without what the outer pytest run sets for itself (xdist's worker
    name, PYTEST_ADDOPTS, the current test)."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}, **extra}


def collected_ids(argv: tuple[str, ...], cwd: Path) -> list[str]:
    """The node ids ``argv`` --collect-only -q lists (the lines naming a test)."""
    done = subprocess.run((*argv, "--collect-only", "-q", "-p", "no:cacheprovider"),
                          cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
                          env=outer_free_env(PYTHONPATH=str(SRC)))
    assert done.returncode == 0, done.stdout + done.stderr
    return [line for line in done.stdout.splitlines() if "::" in line]


def test_a_checkout_runs_its_own_vmtests() -> None:
    assert vmsuite.suite_dir() == REPO_ROOT / "vmtests"
    assert vmsuite.pytest_args() == (
        "-c", str(SRC / "kheaders_suite" / "vmsuite.ini"), "--rootdir", str(REPO_ROOT),
        "-p", "kheaders_suite.plugin", str(REPO_ROOT / "vmtests"))


def test_the_installed_suite_comes_first(tmp_path: Path) -> None:
    package, checkout = tmp_path / "site" / "kheaders_suite", tmp_path / "checkout"
    for home in (package, checkout):
        (home / "vmtests").mkdir(parents=True)
        (home / "vmtests" / "__init__.py").write_text("")
    assert vmsuite.suite_dir((package, checkout)) == package / "vmtests"
    assert vmsuite.suite_dir((tmp_path, checkout)) == checkout / "vmtests"


def test_no_suite_anywhere_is_an_infrastructure_error(tmp_path: Path) -> None:
    (tmp_path / "vmtests").mkdir()  # not a package: a wheel that left the suite out
    with pytest.raises(InfraError) as err:
        vmsuite.suite_dir((tmp_path, tmp_path / "b"))
    assert str(err.value) == (
        f"no VM suite in {tmp_path}/vmtests or {tmp_path}/b/vmtests: a wheel installs it "
        "inside the package, a checkout has it at its top; reinstall kheaders-suite")


def test_the_command_reads_suite_paths_against_the_suite() -> None:
    suite = Path("/site/kheaders_suite/vmtests")
    config = vmsuite.config_args(suite)
    assert config == ("-c", str(vmsuite.INI), "--rootdir", "/site/kheaders_suite",
                      "-p", "kheaders_suite.plugin")
    assert vmsuite.suite_argv(["-k", "proc", "--arch", "all"], suite) == [
        *config, "-k", "proc", "--arch", "all", str(suite)]
    assert vmsuite.suite_argv(["vmtests/test_archive.py::test_identity[x86_64-sysfs]",
                               "-x"], suite) == [
        *config, "/site/kheaders_suite/vmtests/test_archive.py::test_identity[x86_64-sysfs]",
        "-x"]
    assert vmsuite.suite_argv(["vmtests", "tests/x.py"], suite) == [
        *config, str(suite), "tests/x.py"]


def test_the_ini_holds_pyprojects_settings() -> None:
    """Both the checkout's runs and the installed suite's take the same addopts and markers;
    testpaths (the unit tests) is the checkout's only."""
    ini = configparser.ConfigParser()
    ini.read(vmsuite.INI)
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    wanted = project["tool"]["pytest"]["ini_options"]
    assert set(wanted) - set(ini["pytest"]) == {"testpaths"}
    assert ini["pytest"]["addopts"] == wanted["addopts"]
    assert ini["pytest"]["markers"].strip().splitlines() == wanted["markers"]


def test_the_command_collects_the_checkouts_ids_from_anywhere(tmp_path: Path) -> None:
    checkout = collected_ids((sys.executable, "-m", "pytest", "vmtests", "--arch", "all"),
                             REPO_ROOT)
    anywhere = collected_ids((sys.executable, "-m", "kheaders_suite.vmsuite", "--arch", "all"),
                             tmp_path)
    assert anywhere == checkout
    assert checkout[0].startswith("vmtests/test_")
