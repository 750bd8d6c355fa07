"""The installed package is the tool: a wheel carries every module, the VM suite and the data
kheaders-ci, kheaders-compare, kheaders-ci-merge and kheaders-suite need.

The checkout's files are copied aside and built into a wheel, installed (with its
dependencies from PyPI) into a fresh venv of Debian's own Python, and run from a directory
outside the checkout with none of it on sys.path: kheaders-ci --dry-run on a throwaway
kernel tree, the VM suite collected with the checkout's ids, the build's fragments and
patches found, the other commands on recorded results. About a minute, most of it pip.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kheaders_suite.catalog.paths import REPO_ROOT
from kheaders_suite.patchci import cli
from tests.test_patchci_cli import INFO, X86_SYSFS, recorded_side
from tests.test_patchci_series import make_kernel_repo
from tests.test_vmsuite import collected_ids, outer_free_env

SRC = REPO_ROOT / "src"
# Debian 12's own Python (3.11.2): what users and ci/setup make the suite's venv from.
PYTHON = Path("/usr/bin/python3")
PYPI = ("pypi.org", 443)
# One worker builds and installs the wheel once for all of the module's tests
# (addopts: --dist=loadgroup).
pytestmark = pytest.mark.xdist_group("wheel")
# Every file a build reads from the package, for every arch, variant and flavor, and the
# carried patches picked for each kernel version tests/data holds.
BUILD_INPUTS = """
from kheaders_suite.build.kernel import fragments_for
from kheaders_suite.catalog import arches, variants
from kheaders_suite.catalog.flavors import FLAVORS
from kheaders_suite.catalog.paths import KERNELS_DIR, PATCHES_DIR
from kheaders_suite.source.tree import KernelVersion
from kheaders_suite.source.worktree import pick_series
found = set()
for v in map(variants.get, variants.names()):
    for a in map(arches.get, arches.names()):
        found.update(p for f in FLAVORS for p in fragments_for(a, v, (), f))
    for version in (KernelVersion(6, 1), KernelVersion(6, 12), KernelVersion(7, 3)):
        if v.patch_series:
            found.update(pick_series(PATCHES_DIR, v.patch_series, version).patches)
for path in sorted(found):
    print(path.relative_to(KERNELS_DIR), path.is_file())
"""


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


# --- the wheel, installed --------------------------------------------------------------------

@dataclass(frozen=True)
class Installed:
    venv: Path
    package: Path  # the installed kheaders_suite/
    elsewhere: Path  # a working directory outside the checkout

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)


def run(argv: Sequence[str], cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``argv`` run, its exit status 0 or the test fails with its output."""
    __tracebackhide__ = True
    done = subprocess.run(tuple(argv), cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, f"{argv} exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def skip_reason() -> str | None:
    """Why the wheel cannot be tried here, if it cannot."""
    if not PYTHON.is_file():
        return f"{PYTHON} missing: the wheel is installed into a venv of Debian's own Python"
    probe = subprocess.run((str(PYTHON), "-c", "import venv, ensurepip"), capture_output=True,
                           timeout=60, check=False)
    if probe.returncode != 0:
        return f"{PYTHON} cannot make venvs (apt-get install python3-venv)"
    try:
        socket.create_connection(PYPI, timeout=10).close()
    except OSError as exc:
        return f"no network to PyPI ({exc}): the wheel's dependencies come from there"
    return None


def installed_env() -> dict[str, str]:
    """The installed tools' environment: no PYTHONPATH (it would import the checkout's src/)
    and none of the outer pytest run's variables; the user's pip cache, which the unit
    tests' temporary HOME (tests/conftest.py) would hide, so dependencies download once."""
    env = outer_free_env()
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    home = pwd.getpwuid(os.getuid()).pw_dir
    env.setdefault("PIP_CACHE_DIR", str(Path(home) / ".cache" / "pip"))
    return env


def source_copy(dest: Path) -> Path:
    """The checkout's files (tracked, and new ones git does not ignore) copied to ``dest``:
    pip builds in the tree it is given (build/, *.egg-info), and the checkout stays as it is."""
    listed = run(("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"),
                 REPO_ROOT).stdout.split("\0")
    for name in filter(None, listed):
        if (REPO_ROOT / name).is_file():  # a tracked file deleted from the work tree is not
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, dest / name)
    return dest


