"""The host-side archive verifier against synthetic builds and the tamper catalogue (no VM).

The synthetic builds' archives are made by the kernel's own rules (tests/synthetic/kbuild.py:
the vendored kernel/Makefile excerpt and gen_kheaders.sh of 6.12 and 7.3, run by make), so a
good build passing every check is the verifier agreeing with the kernel, not with itself.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from kheaders_suite.source.tree import KernelVersion
from kheaders_suite.verify import (
    CheckResult,
    config,
    content,
    expected_members,
    identity,
    member_list,
    metadata,
    read_archive,
    release,
    same_bytes,
)
from kheaders_suite.verify.archive import Member
from kheaders_suite.verify.btf import parse_btf
from kheaders_suite.verify.generated import autoconf_defines, uts_release
from kheaders_suite.verify.layout import StructLayout
from kheaders_suite.verify.metadata import first_difference, tar_sort_key
from kheaders_suite.verify.probe import bcc_include_flags
from kheaders_suite.verify.strip import PERL_ONE_LINER, strip_comments, strip_comments_regex
from tests.synthetic.build import VERSIONS, SyntheticBuild, make_synthetic_build
from tests.synthetic.tamper import CATALOGUE, Outcome, outcomes, run_catalogue, run_checks
from tests.synthetic.tarball import write_archive, write_tar

SYNTHETIC_MEMBERS = {
    "arch/x86/include/asm/page.h",
    "arch/x86/include/generated/asm/syscalls_64.h",
    "arch/x86/include/generated/uapi/asm/unistd_64.h",
    "arch/x86/include/uapi/asm/unistd.h",
    "include/dt-bindings/input/linux-event-codes.h",
    "include/generated/autoconf.h",
    "include/generated/uapi/linux/version.h",
    "include/generated/utsrelease.h",
    "include/generated/utsversion.h",
    "include/linux/kconfig.h",
    "include/linux/sched.h",
    "include/linux/sched/signal.h",
    "include/linux/stddef.h",
    "include/linux/types.h",
    "include/net/sock.h",
    "include/uapi/linux/input-event-codes.h",
}
# Every entry by name: dropping or renaming one must fail test_catalogue_is_pinned.
PINNED_CATALOGUE = (
    "missing_member", "extra_member", "non_header_member", "utsversion_since_6_14",
    "changed_byte", "comments_kept", "symlink_retargeted", "stale_source_shadow",
    "config_changed", "wrong_release", "owner_not_root", "mode_not_normalized",
    "mtime_varies", "unsorted_names", "unsafe_name", "truncated_xz", "not_xz",
    "guest_short_read", "guest_bit_flip", "probe_layout_changed", "btf_layout_changed",
)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> SyntheticBuild:
    return make_synthetic_build(tmp_path_factory.mktemp("good"))


@pytest.fixture(scope="module")
def caught(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    return {o.tamper.name: o for o in outcomes(tmp_path_factory.mktemp("tamper"))}


@pytest.mark.parametrize("version", VERSIONS, ids=str)
def test_good_build_passes_every_check(version: KernelVersion, tmp_path: Path) -> None:
    """The kernel's own rules packed the archive and gcc measured the probe: every check
    must agree with them, for the script before the 6.17 rewrite and after it."""
    build = make_synthetic_build(tmp_path, version)
    results = run_checks(build)
    assert [r.name for r in results] == ["identity", "member_list", "content", "config",
                                         "release", "metadata", "layouts"]
    for result in results:
        result.require()


@pytest.mark.parametrize("version", VERSIONS, ids=str)
def test_good_archive_follows_the_version(version: KernelVersion, tmp_path: Path) -> None:
    """Both object trees hold utsversion.h: 6.12's script packs it, 7.3's rules leave it out
    (41e86fe7ebe9); the rest is the same 16 headers."""
    names = read_archive(make_synthetic_build(tmp_path, version).archive).names()
    utsversion = "include/generated/utsversion.h"
    assert names == (SYNTHETIC_MEMBERS if version < KernelVersion(6, 14)
                     else SYNTHETIC_MEMBERS - {utsversion})


def _fields(layouts: dict[str, StructLayout], name: str) -> tuple[int, dict[str, tuple[int, ...]]]:
    layout = layouts[name]
    return layout.size, {m: (f.bit_offset, f.size or 0, f.bitfield_size)
                         for m, f in layout.members.items()}


@pytest.mark.skipif(shutil.which("pahole") is None, reason="pahole not installed")
def test_synthetic_btf_is_what_pahole_encodes(good: SyntheticBuild, tmp_path: Path) -> None:
    """The kernel's side of the layout check is written by hand (probe.synthetic_btf): pahole,
    encoding the DWARF of the archive's headers as a DEBUG_INFO_BTF build does, must agree."""
    root, obj, btf = tmp_path / "kheaders", tmp_path / "structs.o", tmp_path / "structs.btf"
    root.mkdir()
    (tmp_path / "a.tar.xz").write_bytes(good.archive)
    subprocess.run(("tar", "-xJf", str(tmp_path / "a.tar.xz"), "-C", str(root)), check=True,
                   timeout=60)
    source = tmp_path / "structs.c"
    source.write_text("#include <linux/sched.h>\n#include <net/sock.h>\n"
                      "struct task_struct t; struct sock s;\n")
    subprocess.run(("gcc", *bcc_include_flags(str(root), good.srcarch), "-g", "-c", "-o",
                    str(obj), str(source)), check=True, timeout=60)
    subprocess.run(("pahole", f"--btf_encode_detached={btf}", str(obj)), check=True,
                   timeout=60, capture_output=True)
    encoded, written = parse_btf(btf.read_bytes()), parse_btf(good.btf)
    for name in ("task_struct", "sock", "sock_common"):
        assert _fields(written, name) == _fields(encoded, name), name


