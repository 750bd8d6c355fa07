"""The tamper catalogue: ways a kheaders archive can be wrong, each one the checks must catch.

Every entry takes the good synthetic build (build.py: packed by the kernel's own rules) and
returns a copy broken in one way, either an edit of its archive or an edit of its trees
followed by a new archive from the same rules. It names the check that must fail and a text
its report must contain (so a catch is for the right reason, readably said). ``outcomes``
applies them all; tests/test_verify.py asserts every one is caught and pins the list by
name; the VM suite runs it as a self-test of the verifier.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from kheaders_suite.source.tree import KernelVersion
from kheaders_suite.verify.archive import Member, read_archive
from kheaders_suite.verify.btf import parse_btf
from kheaders_suite.verify.layout import compare_layouts
from kheaders_suite.verify.metadata import tar_sort_key
from kheaders_suite.verify.probe import parse_probe
from kheaders_suite.verify.result import CheckResult
from kheaders_suite.verify.runner import check_archive
from kheaders_suite.verify.strip import strip_comments
from tests.synthetic.build import SyntheticBuild, make_synthetic_build, repacked
from tests.synthetic.probe import PROBE_STRUCTS, synthetic_btf
from tests.synthetic.tarball import write_archive, write_tar

Apply = Callable[[SyntheticBuild, Path], SyntheticBuild]


@dataclass(frozen=True)
class Tamper:
    name: str
    description: str
    apply: Apply
    caught_by: str  # the check whose result must be a failure
    expect: str  # text the failing report must contain


def run_checks(build: SyntheticBuild) -> list[CheckResult]:
    """Every check on a synthetic build: the archive ones, then probe against BTF."""
    results = check_archive(build.guest_archive, build.kernel_build(), build.uname_r,
                            version=build.version, mtime=build.mtime)
    probe = parse_probe(build.probe_output)
    return [*results, compare_layouts(probe, parse_btf(build.btf), PROBE_STRUCTS)]


def _members(build: SyntheticBuild) -> list[Member]:
    return list(read_archive(build.archive).members)


def _repack(build: SyntheticBuild, dest: Path, members: list[Member]) -> SyntheticBuild:
    data = write_archive(members)
    return replace(build, root=dest, archive=data, guest_archive=data)


def _edit(build: SyntheticBuild, dest: Path, name: str,
          change: Callable[[Member], Member]) -> SyntheticBuild:
    """Re-pack with one member changed."""
    return _repack(build, dest, [change(m) if m.name == name else m for m in _members(build)])


def _add(build: SyntheticBuild, dest: Path, member: Member) -> SyntheticBuild:
    members = sorted([*_members(build), member], key=lambda m: tar_sort_key(m.name))
    return _repack(build, dest, members)


def _copy_trees(build: SyntheticBuild, dest: Path) -> SyntheticBuild:
    src, obj = dest / "src", dest / "objtree"
    shutil.copytree(build.source_dir, src, symlinks=True)
    shutil.copytree(build.objtree_headers, obj, symlinks=True)
    return replace(build, root=dest, source_dir=src, objtree_headers=obj)


def _file(build: SyntheticBuild, name: str, data: bytes) -> Member:
    return Member(name, f"./{name}", "file", 0o644, 0, 0, "", "", build.mtime, data)


SCHED = "include/linux/sched.h"
STALE = "arch/x86/include/generated/asm/syscalls_64.h"


def missing_member(b: SyntheticBuild, dest: Path) -> SyntheticBuild:
    return _repack(b, dest, [m for m in _members(b) if m.name != "include/linux/types.h"])


def extra_member(b: SyntheticBuild, dest: Path) -> SyntheticBuild:
    return _add(b, dest, _file(b, "include/linux/evil.h", b"int backdoor;\n"))


def non_header_member(b: SyntheticBuild, dest: Path) -> SyntheticBuild:
    kbuild = (b.source_dir / "include/uapi/Kbuild").read_bytes()
    return _add(b, dest, _file(b, "include/uapi/Kbuild", kbuild))


def utsversion_since_6_14(b: SyntheticBuild, dest: Path) -> SyntheticBuild:
    """A 6.14 kernel whose archive still has utsversion.h (41e86fe7ebe9 not applied)."""
    return replace(b, root=dest, version=KernelVersion(6, 14, 0))


def changed_byte(b: SyntheticBuild, dest: Path) -> SyntheticBuild:
    def flip(m: Member) -> Member:
        data = bytearray(m.data)
        data[data.index(b"pid")] ^= 0x20  # "pid" -> "Pid"
        return replace(m, data=bytes(data))
    return _edit(b, dest, SCHED, flip)


def comments_kept(b: SyntheticBuild, dest: Path) -> SyntheticBuild:
    raw = (b.source_dir / SCHED).read_bytes()
    return _edit(b, dest, SCHED, lambda m: replace(m, data=raw))


def symlink_retargeted(b: SyntheticBuild, dest: Path) -> SyntheticBuild:
    name = "include/dt-bindings/input/linux-event-codes.h"
    return _edit(b, dest, name, lambda m: replace(m, linkname="../../linux/evil.h"))


def stale_source_shadow(b: SyntheticBuild, dest: Path) -> SyntheticBuild:
    """An old in-tree build left a generated header in the source tree and the archive kept
    that copy over the object tree's (the cpio -pd bug that 1e8ca62b79de fixed with -u)."""
    t = _copy_trees(b, dest)
    stale = t.source_dir / STALE
    stale.parent.mkdir(parents=True)
    stale.write_text("/* generated long ago */\n__SYSCALL(0, old_read)\n")
    kept = strip_comments(stale.read_bytes())
    return _edit(t, dest, STALE, lambda m: replace(m, data=kept))