def build_flags(python: str) -> tuple[str, ...]:
    """--no-build-isolation when ``python`` has a setuptools that builds wheels (70.1 has
    bdist_wheel, older ones need the wheel package): then pip downloads nothing to build."""
    probe = ("import importlib.util as u; raise SystemExit(u.find_spec('setuptools') is None"
             " or (u.find_spec('setuptools.command.bdist_wheel') or u.find_spec('wheel'))"
             " is None)")
    done = subprocess.run((python, "-c", probe), capture_output=True, timeout=60, check=False)
    return ("--no-build-isolation",) if done.returncode == 0 else ()


def build_wheel(source: Path, dist: Path) -> Path:
    run((sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *build_flags(sys.executable),
         "-w", str(dist), str(source)), source, installed_env())
    (wheel,) = dist.glob("kheaders_suite-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    top = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(source_copy(top / "source"), top / "dist")
    venv, elsewhere = top / "venv", top / "elsewhere"
    elsewhere.mkdir()
    run((str(PYTHON), "-m", "venv", str(venv)), elsewhere)
    python = str(venv / "bin" / "python")
    run((python, "-m", "pip", "install", "-q", str(wheel)), elsewhere, installed_env(), 900)
    where = run((python, "-c", "import kheaders_suite; print(kheaders_suite.__file__)"),
                elsewhere, installed_env())
    return Installed(venv, Path(where.stdout.strip()).parent, elsewhere)


def test_the_package_is_the_installed_one(installed: Installed) -> None:
    assert installed.package.parent.name == "site-packages"
    assert installed.package.is_relative_to(installed.venv)


def test_kheaders_ci_dry_run_runs_the_installed_suite(installed: Installed,
                                                       tmp_path: Path) -> None:
    repo = make_kernel_repo(tmp_path / "trees")
    out = tmp_path / "out"
    done = run((installed.bin("kheaders-ci"), "--tree", str(repo.path), "--range",
                "v6.12..series", "--arch", "x86_64", "--variant", "sysfs", "--cache-dir",
                str(tmp_path / "cache"), "--out", str(out), "--dry-run"),
               installed.elsewhere, installed_env())
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[2:]] == ["base x86_64-sysfs",
                                                          "patched x86_64-sysfs"]
    suite = (f"-m pytest -c {installed.package}/vmsuite.ini --rootdir {installed.package} "
             f"-p kheaders_suite.plugin {installed.package}/vmtests --kernel-src ")
    assert all(suite in line for line in lines[2:]), lines
    assert str(REPO_ROOT) not in done.stdout + done.stderr
    assert not out.exists()


def test_the_installed_suite_has_the_checkouts_ids(installed: Installed) -> None:
    checkout = collected_ids((sys.executable, "-m", "pytest", "vmtests", "--arch", "all"),
                             REPO_ROOT)
    done = run((installed.bin("kheaders-suite"), "--collect-only", "-q", "--arch", "all",
                "-p", "no:cacheprovider"), installed.elsewhere, installed_env())
    assert [line for line in done.stdout.splitlines() if "::" in line] == checkout


def test_the_builds_fragments_and_patches_are_installed(installed: Installed) -> None:
    checkout = run((sys.executable, "-c", BUILD_INPUTS), REPO_ROOT,
                   outer_free_env(PYTHONPATH=str(SRC)))
    wheel = run((installed.bin("python"), "-c", BUILD_INPUTS), installed.elsewhere,
                installed_env())
    assert wheel.stdout == checkout.stdout
    assert "configs/base.config True" in wheel.stdout
    assert "False" not in wheel.stdout


def test_the_other_commands_on_recorded_results(installed: Installed, tmp_path: Path) -> None:
    timing = REPO_ROOT / "tests" / "data" / "timing" / "x86_64-sysfs.json"
    run((installed.bin("kheaders-compare"), str(timing), str(timing)), installed.elsewhere,
        installed_env())
    sides = {"base": {X86_SYSFS: recorded_side(tmp_path, "base", "base")},
             "patched": {X86_SYSFS: recorded_side(tmp_path, "patched", "patched")}}
    cli.write_reports(sides, [X86_SYSFS], INFO, tmp_path)  # the checkout's: its job report
    merged = subprocess.run((installed.bin("kheaders-ci-merge"), str(tmp_path / "merged"),
                             str(tmp_path / "jobs" / "x86_64-sysfs" / "report.json")),
                            cwd=installed.elsewhere, env=installed_env(), capture_output=True,
                            text=True, timeout=300, check=False)
    assert merged.returncode == 1, merged.stderr  # the recorded series regresses
    assert "1 jobs, verdict regression" in merged.stdout
