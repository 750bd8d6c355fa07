"""The debug flavor's checkers, caught for real (issue 10).

A module with one real bug per load (vmtests/bugs/kheaders_bugs.c: a lock-order inversion, a
sleep under a spinlock, an array index past its bounds, a read of freed memory) is built with
`make M=` against the run's own object tree. An inner pytest run with this plugin boots the
target's debug kernel once and loads it once per bug, each load in its own test: the
kernel's own report (lockdep, the atomic-sleep check, UBSAN, KASAN) must FAIL that test with
the report's text, and a load with no bug must pass. Without the flavor's options the same
loads print nothing and every inner test passes, so this test fails.

The order matters and is the file's: lockdep switches itself off after its first report, and
a KASAN report taints the kernel, which switches lockdep off too, so KASAN goes last. KASAN
goes twice: by default it reports only the first bug of a boot, and a later test's would pass
unseen; a KASAN kernel boots with kasan_multi_shot (boot.kernel_args_for).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from kheaders_suite.build.kernel import build_module
from kheaders_suite.catalog import arches, variants
from kheaders_suite.plugin.context import progress
from kheaders_suite.plugin.options import Settings, build_options
from kheaders_suite.records import Target
from kheaders_suite.source.tree import KernelSource

from .test_faults import inner_argv, memory_for, outcomes, qemus_with

BUGS = Path(__file__).parent / "bugs"
# (inner test, bug=, the first line of the kernel's report as its checker words it). KASAN
# twice: the second bug of a boot is reported too (kasan_multi_shot, boot.kernel_args_for).
CASES = (
    ("lockdep", "lockdep", "WARNING: possible circular locking dependency detected"),
    ("atomic_sleep", "atomic-sleep", "BUG: sleeping function called from invalid context"),
    ("ubsan", "ubsan", "UBSAN: array-index-out-of-bounds"),
    ("kasan", "kasan", "BUG: KASAN: slab-use-after-free"),
    ("kasan_again", "kasan", "BUG: KASAN: slab-use-after-free"),
)

INNER = '''
import os
from pathlib import Path
import pytest

MODULE = Path(os.environ["KHEADERS_BUGS_KO"]).read_bytes()

def load(guest, bug):
    guest.write_bytes("/tmp/kheaders_bugs.ko", MODULE)
    # Its init always fails (EAGAIN): the exit status is not the check, the kernel log is.
    guest.run(("insmod", "/tmp/kheaders_bugs.ko", f"bug={bug}"))

@pytest.mark.variants("sysfs")
def test_none(guest):
    load(guest, "none")
''' + "".join(f'''
@pytest.mark.variants("sysfs")
def test_{name}(guest):
    load(guest, "{bug}")
''' for name, bug, _ in CASES)


def kernel_failures(got: dict[str, tuple[str, str]], cases: tuple[tuple[str, str, str], ...],
                    log: str) -> list[tuple[str, str]]:
    """(inner test, its failure text) of each case, each checked to be the kernel's FAIL
    quoting the case's report."""
    found = []
    for case, _, report in cases:
        name = f"test_{case}"
        kind, text = got[name]
        assert kind == "failure", f"{name}: {kind}, not the kernel's FAIL\n{log}"
        assert report in text, f"{name}: no {report!r} in the report\n{log}"
        found.append((name, text))
    return found


@pytest.fixture
def any_flavor_bugs_module(request: pytest.FixtureRequest, target: Target,
                           suite_settings: Settings, pytestconfig: pytest.Config,
                           tmp_path: Path) -> Path:
    """kheaders_bugs.ko built with make M= against the target's object tree."""
    # make M= needs the whole tree built (Module.symvers).
    request.getfixturevalue("kernel_build")
    kernel_source: KernelSource = request.getfixturevalue("kernel_source")
    moddir = tmp_path / "bugs"
    shutil.copytree(BUGS, moddir)
    built = build_module(kernel_source, arches.get(target.arch), variants.get(target.variant),
                         build_options(suite_settings), lambda m: progress(pytestconfig, m),
                         moddir)
    assert [k.name for k in built] == ["kheaders_bugs.ko"], f"built {built}"
    return built[0]


def run_with_module(tmp_path: Path, body: str, target: Target, settings: Settings,
                    memory: str, module: Path) -> tuple[dict[str, tuple[str, str]], str, str]:
    """An inner run of ``body`` with the module at $KHEADERS_BUGS_KO: (outcomes by test,
    a log to show on failure, its stderr)."""
    argv = inner_argv(tmp_path, body, target, settings, memory, "-n", "0",
                      "--junitxml", "junit.xml")
    start = time.monotonic()
    out = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=3600,
                         env={**os.environ, "KHEADERS_BUGS_KO": str(module)})
    log = (f"inner run exit {out.returncode} after {time.monotonic() - start:.0f}s\n"
           f"{out.stdout[-6000:]}\n{out.stderr[-3000:]}")
    return outcomes(tmp_path / "junit.xml"), log, out.stderr


@pytest.fixture
def bugs_module(request: pytest.FixtureRequest, suite_settings: Settings) -> Path:
    if suite_settings.flavor != "debug":
        pytest.skip("the kernel's checkers are the debug flavor's: run with --flavor debug")
    # Only now: a plain run skips without building anything.
    module: Path = request.getfixturevalue("any_flavor_bugs_module")
    return module


@pytest.mark.variants("sysfs")
def test_real_kernel_reports_fail_the_test_that_caused_them(
        target: Target, suite_settings: Settings, bugs_module: Path, tmp_path: Path) -> None:
    memory = memory_for(target.arch, base=1940)
    got, log, stderr = run_with_module(tmp_path, INNER, target, suite_settings, memory,
                                       bugs_module)
    assert got["test_none"] == ("passed", ""), log
    for name, text in kernel_failures(got, CASES, log):
        assert f"kernel reported during {name}" in text, log
    assert stderr.count(": booting ") == 1, log
    assert qemus_with(memory) == [], "QEMU of the inner run still running"
