"""Step "verify": host-side checks of a kheaders archive, pure Python, no VM.

Inputs are plain data (the archive bytes read from the guest, paths from a ``KernelBuild``,
.config text, ``uname -r``); every check returns a ``CheckResult`` and never raises on a bad
archive. One module per check:

    archive.py    read tar.xz with lzma + tarfile; names normalized ("./" dropped); Limits
                  bound what a hostile archive may expand to
    metadata.py   identity (guest vs build bytes), metadata (0:0, modes, order, mtime),
                  same_bytes (two builds of one key)
    members.py    expected_members from the trees, per kernel version; member_list;
                  safe_member: the one way a member name meets a host path
    content.py    content: members equal the tree files after comment stripping (strip.py)
    generated.py  config (autoconf.h vs .config), release (UTS_RELEASE vs uname -r)
    probe.py      probe_source / parse_probe: layouts as the archive's headers see them
    btf.py        parse_btf: layouts as the running kernel's BTF has them
    layout.py     compare_layouts: every struct and field asked for, agreeing with BTF
    image.py      read_image: the archive and release the kernel image itself carries
    runner.py     check_archive: all archive checks against one KernelBuild

What the checks are proven against lives with the tests: tests/synthetic/ (a fake build whose
archive the kernel's own gen_kheaders.sh makes, and the tamper catalogue).
"""

from kheaders_suite.verify.archive import Archive, ArchiveError, Member, read_archive
from kheaders_suite.verify.btf import BtfError, parse_btf
from kheaders_suite.verify.content import content
from kheaders_suite.verify.generated import config, release
from kheaders_suite.verify.layout import Field, StructLayout, compare_layouts
from kheaders_suite.verify.members import expected_members, member_list, optional_members
from kheaders_suite.verify.metadata import identity, metadata, same_bytes
from kheaders_suite.verify.probe import (
    DEFAULT_STRUCTS,
    bcc_include_flags,
    parse_probe,
    probe_command,
    probe_source,
)
from kheaders_suite.verify.result import CheckResult
from kheaders_suite.verify.runner import check_archive, report
from kheaders_suite.verify.strip import strip_comments

__all__ = [
    "DEFAULT_STRUCTS", "Archive", "ArchiveError", "BtfError", "CheckResult", "Field", "Member",
    "StructLayout", "bcc_include_flags", "check_archive", "compare_layouts", "config",
    "content", "expected_members", "identity", "member_list", "metadata", "optional_members",
    "parse_btf", "parse_probe", "probe_command", "probe_source", "read_archive", "release",
    "report", "same_bytes", "strip_comments",
]