def test_repacking_the_kernels_archive_changes_nothing(good: SyntheticBuild) -> None:
    """Tampers re-pack the good archive's members with tarball.py: for unchanged members that
    gives back GNU tar's and xz's bytes, so a tamper differs only where it means to."""
    assert write_archive(read_archive(good.archive).members) == good.archive


# -- comment stripping -----------------------------------------------------------------------

TRICKY = [
    b"",
    b"no comment at all\n",
    b"/* a */ int x; /* b */\n",
    b"/* SPDX-License-Identifier: GPL-2.0 */\n/* gone */\n",
    b"/* outer /* nested-looking */ still here */\n",
    b"/**/ /***/ /*/ */ /* **/\n",
    b'char *s = "/* not a comment in C */"; int y; /* real */\n',
    b'char *s = "/*"; int kept_by_c_but_not_by_perl; /* x */ int z;\n',
    b"// line comment /* with a block */ after\nint a; // /* open\nint b; /* close */\n",
    b"/* SPDX in the middle: SPDX */ int q; /* plain */\n",
    b"/* starts plain\n * then SPDX-License-Identifier: MIT\n */ int r; /* tail */\n",
    b"/* unterminated\nint s;\n",
    b"a/*b*/c/*SPD*/d/*SPDX*/e/*SPDXX*/f\n",
    b"x /* \xff\xfe binary \x00 */ y\n",
    b"/* one */\r\n/* two */\r\n",
]


def test_strip_examples() -> None:
    assert strip_comments(b"/* a */ int x; /* b */\n") == b" int x; \n"
    assert strip_comments(b"/* SPDX-License-Identifier: GPL-2.0 */\n/* gone */\n") == \
        b"/* SPDX-License-Identifier: GPL-2.0 */\n\n"
    assert strip_comments(b"/* outer /* nested-looking */ still here */\n") == \
        b" still here */\n"
    assert strip_comments(b'char *s = "/*"; int k; /* x */ int z;\n') == \
        b'char *s = " int z;\n'
    for sample in TRICKY:
        assert strip_comments(sample) == strip_comments_regex(sample), sample


