"""A run that checked nothing must not be green: every selected test skipped exits 1, not 0
(issue 11: a --kernel-package run whose variants never ran exited 0)."""

import subprocess
import sys
from pathlib import Path

import pytest

SKIPPED = """
import pytest

@pytest.mark.parametrize("i", range(3))
def test_needs_a_kernel(i):
    pytest.skip("variant could not be built")
"""
MIXED = SKIPPED + """
def test_checks_something():
    assert True
"""
XFAILED = """
import pytest

@pytest.mark.xfail(strict=True, reason="known stale archive")
def test_stale():
    assert False
"""


def _run(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_x.py").write_text(body)
    return subprocess.run(
        (sys.executable, "-m", "pytest", "-p", "kheaders_suite.plugin", "-p",
         "no:cacheprovider", "--accel", "tcg", "--cache-dir", str(tmp_path / "cache"),
         "test_x.py"),
        cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_every_test_skipped_is_a_failure_and_says_why(tmp_path: Path) -> None:
    out = _run(tmp_path, SKIPPED)
    assert out.returncode == 1, out.stdout
    assert "every selected test (3) was skipped: nothing was checked" in out.stderr + out.stdout


@pytest.mark.parametrize("body", [MIXED, XFAILED], ids=["one-passed", "strict-xfail"])
def test_a_run_that_checked_something_keeps_its_status(tmp_path: Path, body: str) -> None:
    out = _run(tmp_path, body)
    assert out.returncode == 0, out.stdout
    assert "nothing was checked" not in out.stdout + out.stderr


TARGETED = """
import pytest

@pytest.mark.variants({names})
def test_on_a_target(target):
    pass
"""


def _run_args(tmp_path: Path, body: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_x.py").write_text(body)
    return subprocess.run(
        (sys.executable, "-m", "pytest", "-p", "kheaders_suite.plugin", "-p",
         "no:cacheprovider", "--accel", "tcg", "--arch", "x86_64", "--cache-dir",
         str(tmp_path / "cache"), "--collect-only", "-q", "test_x.py", *args),
        cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_a_misspelt_variant_in_a_marker_is_an_error_naming_the_variants(tmp_path: Path) -> None:
    out = _run_args(tmp_path, TARGETED.format(names='"prco"'))
    assert out.returncode != 0
    assert "@pytest.mark.variants names prco; variants are sysfs" in out.stdout + out.stderr


def test_a_keyword_selecting_nothing_names_the_ids(tmp_path: Path) -> None:
    out = _run_args(tmp_path, TARGETED.format(names='"proc"'), "-k", "prco")
    assert out.returncode == 5
    assert "-k 'prco' selected no test: ids are <arch>-<variant>" in out.stderr
    assert _run_args(tmp_path, TARGETED.format(names='"proc"'), "-k", "proc").returncode == 0
