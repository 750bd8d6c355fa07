"""ci/lib.sh's run(): what decides whether a CI phase passes."""

from __future__ import annotations

import subprocess

import pytest

from kheaders_suite.catalog.paths import REPO_ROOT


def run_in_lib(command: str) -> subprocess.CompletedProcess[str]:
    script = f'. ci/lib.sh; run {command}; echo "after run"'
    return subprocess.run(["bash", "-c", script], cwd=REPO_ROOT, capture_output=True,
                          text=True, check=False, timeout=30)


def test_no_tests_collected_fails_the_phase() -> None:
    out = run_in_lib("sh -c 'exit 5'")
    assert out.returncode == 1
    assert "collected no tests" in out.stderr
    assert "after run" not in out.stdout


@pytest.mark.parametrize("status", [1, 2, 3, 4])
def test_a_failing_command_stops_with_its_status(status: int) -> None:
    out = run_in_lib(f"sh -c 'exit {status}'")
    assert out.returncode == status
    assert "after run" not in out.stdout


def test_a_passing_command_goes_on() -> None:
    out = run_in_lib("true")
    assert out.returncode == 0
    assert out.stdout.splitlines() == ["+ true", "after run"]


@pytest.mark.parametrize("script", ["ci/test", "ci/main", "ci/matrix"])
def test_every_pytest_call_goes_through_run(script: str) -> None:
    lines = (REPO_ROOT / script).read_text().splitlines()
    calls = [line for line in lines if "pytest" in line and not line.lstrip().startswith("#")]
    assert calls, f"{script} runs no pytest"
    assert all(line.lstrip().startswith("run ") for line in calls), calls
