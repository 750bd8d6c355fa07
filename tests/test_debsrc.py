"""The private apt configuration: confined to the cache, the newest candidate, the .deb
checked and unpacked. No network: apt's own runs happen in the VM suite's builds."""

import os
import subprocess
import time
from pathlib import Path

import pytest

from kheaders_suite.errors import InfraError, UserError
from kheaders_suite.source import debsrc

SHOW = """Package: linux-source-7.2
Version: 7.2.12-1~bpo13+1
Size: 164000000
SHA256: aaaa

Package: linux-source-7.2
Version: 7.2.13-1
Size: 164108840
SHA256: bbbb

Package: linux-source-7.2
Version: 7.2.9-1~bpo13+1
SHA256: cccc
"""


def test_newest_candidate_first_and_backport_below_the_suite_build() -> None:
    cands = debsrc.parse_candidates(SHOW, "linux-source-7.2")
    assert [c.version for c in cands] == ["7.2.13-1", "7.2.12-1~bpo13+1", "7.2.9-1~bpo13+1"]
    assert cands[0].sha256 == "bbbb"
    assert debsrc.parse_candidates(SHOW, "linux-source-7.3") == []


def test_apt_never_reads_or_writes_the_hosts_state(tmp_path: Path) -> None:
    opts = debsrc.apt_options(tmp_path)
    settings = dict(o.split("=", 1) for o in opts if o != "-o")
    for name in ("Dir::Etc::SourceList", "Dir::State::Lists", "Dir::State::Status",
                 "Dir::Cache", "Dir::State"):
        assert settings[name].startswith(str(tmp_path)), name
    assert settings["Dir::Etc::SourceParts"] == "/dev/null"
    cmd = debsrc.update_cmd(tmp_path)
    assert cmd[0] == "apt-get"
    assert cmd[-1] == "update"


def test_sources_list_signed_and_covers_every_suite() -> None:
    text = debsrc.sources_list("http://mirror.example")
    for suite in ("bookworm", "trixie-backports", "sid", "bookworm-security"):
        assert f" {suite} main" in text
    assert all("signed-by=/usr/share/keyrings/debian-archive-keyring.gpg" in line
               for line in text.splitlines())
    assert "http://mirror.example/debian-security bookworm-security" in text


@pytest.mark.parametrize("name", ["linux-source", "linux-source-7", "linux-headers-7.3",
                                  "linux-source-7.3; rm -rf /"])
def test_bad_package_name_is_refused(name: str) -> None:
    with pytest.raises(UserError, match=r"pass linux-source-X\.Y"):
        debsrc.check_package_name(name)


def _deb(tmp_path: Path, package: str) -> Path:
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        f"Package: {package}\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@t>\n"
        "Description: t\n")
    (root / "usr/src").mkdir(parents=True)
    (root / f"usr/src/{package}.tar.xz").write_bytes(b"not really xz")
    deb = tmp_path / f"{package}_1.0_all.deb"
    subprocess.run(("dpkg-deb", "-Zgzip", "--build", str(root), str(deb)), check=True,
                   capture_output=True)
    return deb


def test_unpack_takes_the_tarball_out_of_the_deb(tmp_path: Path) -> None:
    deb = _deb(tmp_path, "linux-source-9.9")
    out = debsrc.unpack_tarball(deb, "linux-source-9.9", tmp_path / "out")
    assert out.read_bytes() == b"not really xz"


def test_unpack_of_a_truncated_deb_is_an_infra_error(tmp_path: Path) -> None:
    deb = _deb(tmp_path, "linux-source-9.9")
    deb.write_bytes(deb.read_bytes()[:300])
    with pytest.raises(InfraError, match=r"unpacking \./usr/src/linux-source-9\.9\.tar\.xz"):
        debsrc.unpack_tarball(deb, "linux-source-9.9", tmp_path / "out")


@pytest.mark.parametrize("value", [
    "http://deb.debian.org\ndeb [trusted=yes] http://evil.example/debian sid main",
    "http://mirror.example/debian\r",
    "http://mirror.example/de bian",
    "http://mirror.example/\x85",
    "ftp://mirror.example",
    "file:///srv/mirror",
    "mirror.example",
    "http://",
    "http://[trusted=yes]/",
])
def test_a_mirror_that_is_not_one_url_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                 value: str) -> None:
    """The mirror goes into sources.list lines: a newline in it would add a source of its
    own, trusted without a signature."""
    monkeypatch.setenv(debsrc.MIRROR_ENV, value)
    with pytest.raises(UserError) as raised:
        debsrc.sources_list(debsrc.mirror())
    said = str(raised.value)
    assert said.startswith(f"{debsrc.MIRROR_ENV}=")
    assert "\n" not in said
    assert said.endswith("not a mirror URL; set it to one http:// or https:// URL without "
                         "spaces or control characters, e.g. http://deb.debian.org")


@pytest.mark.parametrize(("value", "expected"), [
    ("https://mirror.example/debian/", "https://mirror.example/debian"),
    ("http://10.0.0.1:3142", "http://10.0.0.1:3142"),
])
def test_a_mirror_url_is_taken(monkeypatch: pytest.MonkeyPatch, value: str,
                               expected: str) -> None:
    monkeypatch.setenv(debsrc.MIRROR_ENV, value)
    assert debsrc.mirror() == expected
    assert debsrc.sources_list(debsrc.mirror()).count("\n") == len(debsrc.SUITES)


def test_a_hung_dpkg_deb_is_stopped_at_the_timeout(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """dpkg-deb that never ends its output (a stand-in first in PATH): an InfraError at the
    bound, nothing of it left running."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pidfile = tmp_path / "dpkg-deb.pid"
    fake = bin_dir / "dpkg-deb"
    fake.write_text(f"#!/bin/sh\necho $$ > {pidfile}\nexec sleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    start = time.monotonic()
    with pytest.raises(InfraError, match=r"exceeded 1s \(dpkg-deb \| tar\); stopped it"):
        debsrc.unpack_tarball(tmp_path / "x.deb", "linux-source-9.9", tmp_path / "out",
                              timeout=1.0)
    assert time.monotonic() - start < 10
    with pytest.raises(ProcessLookupError):
        os.kill(int(pidfile.read_text()), 0)
