"""Bad input: each case is one line that names the fix, a non-zero exit status, and
nothing lost (no cache, no results, the user's tree untouched). The catalogue with the place
each is detected is docs/bad-input.md; its rows name these tests.

End to end where the exit status matters: `python -m pytest -p kheaders_suite.plugin` on a
trivial test file, so a UsageError at configure time is exit 4 with "ERROR: <line>" alone on
stderr. Host programs are faked: a PATH of stub scripts, and for vng an interpreter outside
the venv (vng is looked up beside sys.executable first).
"""

from __future__ import annotations

import os
import site
import stat
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from kheaders_suite.boot import rootfs
from kheaders_suite.build import inputs, kconfig
from kheaders_suite.catalog import arches
from kheaders_suite.catalog.arches.arch import Arch
from kheaders_suite.catalog.paths import CONFIGS_DIR, REPO_ROOT
from kheaders_suite.errors import ConfigMismatch, UserError
from kheaders_suite.host import tools
from kheaders_suite.patchci import cli
from kheaders_suite.plugin import options as settings
from kheaders_suite.source import tree as source
from tests.test_patchci_series import make_kernel_repo, mbox_of, snapshot

SRC = Path(tools.__file__).resolve().parents[2]
KCONFIG = "config IKHEADERS\n\ttristate\nmenuconfig DEBUG_FS\n\tbool\nconfig SYSCTL\n"


@dataclass(frozen=True)
class Run:
    rc: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def kernel_tree(root: Path, version: str = "6.12.0", kconfig_text: str = KCONFIG) -> Path:
    """A tree check_kernel_tree takes: top Makefile with the version, the files it needs."""
    major, minor, sub = version.split(".")
    files = {"Makefile": f"VERSION = {major}\nPATCHLEVEL = {minor}\nSUBLEVEL = {sub}\n",
             "Kconfig": kconfig_text, "kernel/gen_kheaders.sh": "",
             "scripts/kconfig/merge_config.sh": ""}
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def stub_dir(root: Path, programs: dict[str, str]) -> str:
    """A PATH of shell stubs: name -> what the stub prints."""
    root.mkdir(parents=True, exist_ok=True)
    for name, output in programs.items():
        stub = root / name
        stub.write_text(f"#!/bin/sh\necho '{output}'\n")
        stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    return str(root)


def host_programs() -> dict[str, str]:
    """Every compiler and QEMU any arch needs, as stubs."""
    return {p.name: p.name for a in map(arches.get, arches.names())
            for p in (tools.compiler(a), tools.qemu(a))}


def foreign_arch() -> Arch:
    return next(a for a in map(arches.get, arches.names()) if not a.is_native)


