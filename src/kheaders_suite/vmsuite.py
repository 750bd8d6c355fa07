"""The VM suite as a program: where its test modules are, the pytest arguments that run them
alike from a checkout and from an installed wheel, and the ``kheaders-suite`` command.

A checkout holds the suite at vmtests/ (``pytest vmtests``: the root conftest.py loads the
plugin, pyproject.toml holds the settings). A wheel installs the same files as the package
kheaders_suite.vmtests (pyproject.toml's package-dir), without pyproject.toml or the root
conftest.py: so every run made here (kheaders-ci's, kheaders-suite's) takes vmsuite.ini, the
same settings, and names the plugin itself, from a checkout too. Either way pytest's rootdir
is the suite's parent directory, so node ids read
"vmtests/test_archive.py::test_identity[x86_64-sysfs]" from both: patch CI compares the two
sides and names KCIDB tests by them.

    kheaders-suite [PYTEST OPTIONS] [vmtests/...]   the installed suite, as `pytest vmtests`
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from kheaders_suite.catalog.paths import REPO_ROOT
from kheaders_suite.errors import InfraError

PROG = "kheaders-suite"
NAME = "vmtests"
PACKAGE_DIR = Path(__file__).resolve().parent
# pyproject.toml's [tool.pytest.ini_options] a VM run needs (markers, addopts), in a file a
# wheel installs; tests/test_vmsuite.py holds the two equal.
INI = PACKAGE_DIR / "vmsuite.ini"
PLUGIN = "kheaders_suite.plugin"


def suite_dir(homes: Sequence[Path] = (PACKAGE_DIR, REPO_ROOT)) -> Path:
    """The suite this package runs, from the first of ``homes`` that holds one: this package
    (a wheel installs it there), else the checkout's top. InfraError if none does."""
    for home in homes:
        if (home / NAME / "__init__.py").is_file():
            return home / NAME
    where = " or ".join(str(h / NAME) for h in homes)
    raise InfraError(f"no VM suite in {where}: a wheel installs it inside the package, a "
                     "checkout has it at its top; reinstall kheaders-suite")


def config_args(suite: Path) -> tuple[str, ...]:
    """The options that make a run of ``suite`` the same wherever it lies. -c: pytest would
    otherwise take the first ini file above an installed package (a venv inside a project
    finds the project's); --rootdir: the ids are relative to it; -p: the plugin, which only
    a checkout's root conftest.py names (and outside the ini file's directory pytest does
    not load that one)."""
    return ("-c", str(INI), "--rootdir", str(suite.parent), "-p", PLUGIN)


def pytest_args() -> tuple[str, ...]:
    """pytest's arguments for the whole suite, before the run's own options."""
    suite = suite_dir()
    return (*config_args(suite), str(suite))


def names_suite(arg: str) -> bool:
    """``arg`` is the suite or a path or node id in it, as a checkout and the reports name
    them ("vmtests/test_archive.py::test_identity[x86_64-sysfs]")."""
    return arg == NAME or arg.startswith(f"{NAME}/")


def suite_argv(args: Sequence[str], suite: Path) -> list[str]:
    """pytest's arguments for ``kheaders-suite ARGS``: what names the suite is read against
    the suite's parent (not the working directory); without such an argument, the whole
    suite."""
    own = [str(suite.parent / a) if names_suite(a) else a for a in args]
    whole = () if any(names_suite(a) for a in args) else (str(suite),)
    return [*config_args(suite), *own, *whole]


def main(argv: Sequence[str] | None = None) -> int:
    # pytest only here: patch CI imports this module and runs pytest in a subprocess.
    import pytest

    try:
        suite = suite_dir()
    except InfraError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return int(pytest.ExitCode.INTERNAL_ERROR)
    return int(pytest.main(suite_argv(sys.argv[1:] if argv is None else argv, suite)))


if __name__ == "__main__":
    sys.exit(main())