PERL_SKIP = pytest.mark.skipif(shutil.which("perl") is None, reason="perl not installed")
SEPARATOR = b"\x01kheaders-sample\x01"


@PERL_SKIP
def test_strip_equals_perl_on_tricky_files(tmp_path: Path) -> None:
    """Both Python versions against the kernel's own command line, perl -pi on files."""
    paths = []
    for i, sample in enumerate(TRICKY):
        path = tmp_path / f"{i}.h"
        path.write_bytes(sample)
        paths.append(str(path))
    subprocess.run(("perl", "-pi", "-e", PERL_ONE_LINER, *paths), check=True, timeout=60)
    for sample, name in zip(TRICKY, paths, strict=True):
        want = Path(name).read_bytes()
        assert strip_comments(sample) == want, sample
        assert strip_comments_regex(sample) == want, sample


@PERL_SKIP
def test_strip_equals_perl_on_random_inputs() -> None:
    """600 random strings of comment-ish atoms, the same substitution run by perl on each
    (one process, records split by a separator no sample contains)."""
    rng = random.Random(20190426)
    atoms = [b"/", b"*", b"/*", b"*/", b"SPDX", b"SPD", b"X", b"a", b"\n", b'"', b"//"]
    samples = [b"".join(rng.choice(atoms) for _ in range(rng.randint(0, 24)))
               for _ in range(600)]
    script = ("$/ = \"\\x01kheaders-sample\\x01\"; while (<STDIN>) { chomp; "
              "s/\\/\\*((?!SPDX).)*?\\*\\///smg; print $_, $/; }")
    out = subprocess.run(("perl", "-e", script), input=b"".join(s + SEPARATOR for s in samples),
                         capture_output=True, check=True, timeout=60).stdout
    wants = out.split(SEPARATOR)[:-1]
    assert len(wants) == len(samples)
    for sample, want in zip(samples, wants, strict=True):
        assert strip_comments(sample) == want, sample
        assert strip_comments_regex(sample) == want, sample


# -- member list -----------------------------------------------------------------------------

def test_expected_members_of_synthetic_tree(good: SyntheticBuild) -> None:
    got = expected_members(good.source_dir, good.objtree_headers, "x86", good.version)
    assert got == SYNTHETIC_MEMBERS


def test_expected_members_follow_the_version(good: SyntheticBuild) -> None:
    def at(*v: int) -> set[str]:
        return expected_members(good.source_dir, good.objtree_headers, "x86", KernelVersion(*v))

    # 5.2 packed non-headers and the script itself; 7199ff7d7400 (5.3) only *.h.
    assert at(5, 2) - at(5, 3) == {"include/uapi/Kbuild", "kernel/gen_kheaders.sh"}
    # 41e86fe7ebe9 (6.14) always leaves utsversion.h out.
    assert at(6, 13) - at(6, 14) == {"include/generated/utsversion.h"}
    # 626c54af3576 (6.17): from the object tree only its generated dirs (same set here).
    assert at(6, 17) == at(6, 14)


def test_expected_members_617_prunes_source_generated(tmp_path: Path) -> None:
    build = make_synthetic_build(tmp_path)
    stale = build.source_dir / "include/generated/stale.h"
    stale.parent.mkdir()
    stale.write_text("#define STALE 1\n")
    (build.objtree_headers / "include/linux").mkdir()
    (build.objtree_headers / "include/linux/objonly.h").write_text("\n")
    v616 = expected_members(build.source_dir, build.objtree_headers, "x86", KernelVersion(6, 16))
    v617 = expected_members(build.source_dir, build.objtree_headers, "x86", KernelVersion(6, 17))
    assert {"include/generated/stale.h", "include/linux/objonly.h"} <= v616
    assert not {"include/generated/stale.h", "include/linux/objonly.h"} & v617


