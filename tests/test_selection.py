"""`pytest vmtests -k proc` must select exactly the proc variant's tests (collection only)."""

import subprocess
import sys
from pathlib import Path

import pytest

from kheaders_suite.catalog import variants
from kheaders_suite.plugin import hooks, options

ROOT = Path(__file__).resolve().parents[1]


def target_of(node_id: str) -> tuple[str, str]:
    """(arch, variant) from an id like test_x[x86_64-proc] or test_y[arm64-proc-content]."""
    params = node_id.rsplit("[", 1)[1].rstrip("]").split("-")
    return params[0], params[1]


def collect(*args: str) -> list[str]:
    out = subprocess.run(
        (sys.executable, "-m", "pytest", "vmtests", "--collect-only", "-q",
         "-p", "no:cacheprovider", "--arch", "x86_64,arm64", *args),
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return [line for line in out.stdout.splitlines() if "::" in line]


@pytest.mark.parametrize("name", variants.names())
def test_k_variant_selects_that_variant_only(name: str) -> None:
    ids = collect("-k", name)
    assert ids, f"-k {name} selected nothing"
    assert all(target_of(i)[1] == name for i in ids), [i for i in ids if target_of(i)[1] != name]


def test_k_arch_and_variant() -> None:
    ids = collect("-k", "arm64 and proc")
    assert ids
    assert {target_of(i) for i in ids} == {("arm64", "proc")}


def test_k_or_selects_both() -> None:
    ids = collect("-k", "proc or module")
    assert {target_of(i)[1] for i in ids} == {"proc", "module"}


def test_each_target_runs_as_one_block() -> None:
    """Collected order groups every target's tests together (one boot per target)."""
    targets = [target_of(i) for i in collect() if "[" in i and i.split("[")[1][0] != "]"
               and i.rsplit("[", 1)[1].split("-")[0] in ("x86_64", "arm64")]
    blocks = [t for n, t in enumerate(targets) if n == 0 or targets[n - 1] != t]
    assert len(blocks) == len(set(targets)), blocks


@pytest.mark.parametrize(("markexpr", "sweep_given", "asked"), [
    ("", False, False),
    ("not timing", False, False),
    ("not timing and not patch_ci", False, False),
    ("timing", False, True),
    ("timing and not slow", False, True),
    ("patch_ci or timing", False, True),
    ("", True, True),
])
def test_timing_runs_only_when_asked(markexpr: str, sweep_given: bool, asked: bool) -> None:
    assert options.timing_asked(markexpr, sweep_given) is asked


def test_k_proc_skips_the_sweeps_without_a_vm() -> None:
    """The developer's `-k proc` is a verdict: the sweeps skip, naming how to ask for them,
    before anything is built or booted (a run of nothing but skips exits 1: nothing checked)."""
    out = subprocess.run(
        (sys.executable, "-m", "pytest", "vmtests", "-q", "-rs", "-p", "no:cacheprovider",
         "--arch", "x86_64", "-k", "x86_64-proc and test_every_compile_succeeded"),
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "1 skipped" in out.stdout, out.stdout
    assert hooks.TIMING_NOT_ASKED in out.stdout.replace("\n", " "), out.stdout
