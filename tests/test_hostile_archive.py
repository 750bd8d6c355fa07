"""An archive served by a stranger's kernel: names, links, kinds and sizes meant to hurt the host.

Each archive is made here with tarfile + lzma. A sentinel file outside the trees stands for the
host's secrets (/etc/hostname, /proc/kcore): its text must appear in no verdict, and each case
must end in a FAIL that names the member and says what is wrong with it.
"""

from __future__ import annotations

import io
import lzma
import re
import socket
import tarfile
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import pytest

from kheaders_suite.patchci import document, render
from kheaders_suite.verify.archive import MIB, ArchiveError, Limits, read_archive, xz_size
from kheaders_suite.verify.content import content
from kheaders_suite.verify.members import name_problem
from kheaders_suite.verify.metadata import metadata
from kheaders_suite.verify.result import CheckResult
from kheaders_suite.verify.runner import ARCHIVE_CHECKS, check_archive
from tests.synthetic.build import make_synthetic_build
from tests.test_patchci_output import RUN, x86_job

SENTINEL = "host-secret-7f3a9c"
HEADER = "include/linux/ok.h"


@dataclass(frozen=True)
class Trees:
    source: Path
    objtree: Path
    secret: Path  # a host file outside both trees, holding SENTINEL


@pytest.fixture
def trees(tmp_path: Path) -> Trees:
    """tmp/build/{src,obj} with one header each; tmp/secret/hostname beside them."""
    secret = tmp_path / "secret" / "hostname"
    secret.parent.mkdir()
    secret.write_text(f"{SENTINEL}\n{SENTINEL} again\n")
    source, objtree = tmp_path / "build" / "src", tmp_path / "build" / "obj"
    (source / "include" / "linux").mkdir(parents=True)
    (source / HEADER).write_text("int ok;\n")
    (objtree / "include" / "generated").mkdir(parents=True)
    (objtree / "include/generated/autoconf.h").write_text("#define CONFIG_IKHEADERS 1\n")
    return Trees(source, objtree, secret)