@pytest.mark.parametrize("prefix", ["./", ""])
@pytest.mark.parametrize("with_dirs", [True, False])
def test_member_list_reads_both_namings(good: SyntheticBuild, prefix: str,
                                        with_dirs: bool) -> None:
    members = [replace(m, raw_name=prefix + m.name + ("/" if m.kind == "dir" else ""))
               for m in read_archive(good.archive).members
               if m.name and (with_dirs or m.kind != "dir")]
    result = member_list(write_archive(members), SYNTHETIC_MEMBERS)
    result.require()
    assert result.summary == "16 members, 16 required: lists agree"


def test_member_list_optional_utsversion(good: SyntheticBuild) -> None:
    without = SYNTHETIC_MEMBERS - {"include/generated/utsversion.h"}
    assert not member_list(good.archive, without).ok
    assert member_list(good.archive, without, {"include/generated/utsversion.h"}).ok


# -- bytes and metadata ----------------------------------------------------------------------

def test_identity_reports_sizes_and_offset() -> None:
    assert identity(b"abc", b"abc").ok
    cut = identity(b"abcdef"[:4], b"abcdef")
    assert not cut.ok
    assert cut.summary == "guest 4 bytes, build 6 bytes: guest is a prefix of the other (cut at 4)"
    flip = identity(b"x" * 1000 + b"A" + b"y", b"x" * 1000 + b"B" + b"y")
    assert "first difference at offset 1000 (0x3e8)" in flip.summary
    assert "guest 41" in flip.render()
    assert "build 42" in flip.render()
    assert first_difference(b"", b"") is None
    assert first_difference(b"", b"a") == 0


def test_same_bytes_two_builds_of_one_key(tmp_path: Path) -> None:
    one = make_synthetic_build(tmp_path / "one")
    two = make_synthetic_build(tmp_path / "two")
    same_bytes(one.archive, two.archive).require()
    other = make_synthetic_build(tmp_path / "three", with_utsversion=False)
    assert not same_bytes(one.archive, other.archive).ok


def test_tar_sort_is_per_directory() -> None:
    """As GNU tar 1.34 --sort=name lists them (checked by hand): not plain path order,
    where "-" and "." sort before "/"."""
    names = ["include/linux/sched.h", "include/linux/sched/signal.h", "include/linux/sched",
             "include", "", "arch/x86/include/asm/page.h", "include/linux-foo.h"]
    want = ["", "arch/x86/include/asm/page.h", "include", "include/linux/sched",
            "include/linux/sched/signal.h", "include/linux/sched.h", "include/linux-foo.h"]
    assert sorted(names, key=tar_sort_key) == want
    assert sorted(names) != want


@pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar not installed")
def test_synthetic_tar_is_what_gnu_tar_makes(good: SyntheticBuild, tmp_path: Path) -> None:
    """Stage the members on disk and run tar with gen_kheaders.sh's options: same bytes."""
    stage = tmp_path / "stage"
    members = read_archive(good.archive).members
    for m in members:
        path = stage / m.name
        if m.kind == "dir":
            path.mkdir(parents=True, exist_ok=True)
        elif m.kind == "symlink":
            os.symlink(m.linkname, path)
        else:
            path.write_bytes(m.data)
    out = tmp_path / "gnu.tar"
    subprocess.run(("tar", "--mtime=2019-04-26 00:00:00 UTC", "--owner=0", "--group=0",
                    "--sort=name", "--numeric-owner", "--mode=u=rw,go=r,a+X",
                    "-cf", str(out), "-C", f"{stage}/", "."), check=True, timeout=60)
    assert out.read_bytes() == write_tar(members)


def test_metadata_checks_given_mtime(good: SyntheticBuild) -> None:
    metadata(good.archive, good.mtime).require()
    wrong = metadata(good.archive, good.mtime + 1)
    assert not wrong.ok
    assert f"has {good.mtime}, want {good.mtime + 1}" in wrong.render()