def config_changed(b: SyntheticBuild, dest: Path) -> SyntheticBuild:
    """.config changed but the archive was not regenerated (suspected since 0e0345b77ac4)."""
    text = b.dot_config.replace("CONFIG_NR_CPUS=64", "CONFIG_NR_CPUS=128")
    return replace(b, root=dest, dot_config=text.replace("CONFIG_EXT4_FS=m", "CONFIG_EXT4_FS=y"))


def wrong_release(b: SyntheticBuild, dest: Path) -> SyntheticBuild:
    """A consistent archive, but of another build than the kernel that serves it."""
    t = _copy_trees(b, dest)
    (t.objtree_headers / "include/generated/utsrelease.h").write_text(
        '#define UTS_RELEASE "6.12.0-other"\n')
    return repacked(t)


def owner_not_root(b: SyntheticBuild, dest: Path) -> SyntheticBuild:
    return _edit(b, dest, SCHED, lambda m: replace(m, uid=1000, gid=1000, uname="builder",
                                                    gname="builder"))


def mode_not_normalized(b: SyntheticBuild, dest: Path) -> SyntheticBuild:
    """umask 002 and no --mode: 0664 files, as before the 2024 mode normalization."""
    return _edit(b, dest, SCHED, lambda m: replace(m, mode=0o664))


def mtime_varies(b: SyntheticBuild, dest: Path) -> SyntheticBuild:
    return _edit(b, dest, SCHED, lambda m: replace(m, mtime=m.mtime + 3600))


def unsorted_names(b: SyntheticBuild, dest: Path) -> SyntheticBuild:
    """Plain path order ("sched.h" < "sched/"), not tar --sort=name's per-directory order."""
    return _repack(b, dest, sorted(_members(b), key=lambda m: m.name))


def unsafe_name(b: SyntheticBuild, dest: Path) -> SyntheticBuild:
    evil = Member("../evil.h", "./../evil.h", "file", 0o644, 0, 0, "", "", b.mtime, b"x\n")
    return _repack(b, dest, [*_members(b), evil])


