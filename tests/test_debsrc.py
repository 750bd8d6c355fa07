"""The private apt configuration: confined to the cache, the newest candidate, the .deb
checked and unpacked. No network: apt's own runs happen in the VM suite's builds."""

import subprocess
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
