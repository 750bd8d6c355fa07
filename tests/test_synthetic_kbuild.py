"""The kernel rules the synthetic builds are packed with (tests/synthetic/kbuild.py).

The vendored copies are what Debian ships (pinned by sha256, compared with the installed
linux-source package when there is one); make runs them with a clean environment; a failure
says which kernel's rules failed and how.
"""

from __future__ import annotations

import hashlib
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from kheaders_suite.build.kernel import BUILD_TIMESTAMP
from kheaders_suite.source.tree import KernelVersion
from tests.synthetic.build import SyntheticBuild, make_synthetic_build
from tests.synthetic.kbuild import (
    DATA,
    DRIVER,
    PackFailed,
    kernel_dir,
    make_command,
    make_env,
    pack,
    tools_for,
)


@dataclass(frozen=True)
class Vendored:
    kernel: str  # tests/data/<kernel>/
    path: str  # in the kernel tree
    lines: tuple[int, int] | None  # an excerpt: first and last line, 1-based
    sha256: str  # of the vendored file (the excerpt, for an excerpt)


# The same sums as tests/data/kernel-*/README.md: the copies must not be edited.
VENDORED = (
    Vendored("kernel-6.12", "kernel/gen_kheaders.sh", None,
             "6618ad71819e4bef90a45d8ac2a61cbde3c165fffd8bb50e46df72f4f2a94083"),
    Vendored("kernel-6.12", "kernel/Makefile", (154, 161),
             "eb6f11ee49c0c2dd885eb651f2edbab1bfa01364810d1db7649383aa573b67f6"),
    Vendored("kernel-7.3", "kernel/gen_kheaders.sh", None,
             "daa8c5ba7a56d6a40202213949c397ba6517d274a171527b734c883bb15815a7"),
    Vendored("kernel-7.3", "kernel/Makefile", (165, 209),
             "b7160d7b620c7de067df5b27590d6e0d340661d7f06ef483513ec0416f1becee"),
)
# Debian's linux-source-6.12 (ci/setup installs it): the tarball's top directory.
INSTALLED = (Path("/usr/src/linux-source-6.12.tar.xz"), "linux-source-6.12", "kernel-6.12")


@pytest.mark.parametrize("item", VENDORED, ids=lambda v: f"{v.kernel}/{v.path}")
def test_vendored_copy_is_pinned(item: Vendored) -> None:
    data = (DATA / item.kernel / item.path).read_bytes()
    assert hashlib.sha256(data).hexdigest() == item.sha256


def _read_members(tarball: Path, names: set[str]) -> dict[str, bytes]:
    """Stream the tarball until every name is found (~10-15 s to kernel/ of a 150 MB .xz)."""
    found: dict[str, bytes] = {}
    with tarfile.open(tarball, "r|xz") as tar:
        for info in tar:
            if info.name in names:
                extracted = tar.extractfile(info)
                assert extracted is not None, f"{info.name} is not a regular file"
                found[info.name] = extracted.read()
                if len(found) == len(names):
                    break
    return found


def _excerpt(data: bytes, lines: tuple[int, int] | None) -> bytes:
    if lines is None:
        return data
    first, last = lines
    return b"".join(data.splitlines(keepends=True)[first - 1 : last])


def test_vendored_copies_match_the_installed_package() -> None:
    tarball, top, kernel = INSTALLED
    if not tarball.exists():
        pytest.skip(f"{tarball} not installed (Debian package linux-source-6.12)")
    items = [v for v in VENDORED if v.kernel == kernel]
    members = _read_members(tarball, {f"{top}/{v.path}" for v in items})
    for item in items:
        packaged = members.get(f"{top}/{item.path}")
        assert packaged is not None, f"{tarball} has no {top}/{item.path}"
        vendored = (DATA / item.kernel / item.path).read_bytes()
        assert vendored == _excerpt(packaged, item.lines), f"{item.kernel}/{item.path}"


def test_make_command() -> None:
    assert make_command(Path("/r/Makefile"), Path("/o"), Path("/s"), "x86", BUILD_TIMESTAMP) == (
        "make", "-rR", "-s", "--no-print-directory", "-C", "/o", "-f", str(DRIVER),
        "RULES=/r/Makefile", "srctree=/s", "SRCARCH=x86",
        "KBUILD_BUILD_TIMESTAMP=2019-04-26 00:00:00 UTC", "kernel/kheaders_data.tar.xz")


def test_versions_and_tools() -> None:
    assert kernel_dir(KernelVersion(6, 12, 117)) == DATA / "kernel-6.12"
    assert kernel_dir(KernelVersion(7, 3)) == DATA / "kernel-7.3"
    with pytest.raises(ValueError, match=r"no vendored gen_kheaders.sh for 6.6.0: have 6.12, 7.3"):
        kernel_dir(KernelVersion(6, 6))
    assert "cpio" in tools_for(KernelVersion(6, 12))  # until 82a1978d0fdc (6.14)
    assert "cpio" not in tools_for(KernelVersion(7, 3))


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> SyntheticBuild:
    return make_synthetic_build(tmp_path_factory.mktemp("good"))


def test_caller_environment_does_not_reach_the_rules(good: SyntheticBuild, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """TAR_OPTIONS and XZ_DEFAULTS would change the bytes if they got through."""
    monkeypatch.setenv("TAR_OPTIONS", "--format=posix")
    monkeypatch.setenv("XZ_DEFAULTS", "-0")
    again = make_synthetic_build(tmp_path, good.version)
    assert again.archive == good.archive
    assert set(make_env()) == {"PATH", "LC_ALL"}


def test_failing_rules_say_which_and_why(tmp_path: Path) -> None:
    """Failure injection: 7.3's file list finds no source tree."""
    (tmp_path / "objtree").mkdir()
    with pytest.raises(PackFailed, match=r"(?s)7\.3\.0 rules failed.*No such file or directory"):
        pack(KernelVersion(7, 3), tmp_path / "src", tmp_path / "objtree", "x86", BUILD_TIMESTAMP)