def test_metadata_modes_can_be_waived(good: SyntheticBuild) -> None:
    members = [replace(m, mode=0o664) if m.kind == "file" else m
               for m in read_archive(good.archive).members]
    data = write_archive(members)
    assert not metadata(data).ok
    assert metadata(data, require_modes=False).ok


# -- config and release ----------------------------------------------------------------------

def test_autoconf_defines_follow_confdata() -> None:
    text = ('CONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_D="x \\"q\\""\n'
            "CONFIG_E=-3\nCONFIG_F=0x1f\nCONFIG_G=ff\nCONFIG_H=n\n")
    assert autoconf_defines(text) == {
        "CONFIG_A": "1", "CONFIG_B_MODULE": "1", "CONFIG_D": '"x \\"q\\""', "CONFIG_E": "-3",
        "CONFIG_F": "0x1f", "CONFIG_G": "0xff"}


def test_config_passes_and_names_ikheaders(good: SyntheticBuild) -> None:
    result = config(good.archive, good.dot_config)
    result.require()
    assert "CONFIG_IKHEADERS" in result.summary


def test_config_ikheaders_module(good: SyntheticBuild) -> None:
    text = good.dot_config.replace("CONFIG_IKHEADERS=y", "CONFIG_IKHEADERS=m")
    result = config(good.archive, text)
    assert not result.ok
    assert "CONFIG_IKHEADERS_MODULE: .config gives 1, archive lacks it" in result.details
    assert "CONFIG_IKHEADERS: archive defines 1, .config does not set it" in result.details


def test_config_without_ikheaders(good: SyntheticBuild) -> None:
    text = good.dot_config.replace("CONFIG_IKHEADERS=y", "# CONFIG_IKHEADERS is not set")
    result = config(good.archive, text)
    assert not result.ok
    assert result.details[0].startswith("CONFIG_IKHEADERS is not y or m")


def test_release(good: SyntheticBuild) -> None:
    release(good.archive, good.release + "\n").require()
    other = release(good.archive, "6.12.0-other")
    assert other.summary == "archive is for '6.12.0-synthetic', guest runs '6.12.0-other'"


@pytest.mark.parametrize(("text", "want"), [
    (b'/* x */\n#define UTS_RELEASE "6.12.117-dirty"\n', "6.12.117-dirty"),
    (b'#define  UTS_RELEASE\t""\n', ""),
    (b'#define UTS_VERSION "#1"\n', None),
    (b'// #define UTS_RELEASE "6.1"\n', None),
])
def test_uts_release_reads_the_define(text: bytes, want: str | None) -> None:
    assert uts_release(text) == want


def test_generated_headers_missing(good: SyntheticBuild) -> None:
    members = [m for m in read_archive(good.archive).members
               if not m.name.startswith("include/generated/")]
    data = write_archive(members)
    assert config(data, good.dot_config).summary == \
        "include/generated/autoconf.h is not in the archive"
    assert release(data, good.release).summary == \
        "include/generated/utsrelease.h is not in the archive"


# -- content ---------------------------------------------------------------------------------

def test_content_prefers_object_tree(tmp_path: Path) -> None:
    """An identical-name source header that differs is only a note while the archive has
    the object tree's copy."""
    build = make_synthetic_build(tmp_path)
    shadow = build.source_dir / "include/generated/utsrelease.h"
    shadow.parent.mkdir()
    shadow.write_text('#define UTS_RELEASE "stale"\n')
    result = content(build.archive, build.source_dir, build.objtree_headers)
    result.require()
    assert result.details == ["note: include/generated/utsrelease.h: stale source-tree copy "
                              "differs from the object tree's (the archive has the object "
                              "tree's)"]