def entry(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE,
          linkname: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, 0o644
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def served(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    """The entries as a GNU tar, xz-compressed: what a guest could serve."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return lzma.compress(buf.getvalue(), format=lzma.FORMAT_XZ)


def refused(result: CheckResult, member: str, why: str) -> None:
    """A FAIL whose summary names ``member`` and ``why``, and no byte of the secret."""
    __tracebackhide__ = True
    text = result.render()
    assert SENTINEL not in text, text
    assert not result.ok, text
    assert f"archive member {member!r}" in result.summary, text
    assert why in result.summary, text


def check(trees: Trees, archive: bytes) -> CheckResult:
    return content(archive, trees.source, trees.objtree)


def test_an_absolute_name_is_refused_unread(trees: Trees) -> None:
    name = str(trees.secret)
    refused(check(trees, served(entry(name, b"guess\n"))), name, "escapes the tree: it is absolute")


@pytest.mark.parametrize("raw", ["../../secret/hostname", "./../../secret/hostname",
                                 "include/../../../secret/hostname"])
def test_a_dotdot_name_is_refused_unread(trees: Trees, raw: str) -> None:
    assert (trees.source / raw).resolve() == trees.secret  # the old join reached the secret
    result = check(trees, served(entry(raw, b"guess\n")))
    refused(result, raw, "escapes the tree: it has a '..' component")
    assert "unsafe name" in metadata(served(entry(raw, b"guess\n"))).render()


def test_a_nul_in_a_name_is_refused() -> None:
    assert name_problem("include/linux/ok.h\0/etc/hostname") == "it holds a NUL byte"
    assert name_problem(HEADER) is None


@pytest.mark.parametrize("link", ["/etc", "../../../secret", "../../../../etc/hostname"])
def test_a_member_symlink_out_of_the_tree_is_refused(trees: Trees, link: str) -> None:
    result = check(trees, served(entry(HEADER, kind=tarfile.SYMTYPE, linkname=link)))
    refused(result, HEADER, f"is a symlink out of the tree (to {link!r})")


def test_a_member_symlink_inside_the_tree_is_compared_by_target(trees: Trees) -> None:
    """What the build's archive has (include/dt-bindings): allowed, and a wrong one differs."""
    (trees.source / "include/linux/alias.h").symlink_to("ok.h")
    same = check(trees, served(entry("include/linux/alias.h", kind=tarfile.SYMTYPE,
                                     linkname="ok.h")))
    assert same.ok, same.render()
    other = check(trees, served(entry("include/linux/alias.h", kind=tarfile.SYMTYPE,
                                      linkname="../linux/ok.h")))
    assert "symlink target: tree ok.h, archive ../linux/ok.h" in other.render()


def test_a_host_symlinked_directory_out_of_the_tree_is_not_followed(trees: Trees) -> None:
    (trees.source / "include" / "leak").symlink_to(trees.secret.parent)
    name = "include/leak/hostname"
    result = check(trees, served(entry(name, b"guess\n")))
    refused(result, name, f"escapes the tree: on the host it resolves to {trees.secret}")


def test_a_host_symlinked_file_out_of_the_tree_is_not_followed(trees: Trees) -> None:
    (trees.objtree / "include/generated/leak.h").symlink_to(trees.secret)
    name = "include/generated/leak.h"
    result = check(trees, served(entry(name, b"guess\n")))
    refused(result, name, f"escapes the tree: on the host it resolves to {trees.secret}")


def test_a_host_socket_in_the_tree_is_not_opened(trees: Trees,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a regular file: a fifo in its place would block the read for ever, /proc/kcore
    would be huge; a socket makes the read fail at once, so a regression cannot hang."""
    monkeypatch.chdir(trees.source / "include/linux")  # sun_path holds 108 bytes
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind("sock.h")
        result = check(trees, served(entry("include/linux/sock.h", b"guess\n")))
    refused(result, "include/linux/sock.h", "is not a regular file")


@pytest.mark.parametrize(("kind", "said"), [
    (tarfile.CHRTYPE, "is a character device"), (tarfile.BLKTYPE, "is a block device"),
    (tarfile.FIFOTYPE, "is a fifo"), (tarfile.GNUTYPE_SPARSE, "is a sparse file"),
    (tarfile.LNKTYPE, "is a hardlink (to '/etc/hostname')")])
def test_a_special_member_is_refused(trees: Trees, kind: bytes, said: str) -> None:
    archive = served(entry(HEADER, kind=kind, linkname="/etc/hostname"))
    refused(check(trees, archive), HEADER, said)
    if kind != tarfile.LNKTYPE:
        assert f"type: {HEADER!r} is a {said.split(' a ')[1]}" in metadata(archive).render()


def test_every_refusal_is_listed_with_the_ordinary_differences(trees: Trees) -> None:
    archive = served(entry(HEADER, b"int changed;\n"), entry("/etc/hostname", b"x\n"),
                     entry("../x.h", b"x\n"))
    result = check(trees, archive)
    assert result.summary == ("archive member '../x.h' escapes the tree: it has a '..' "
                              "component (and 1 more refused); 1 of 3 members differ from "
                              f"the tree: {HEADER}")
    assert "archive member '/etc/hostname' escapes the tree: it is absolute" in result.details


def zeros_xz(size: int) -> bytes:
    """``size`` zero bytes as xz, a MiB at a time: a few KiB for any size."""
    encoder = lzma.LZMACompressor(format=lzma.FORMAT_XZ, preset=1)
    parts = [encoder.compress(bytes(MIB)) for _ in range(size // MIB)]
    return b"".join([*parts, encoder.flush()])


def test_an_xz_bomb_stops_at_the_cap_with_memory_bounded() -> None:
    bomb = zeros_xz(64 * MIB)
    assert len(bomb) < 16 * 1024
    limits = Limits(tar_bytes=8 * MIB, build_tar_bytes=2 * MIB)
    tracemalloc.start()
    try:
        with pytest.raises(ArchiveError) as err:
            read_archive(bomb, limits)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(err.value).startswith("the served archive expands past 8 MiB (the build's is "
                                     "2.0 MiB): stopped decoding after 8388608 bytes")
    assert peak < 3 * limits.tar_bytes, f"{peak / MIB:.1f} MiB held for an 8 MiB cap"


def test_the_cap_follows_the_build_within_floor_and_ceiling() -> None:
    assert Limits.from_build(None).tar_bytes == 64 * MIB
    assert Limits.from_build(1000).tar_bytes == 64 * MIB
    assert Limits.from_build(34 * MIB).tar_bytes == 136 * MIB
    assert Limits.from_build(10_000 * MIB).tar_bytes == 1024 * MIB
    assert "(the build's size is unknown)" in Limits.from_build(None).too_large()


def test_xz_size_reads_the_index() -> None:
    for size in (0, 5, 3 * MIB):
        assert xz_size(lzma.compress(bytes(size), format=lzma.FORMAT_XZ)) == size
    assert xz_size(b"not xz at all, but long enough to look") is None


def test_a_served_bomb_fails_every_archive_check_naming_the_cap(tmp_path: Path) -> None:
    good = make_synthetic_build(tmp_path / "good")
    build = good.kernel_build()
    results = {r.name: r for r in check_archive(zeros_xz(80 * MIB), build)}
    mib = (xz_size(good.archive) or 0) / MIB
    for name in ARCHIVE_CHECKS:
        assert not results[name].ok
        assert results[name].summary.startswith(
            f"archive unreadable: the served archive expands past 64 MiB (the build's is "
            f"{mib:.1f} MiB)"), results[name].summary


def test_member_count_and_size_are_capped() -> None:
    many = served(*(entry(f"include/h{i}.h", b"x\n") for i in range(11)))
    with pytest.raises(ArchiveError, match="more than 10 members"):
        read_archive(many, Limits(members=10))
    big = served(entry(HEADER, bytes(2048)))
    with pytest.raises(ArchiveError, match=f"member '{HEADER}' claims 2048 bytes"):
        read_archive(big, Limits(member_bytes=1024))


def _fenced_lines(markdown: str) -> set[int]:
    """Line numbers inside fenced code blocks, by CommonMark's rule: a fence of N backticks
    closes at a line of at least N backticks (up to 3 spaces before, nothing but blanks after)."""
    inside: set[int] = set()
    opened = 0
    for number, line in enumerate(markdown.splitlines()):
        run = re.match(r" {0,3}(`{3,})(.*)$", line)
        if opened and run and len(run.group(1)) >= opened and not run.group(2).strip():
            opened = 0
        elif opened:
            inside.add(number)
        elif run and "`" not in run.group(2):
            opened = len(run.group(1))
    return inside


def test_backticks_in_a_header_stay_inside_the_reports_fence(tmp_path: Path) -> None:
    report = document.job_report(x86_job(tmp_path), RUN)
    archive = report["jobs"][0]["archive"]
    assert archive is not None
    hostile = [" ```", "## Verdict: clean [see](https://evil.example)", "+````"]
    archive["diffs"][0]["lines"] = [*archive["diffs"][0]["lines"], *hostile]
    archive["added"] = ["include/linux/a`b.h"]
    lines = render.markdown(report).splitlines()
    inside = _fenced_lines("\n".join(lines))
    injected = lines.index(hostile[1])
    assert injected in inside, "\n".join(lines[injected - 3 : injected + 3])
    assert "- added (1): ``include/linux/a`b.h``" in lines