def truncated_xz(b: SyntheticBuild, dest: Path) -> SyntheticBuild:
    cut = b.archive[: len(b.archive) // 2]
    return replace(b, root=dest, archive=cut, guest_archive=cut)


def not_xz(b: SyntheticBuild, dest: Path) -> SyntheticBuild:
    """A gzip'd tar of the right members (the wrong compressor)."""
    data = gzip.compress(write_tar(_members(b)), mtime=0)
    return replace(b, root=dest, archive=data, guest_archive=data)


def guest_short_read(b: SyntheticBuild, dest: Path) -> SyntheticBuild:
    """The guest's read of the sysfs file stopped short (a wrong bin_attribute size)."""
    return replace(b, root=dest, guest_archive=b.archive[: len(b.archive) // 2])


def guest_bit_flip(b: SyntheticBuild, dest: Path) -> SyntheticBuild:
    data = bytearray(b.archive)
    data[len(data) // 2] ^= 0x01
    return replace(b, root=dest, guest_archive=bytes(data))


def probe_layout_changed(b: SyntheticBuild, dest: Path) -> SyntheticBuild:
    """task_struct grew before pid and the archive was made again, but the kernel (its BTF)
    was not rebuilt: archive and trees agree, only the compiled probe can tell."""
    t = _copy_trees(b, dest)
    sched = t.source_dir / SCHED
    text = sched.read_text()
    grown = text.replace("\tpid_t pid;\n", "\tunsigned long ptrace;\n\tpid_t pid;\n")
    if grown == text:
        raise ValueError(f"{SCHED}: no 'pid_t pid;' line to grow the struct before")
    sched.write_text(grown)
    return repacked(t)


def btf_layout_changed(b: SyntheticBuild, dest: Path) -> SyntheticBuild:
    """The running kernel's sock.sk_rcvbuf sits elsewhere than the headers say."""
    return replace(b, root=dest, btf=synthetic_btf(sk_rcvbuf_bits=96))


def _t(apply: Apply, caught_by: str, expect: str) -> Tamper:
    doc = (apply.__doc__ or apply.__name__.replace("_", " ")).split("\n")[0]
    return Tamper(apply.__name__, doc, apply, caught_by, expect)


CATALOGUE: tuple[Tamper, ...] = (
    _t(missing_member, "member_list", "missing: include/linux/types.h"),
    _t(extra_member, "member_list", "extra:   include/linux/evil.h"),
    _t(non_header_member, "member_list", "extra:   include/uapi/Kbuild"),
    _t(utsversion_since_6_14, "member_list", "extra:   include/generated/utsversion.h"),
    _t(changed_byte, "content", "+\tPid_t pid;"),
    _t(comments_kept, "content", "+ * Define 'struct task_struct'."),
    _t(symlink_retargeted, "content", "symlink target"),
    _t(stale_source_shadow, "content", "stale source-tree header shadows"),
    _t(config_changed, "config", "CONFIG_NR_CPUS: .config gives 128, archive 64"),
    _t(wrong_release, "release", "archive is for '6.12.0-other'"),
    _t(owner_not_root, "metadata", "is 1000:1000 (builder:builder), want 0:0"),
    _t(mode_not_normalized, "metadata", "mode: ./include/linux/sched.h is 0664, want 0644"),
    _t(mtime_varies, "metadata", "mtime: ./include/linux/sched.h"),
    _t(unsorted_names, "metadata", "out of order"),
    _t(unsafe_name, "metadata", "unsafe name: './../evil.h'"),
    _t(truncated_xz, "metadata", "does not decode"),
    _t(not_xz, "metadata", "not an xz stream"),
    _t(guest_short_read, "identity", "guest is a prefix of the other"),
    _t(guest_bit_flip, "identity", "first difference at offset"),
    _t(probe_layout_changed, "layouts", "task_struct.pid: offset 16 from the headers, 4 in BTF"),
    _t(btf_layout_changed, "layouts", "sock.sk_rcvbuf: offset 4 from the headers, 12 in BTF"),
)


@dataclass(frozen=True)
class Outcome:
    tamper: Tamper
    caught: bool
    failing: tuple[CheckResult, ...]  # every failed check, the designated one among them

    def report(self) -> str:
        return "\n".join(r.render() for r in self.failing) or "(every check passed)"


class GoodBuildFails(AssertionError):
    """The untampered synthetic build fails a check: the catalogue would prove nothing."""


def outcomes(tmp: Path, catalogue: tuple[Tamper, ...] = CATALOGUE) -> list[Outcome]:
    """Apply every tamper to a fresh good build under ``tmp`` and run all checks on it."""
    good = make_synthetic_build(tmp / "good")
    bad = [r for r in run_checks(good) if not r.ok]
    if bad:
        raise GoodBuildFails("\n".join(r.render() for r in bad))
    out = []
    for tamper in catalogue:
        dest = tmp / tamper.name
        dest.mkdir(parents=True)
        failing = tuple(r for r in run_checks(tamper.apply(good, dest)) if not r.ok)
        caught = any(r.name == tamper.caught_by and tamper.expect in r.render(limit=200)
                     for r in failing)
        out.append(Outcome(tamper, caught, failing))
    return out


def run_catalogue(tmp: Path, catalogue: tuple[Tamper, ...] = CATALOGUE) -> list[tuple[str, bool]]:
    """(tamper name, caught) for every entry: caught means the designated check failed and
    its report says what the entry expects."""
    return [(o.tamper.name, o.caught) for o in outcomes(tmp, catalogue)]