# -- bad archives ----------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "says"), [
    (b"", "not an xz stream"),
    (b"\x1f\x8b\x08garbage", "not an xz stream: first bytes 1f 8b 08"),
    (b"\xfd7zXZ\x00truncated", "does not decode"),
])
def test_undecodable_archive_is_a_failed_result(good: SyntheticBuild, data: bytes,
                                                says: str) -> None:
    results: list[CheckResult] = [
        member_list(data, SYNTHETIC_MEMBERS),
        content(data, good.source_dir, good.objtree_headers),
        config(data, good.dot_config), release(data, good.release), metadata(data)]
    for result in results:
        assert not result.ok
        assert says in result.summary


def test_trailing_data_after_the_stream(good: SyntheticBuild) -> None:
    assert metadata(good.archive + b"\0" * 8).ok  # xz stream padding
    result = metadata(good.archive + b"junk")
    assert not result.ok
    assert "4 bytes of trailing data after the xz stream" in result.summary


def test_xz_of_garbage_is_not_a_tar() -> None:
    import lzma

    result = metadata(lzma.compress(b"not a tar at all" * 100, format=lzma.FORMAT_XZ))
    assert not result.ok
    assert "not a valid tar" in result.summary


def test_render_limits_details() -> None:
    result = CheckResult("x", False, "many", [f"d{i}" for i in range(50)])
    text = result.render(limit=3)
    assert text.splitlines() == ["[FAIL] x: many", "    d0", "    d1", "    d2",
                                 "    ... and 47 more"]
    with pytest.raises(AssertionError, match="many"):
        result.require()


# -- the tamper catalogue --------------------------------------------------------------------

def test_catalogue_is_pinned() -> None:
    """Removing, renaming or adding an entry is a decision this list has to record."""
    assert tuple(t.name for t in CATALOGUE) == PINNED_CATALOGUE
    assert {t.caught_by for t in CATALOGUE} == {"identity", "member_list", "content", "config",
                                                "release", "metadata", "layouts"}


@pytest.mark.parametrize("name", ["probe_layout_changed", "btf_layout_changed"])
def test_layout_tampers_only_the_probe_sees(caught: dict[str, Outcome], name: str) -> None:
    """Archive, trees and kernel are each consistent: only gcc's layout against BTF differs."""
    assert [r.name for r in caught[name].failing] == ["layouts"]


@pytest.mark.parametrize("name", [t.name for t in CATALOGUE])
def test_tamper_is_caught_readably(caught: dict[str, Outcome], name: str) -> None:
    outcome = caught[name]
    assert outcome.caught, f"{name} ({outcome.tamper.description}) slipped through:\n" \
        + outcome.report()


def test_whole_catalogue_caught(caught: dict[str, Outcome],
                                capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(f"\ntamper catalogue: {sum(o.caught for o in caught.values())} of "
              f"{len(caught)} caught")
    assert all(o.caught for o in caught.values()), [n for n, o in caught.items() if not o.caught]


def test_run_catalogue_returns_names_and_verdicts(tmp_path: Path) -> None:
    assert run_catalogue(tmp_path, CATALOGUE[:2]) == [("missing_member", True),
                                                      ("extra_member", True)]


def test_stale_shadow_report_names_the_member(caught: dict[str, Outcome]) -> None:
    text = caught["stale_source_shadow"].report()
    assert "arch/x86/include/generated/asm/syscalls_64.h: stale source-tree header shadows " \
           "the object tree's" in text
    assert "-__SYSCALL(0, read)" in text
    assert "+__SYSCALL(0, old_read)" in text


def test_member_mtime_and_owner_render(caught: dict[str, Outcome]) -> None:
    text = caught["owner_not_root"].report()
    assert text.startswith("[FAIL] metadata: 1 problem (owner) in 38 members")


def test_kernel_build_record(good: SyntheticBuild) -> None:
    build = good.kernel_build()
    assert build.archive is not None
    assert build.archive.read_bytes() == good.archive
    assert build.config.read_text() == good.dot_config
    assert isinstance(read_archive(good.archive).members[0], Member)