def suite(tmp_path: Path, *args: str, path: str | None = None,
          python: str = sys.executable, env: dict[str, str] | None = None) -> Run:
    """The plugin on a trivial test file; cache and results under tmp_path (must stay absent)."""
    work = tmp_path / "run"
    work.mkdir(exist_ok=True)
    (work / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    full_env = {**os.environ, **(env or {}), **({"PATH": path} if path is not None else {})}
    done = subprocess.run(
        (python, "-m", "pytest", "-p", "kheaders_suite.plugin", "-p", "no:cacheprovider", "-q",
         "--cache-dir", str(tmp_path / "cache"), "--results-dir", str(tmp_path / "results"),
         *args, "test_nothing.py"),
        cwd=work, env=full_env, capture_output=True, text=True, timeout=300)
    return Run(done.returncode, done.stdout, done.stderr)


def assert_bad_input(run: Run, tmp_path: Path, message: str) -> None:
    """Exit 4 (pytest's usage error), the one line alone, nothing written."""
    __tracebackhide__ = True
    assert run.rc == 4, run
    assert run.error_lines == [f"ERROR: {message}"], run
    assert "\n" not in message
    assert not (tmp_path / "cache").exists()
    assert not (tmp_path / "results").exists()


# --- the kernel source --------------------------------------------------------------------

def test_missing_kernel_source_path(tmp_path: Path) -> None:
    run = suite(tmp_path, "--kernel-src", str(tmp_path / "nope"))
    assert_bad_input(run, tmp_path, f"--kernel-src {tmp_path}/nope: no such directory; "
                                     "pass the top of a kernel tree")


def test_a_path_that_is_not_a_kernel_tree(tmp_path: Path) -> None:
    tree = tmp_path / "notes"
    tree.mkdir()
    (tree / "README").write_text("not a kernel\n")
    before = snapshot(tree)
    run = suite(tmp_path, "--kernel-src", str(tree))
    assert_bad_input(run, tmp_path, f"--kernel-src {tree}: not a kernel tree (missing Makefile); "
                                     "pass the top of a Linux source tree")
    assert snapshot(tree) == before


def test_a_tree_too_old_for_ikheaders_says_so(tmp_path: Path) -> None:
    """4.19 has no kernel/gen_kheaders.sh: the version is named, not the missing file."""
    tree = kernel_tree(tmp_path / "linux-4.19", "4.19.0")
    (tree / "kernel/gen_kheaders.sh").unlink()
    before = snapshot(tree)
    run = suite(tmp_path, "--kernel-src", str(tree))
    assert_bad_input(run, tmp_path, f"--kernel-src {tree}: kernel 4.19.0 is outside the "
                                     "supported range 6.1 to 7.x (older than CONFIG_IKHEADERS, "
                                     "5.2); pass a 6.1 to 7.x tree")
    assert snapshot(tree) == before


def test_a_tree_in_range_without_gen_kheaders(tmp_path: Path) -> None:
    tree = kernel_tree(tmp_path / "stripped", "6.12.0")
    (tree / "kernel/gen_kheaders.sh").unlink()
    with pytest.raises(UserError) as err:
        settings.kernel_src(str(tree))
    assert str(err.value) == (f"--kernel-src {tree}: not a kernel tree with CONFIG_IKHEADERS "
                              "(missing kernel/gen_kheaders.sh); pass a complete 6.1 to 7.x tree")


def test_a_debian_package_too_old_is_refused_before_any_download(tmp_path: Path) -> None:
    run = suite(tmp_path, "--kernel-package", "linux-source-4.19")
    assert_bad_input(run, tmp_path, "--kernel-package linux-source-4.19: kernel 4.19.0 is "
                                     "outside the supported range 6.1 to 7.x (older than "
                                     "CONFIG_IKHEADERS, 5.2); pass a 6.1 to 7.x tree")


# --- arches and variants ------------------------------------------------------------------

def test_an_unknown_arch(tmp_path: Path) -> None:
    run = suite(tmp_path, "--arch", "x86_64,riscv64")
    assert_bad_input(run, tmp_path, "--arch 'riscv64': unknown architecture; choose from "
                                     f"{', '.join(arches.names())}")


def test_an_unknown_variant_selects_nothing_and_fails(tmp_path: Path) -> None:
    """There is no --variant option: variants are chosen with -k (README). A name that
    matches nothing deselects every test, and pytest exits 5 ("no tests collected"),
    which ci/lib.sh and kheaders-ci treat as a failure. Collected only: nothing to lose."""
    done = subprocess.run(
        (sys.executable, "-m", "pytest", "vmtests", "--collect-only", "-q", "-p",
         "no:cacheprovider", "--cache-dir", str(tmp_path / "cache"), "-k", "prco"),
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 5, done.stdout + done.stderr
    assert "no tests collected" in done.stdout
    assert not (tmp_path / "cache").exists()


# --- config fragments ---------------------------------------------------------------------

def test_a_fragment_that_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        settings.fragments([str(tmp_path / "nope.config")], None, None)
    assert str(err.value) == (f"--config-fragment {tmp_path}/nope.config: no such file; "
                              "pass a Kconfig fragment file")


SYNTAX = "is not CONFIG_NAME=value, '# CONFIG_NAME is not set', a comment or blank"
VALUE = "not y, m, n, a \"quoted string\" or a number"
BAD_LINES = {
    "no-equals": ("CONFIG_DEBUG_FS y", SYNTAX),
    "lower-case": ("config_debug_fs=y", SYNTAX),
    "indented": ("  CONFIG_DEBUG_FS=y", SYNTAX),
    "yes": ("CONFIG_DEBUG_FS=yes", f"has the value 'yes': {VALUE}"),
    "unquoted": ("CONFIG_CMDLINE=console=ttyS0", f"has the value 'console=ttyS0': {VALUE}"),
    "when": ("# when >= 7", "is not a condition '# when <op> X.Y' (<op>: <, <=, ==, >= or >)"),
}


def test_a_fragment_with_a_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    frag = tmp_path / "extra.config"
    frag.write_text("# mine\nCONFIG_IKHEADERS=y\nCONFIG_DEBUG_FS y\n")
    run = suite(tmp_path, "--config-fragment", str(frag))
    assert_bad_input(run, tmp_path, f"{frag}:3: 'CONFIG_DEBUG_FS y' {SYNTAX}; fix the line")


@pytest.mark.parametrize(("line", "why"), BAD_LINES.values(), ids=BAD_LINES.keys())
def test_every_line_kconfig_would_misread_is_named(tmp_path: Path, line: str, why: str) -> None:
    frag = tmp_path / "extra.config"
    frag.write_text(f"# mine\nCONFIG_IKHEADERS=y\n{line}\n")
    with pytest.raises(UserError) as err:
        settings.fragments([str(frag)], None, None)
    assert str(err.value) == f"{frag}:3: {line.strip()!r} {why}; fix the line"


@pytest.mark.parametrize("line", [
    "", "# a comment", "# when the guest boots, it needs this", "# CONFIG_X is not set",
    "# when >=7.3", "CONFIG_X=y", "CONFIG_X=m", "CONFIG_X=n", 'CONFIG_X="a \\"b\\" c"',
    'CONFIG_X=""', "CONFIG_X=17", "CONFIG_X=-1", "CONFIG_X=0x1000000", "CONFIG_X=y   ",
])
def test_fragment_lines_kconfig_reads(line: str) -> None:
    assert kconfig.syntax_error(line) is None


@pytest.mark.parametrize("frag", sorted(CONFIGS_DIR.glob("*.config")), ids=lambda p: p.name)
def test_the_suites_own_fragments_have_no_syntax_error(frag: Path) -> None:
    kconfig.check_syntax(frag)


def test_a_fragment_symbol_no_kconfig_defines_is_named_before_the_build(tmp_path: Path) -> None:
    """With --kernel-src the tree's Kconfig files are read at configure time; a symbol under
    a "# when" that does not hold for the tree's version is not asked for, so not checked."""
    tree = kernel_tree(tmp_path / "linux")
    frag = tmp_path / "extra.config"
    frag.write_text("CONFIG_IKHEADERS=m\n# when >=7.3\nCONFIG_ONLY_IN_7_3=y\n"
                    "CONFIG_DEBUGFS=y\n")
    before = snapshot(tree)
    run = suite(tmp_path, "--kernel-src", str(tree), "--config-fragment", str(frag))
    assert_bad_input(run, tmp_path, f"{frag}:4: CONFIG_DEBUGFS is not defined by any Kconfig "
                                     f"in {tree} (kernel 6.12.0); check its spelling, or "
                                     "remove it")
    assert snapshot(tree) == before


def test_defined_symbols_read_every_kconfig_file_but_documentation(tmp_path: Path) -> None:
    tree = kernel_tree(tmp_path, kconfig_text="config A\n  menuconfig B # why\nconfigure C\n")
    (tree / "arch/x86").mkdir(parents=True)
    (tree / "arch/x86/Kconfig.cpu").write_text("\tconfig X86_ONLY\n")
    (tree / "Documentation").mkdir()
    (tree / "Documentation/Kconfig").write_text("config EXAMPLE\n")
    assert kconfig.defined_symbols(tree) == {"A", "B", "X86_ONLY"}


def _configured(tmp_path: Path, resolved: str, user: str, suite_text: str) -> dict[str, Path]:
    """A work copy's source, an object tree's .config, the fragment copies build.py makes."""
    src = kernel_tree(tmp_path / "src")
    obj = tmp_path / "obj"
    obj.mkdir()
    (obj / ".config").write_text(resolved)
    mine = tmp_path / "my fragment.config"
    mine.write_text(user)
    base = tmp_path / "base.config"
    base.write_text(suite_text)
    copies = kconfig.write_for_version([base, mine], source.KernelVersion(6, 12),
                                       tmp_path / "frags")
    return {"src": src, "obj": obj, "mine": mine, "base": copies[0], "copy": copies[1]}


def test_a_fragment_symbol_that_does_not_stick_is_bad_input_naming_the_fragment(
        tmp_path: Path) -> None:
    """After olddefconfig (a recorded .config here, no make): every symbol of the user's
    fragment that did not stick, the undefined ones told apart, as one UserError line."""
    p = _configured(tmp_path, "CONFIG_IKHEADERS=y\n# CONFIG_DEBUG_FS is not set\n",
                    "CONFIG_DEBUG_FS=y\nCONFIG_DEBUGFS=y\n", "CONFIG_IKHEADERS=y\n")
    with pytest.raises(UserError) as err:
        inputs.check_config(p["src"], p["obj"], [p["base"], p["copy"]], (p["mine"],))
    assert str(err.value) == (
        f"--config-fragment {p['mine']}: 2 requested symbols did not stick after "
        "olddefconfig: CONFIG_DEBUGFS: wanted y, but no Kconfig in the tree defines it; "
        "CONFIG_DEBUG_FS: wanted y, got n; fix the fragment (a misspelt symbol, or one whose "
        "dependencies are off)")


def test_a_suite_symbol_that_does_not_stick_is_the_suites_fault(tmp_path: Path) -> None:
    p = _configured(tmp_path, "CONFIG_IKHEADERS=m\n", "", "CONFIG_IKHEADERS=y\n")
    with pytest.raises(ConfigMismatch, match=r"^1 requested symbols did not stick after "
                                             r"olddefconfig: CONFIG_IKHEADERS: wanted y, got m$"):
        inputs.check_config(p["src"], p["obj"], [p["base"], p["copy"]], (p["mine"],))


# --- patches ------------------------------------------------------------------------------

def test_a_patch_that_does_not_apply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """kheaders-ci's series (the carried variant patches are the suite's own: PatchFailed,
    tests/test_patches.py::test_drifted_tree_is_an_error_naming_patch_version_and_file)."""
    repo = make_kernel_repo(tmp_path / "trees")
    mbox = mbox_of(repo.path, "series~2..series~1", tmp_path / "c.patch")
    before = snapshot(repo.path)
    rc = cli.main(["--tree", str(repo.path), "--base", "other", "--mbox", str(mbox),
                   "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert rc == 2
    assert (out, err) == ("", f"kheaders-ci: --mbox {mbox}: patch 1/1 'init: a comment' "
                              f"(c.patch) does not apply to other ({repo.other[:12]}): first "
                              "failing file init/version.c\n")
    assert snapshot(repo.path) == before
    assert not (tmp_path / "out").exists()
    assert not any(p.is_dir() for p in (tmp_path / "cache/patchci/clones").glob("*"))


# --- host programs ------------------------------------------------------------------------

def test_a_missing_cross_compiler(tmp_path: Path) -> None:
    foreign = foreign_arch()
    programs = host_programs()
    del programs[tools.compiler(foreign).name]
    run = suite(tmp_path, "--arch", "all", path=stub_dir(tmp_path / "bin", programs))
    assert_bad_input(run, tmp_path, f"not found: {tools.compiler(foreign).hint()}; install "
                                     "them (ci/setup installs everything the suite needs)")


def test_a_missing_qemu_system_binary(tmp_path: Path) -> None:
    foreign = foreign_arch()
    programs = host_programs()
    del programs[foreign.qemu_binary]
    run = suite(tmp_path, "--arch", foreign.name, path=stub_dir(tmp_path / "bin", programs))
    assert_bad_input(run, tmp_path, f"not found: {foreign.qemu_binary} (apt-get install "
                                     f"{foreign.qemu_package}); install them (ci/setup "
                                     "installs everything the suite needs)")


def test_a_foreign_arch_without_a_root_filesystem_needs_mmdebstrap(tmp_path: Path) -> None:
    foreign = foreign_arch()
    run = suite(tmp_path, "--arch", foreign.name, path=stub_dir(tmp_path / "bin",
                                                                 host_programs()))
    assert_bad_input(run, tmp_path, f"mmdebstrap not found, needed for the {foreign.name} "
                                     "guest's root filesystem: run ci/setup (Debian: apt-get "
                                     "install mmdebstrap qemu-user-static binfmt-support)")


def test_a_cached_root_filesystem_needs_no_mmdebstrap(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    foreign = foreign_arch()
    with pytest.raises(UserError, match=r"^mmdebstrap not found"):
        rootfs.check_host(tmp_path, foreign)
    tree = rootfs.tree_path(tmp_path / "rootfs", foreign, rootfs.choose_method(foreign))
    tree.mkdir(parents=True)
    rootfs.check_host(tmp_path, foreign)


def test_programs_are_not_needed_to_collect(tmp_path: Path) -> None:
    """--collect-only builds and boots nothing (kheaders-ci and tests/test_selection.py
    collect on hosts without the other arch's tools)."""
    run = suite(tmp_path, "--arch", "all", "--collect-only", path=str(tmp_path / "empty"))
    assert run.rc == 0, run


def outside_venv(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """This interpreter under another path, with the venv's packages: no vng beside it."""
    python = tmp_path / "python-elsewhere" / "python"
    python.parent.mkdir()
    python.symlink_to(Path(sys.executable).resolve())
    paths = [str(SRC), *site.getsitepackages()]
    return str(python), {"PYTHONPATH": os.pathsep.join(paths)}


def test_virtme_ng_missing(tmp_path: Path) -> None:
    python, env = outside_venv(tmp_path)
    run = suite(tmp_path, path=stub_dir(tmp_path / "bin", host_programs()), python=python,
                env=env)
    assert_bad_input(run, tmp_path, f"vng (virtme-ng) not found; {tools.VNG_PIP} into the "
                                     "suite's venv (ci/setup does)")


@pytest.mark.parametrize(("output", "message"), [
    ("virtme-ng 1.41", "{vng} is virtme-ng 1.41, older than the 1.42 the suite is tested "
                       f"with (its CI's); {tools.VNG_PIP}"),
    ("vng: broken", f"{{vng}} --version: cannot tell its version (vng: broken); {tools.VNG_PIP}"),
], ids=["too-old", "unreadable"])
def test_virtme_ng_too_old(tmp_path: Path, output: str, message: str) -> None:
    vng = Path(stub_dir(tmp_path / "bin", {"vng": output})) / "vng"
    with pytest.raises(UserError) as err:
        tools.check_vng(vng)
    assert str(err.value) == message.format(vng=vng)


def test_virtme_ng_too_old_end_to_end(tmp_path: Path) -> None:
    path = stub_dir(tmp_path / "bin", host_programs() | {"vng": "virtme-ng 1.41"})
    python, env = outside_venv(tmp_path)
    run = suite(tmp_path, path=path, python=python, env=env)
    assert_bad_input(run, tmp_path, f"{tmp_path}/bin/vng is virtme-ng 1.41, older than the "
                                     f"1.42 the suite is tested with (its CI's); "
                                     f"{tools.VNG_PIP}")


def test_the_venvs_vng_comes_first_and_is_new_enough(tmp_path: Path) -> None:
    old = stub_dir(tmp_path / "bin", {"vng": "virtme-ng 1.20"})
    assert tools.find_vng(beside=tmp_path / "venv", path=old) == Path(old) / "vng"
    venv = stub_dir(tmp_path / "venv", {"vng": "virtme-ng 1.42"})
    assert tools.find_vng(beside=Path(venv), path=old) == Path(venv) / "vng"
    tools.check_vng(Path(venv) / "vng")


def test_the_vng_floor_is_what_pyproject_installs() -> None:
    """The check, its pip hint and the dependency agree on one minor: the one CI runs."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert "virtme-ng>=1.42,<1.43" in project["dependencies"]
    assert tools.VNG_MIN == (1, 42)
    assert tools.VNG_PIP == "pip install 'virtme-ng>=1.42,<1.43'"


@pytest.mark.parametrize(("output", "version"), [
    ("virtme-ng 1.42", (1, 42)), ("virtme-ng 1.34-12-gdeadbeef", (1, 34)), ("oops", None)])
def test_vng_version_parse(output: str, version: tuple[int, int] | None) -> None:
    assert tools.parse_vng_version(output) == version


# --- guest size and results ---------------------------------------------------------------

SMALL = ("below the 256M a guest needs (kernel, virtme-ng init, sshd, the tests' headers); "
         "pass 256M or more (default 2G)")
NOT_A_SIZE = "not a size; pass MiB as digits, or digits with K, M or G (e.g. 2G)"


def test_guest_memory_too_small_to_boot(tmp_path: Path) -> None:
    assert_bad_input(suite(tmp_path, "--guest-memory", "128M"), tmp_path,
                     f"--guest-memory 128M: {SMALL}")


@pytest.mark.parametrize(("value", "message"), [
    ("255", f"--guest-memory 255: {SMALL}"), ("262143K", f"--guest-memory 262143K: {SMALL}"),
    ("2GB", f"--guest-memory '2GB': {NOT_A_SIZE}"),
    ("1.5G", f"--guest-memory '1.5G': {NOT_A_SIZE}"),
    ("", f"--guest-memory '': {NOT_A_SIZE}")])
def test_guest_memory_too_small_or_unreadable(value: str, message: str) -> None:
    with pytest.raises(UserError) as err:
        settings.guest_memory(value)
    assert str(err.value) == message


@pytest.mark.parametrize(("value", "passed"), [
    ("2G", "2G"), ("2g", "2G"), ("256M", "256M"), ("1024", "1024M"), ("262144K", "262144K")])
def test_guest_memory_as_vng_takes_it(value: str, passed: str) -> None:
    assert settings.guest_memory(value) == passed


@pytest.mark.parametrize("option", ["--guest-cpus", "--build-jobs"])
def test_a_count_below_one(option: str) -> None:
    with pytest.raises(UserError, match=rf"^{option} 0: must be at least 1$"):
        settings.at_least_one("0", option)


def test_a_results_directory_behind_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("kept\n")
    run = suite(tmp_path, "--results-dir", str(blocker / "results"))
    assert_bad_input(run, tmp_path, f"--results-dir {blocker}/results: {blocker} is not a "
                                     "directory; pass a directory")
    assert blocker.read_text() == "kept\n"


def _unwritable() -> Path | None:
    """A directory this user cannot create files in (root can, almost everywhere)."""
    for candidate in (Path("/sys"), Path("/proc")):
        try:
            settings.writable_dir(str(candidate / "x"), "--results-dir")
        except UserError:
            return candidate
    return None


@pytest.mark.skipif(_unwritable() is None, reason="no directory this user cannot write")
def test_a_results_directory_that_cannot_be_written(tmp_path: Path) -> None:
    top = _unwritable()
    assert top is not None
    run = suite(tmp_path, "--results-dir", str(top / "kheaders-results"))
    assert run.rc == 4
    (line,) = run.error_lines
    assert line.startswith(f"ERROR: --results-dir {top}/kheaders-results: cannot write in "
                           f"{top} (")
    assert line.endswith("); pass a directory you can write in")
    assert not (tmp_path / "cache").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in a read-only directory")
def test_a_read_only_results_directory(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(UserError, match=r"cannot write in .*locked \(Permission denied\)"):
        settings.writable_dir(str(locked / "results"), "--results-dir")


# --- paths with spaces and quotes ---------------------------------------------------------

def test_paths_with_spaces_and_quotes_work(tmp_path: Path) -> None:
    """Tree, fragment and results under `with space/and'quote"`, through the same checks; the
    fragment's copy gets a name merge_config.sh can split on white space."""
    odd = tmp_path / "with space" / "and'quote\""
    tree = kernel_tree(odd / "linux 6.12")
    frag = odd / "my \"extra\" frag's.config"
    frag.write_text("CONFIG_DEBUG_FS=y\n")
    results = odd / "results dir"
    run = suite(tmp_path, "--kernel-src", str(tree), "--config-fragment", str(frag),
                "--results-dir", str(results), path=stub_dir(tmp_path / "bin", host_programs()))
    assert run.rc == 0, run
    assert "1 passed" in run.stdout
    assert source.user_source(tree, tmp_path / "cache").path == tree.resolve()
    (copy,) = kconfig.write_for_version([frag], source.KernelVersion(6, 12), tmp_path / "w")
    assert copy.name == "00-my__extra__frag_s.config"
    assert copy.read_text() == "CONFIG_DEBUG_FS=y\n"


def test_a_cache_directory_kbuild_and_vng_cannot_use(tmp_path: Path) -> None:
    """The one path that cannot have them: kernels are built (kbuild: "source directory
    cannot contain spaces or colons") and booted (vng pastes --kimg unquoted into sh -c,
    virtme-ng takes --rodir paths of [a-zA-Z0-9_+ /.-] only) from the cache."""
    cache = tmp_path / "my cache"
    run = suite(tmp_path, "--cache-dir", str(cache))
    assert_bad_input(run, tmp_path, f"--cache-dir {str(cache)!r}: kernels are built and booted "
                                     "from here, and kbuild and vng take only letters, digits "
                                     "and _+./- in its path; pass such a path")
    assert not cache.exists()


def test_unit_tests_need_no_qemu_but_vm_tests_do(tmp_path: Path) -> None:
    """The host check (qemu-system, gcc, vng) applies to runs that can boot a guest; the
    unit tests (tests/, the default) run on a host without them."""
    empty = tmp_path / "bin"
    empty.mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "vmtests").mkdir()
    for d in ("tests", "vmtests"):
        (tmp_path / d / "test_a.py").write_text("def test_a():\n    pass\n")
    env = {**os.environ, "PATH": f"{empty}"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run((sys.executable, "-m", "pytest", "-p", "kheaders_suite.plugin",
                               "-p", "no:cacheprovider", "--rootdir", str(tmp_path), *args),
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    assert run("tests").returncode == 0
    assert run("tests/test_a.py::test_a").returncode == 0
    vm = run("vmtests")
    assert vm.returncode == 4
    assert "not found: " in vm.stderr
