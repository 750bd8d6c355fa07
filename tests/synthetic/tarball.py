"""Re-packing archive members, for tampers and broken fixtures that edit a good archive.

Only the writing is modelled here, not what goes in: members come from an archive the kernel's
rules made (kbuild.py), and tests/test_verify.py checks that GNU tar with gen_kheaders.sh's
options writes the same bytes as ``write_tar`` for them.
"""

from __future__ import annotations

import io
import lzma
import tarfile
from collections.abc import Iterable

from kheaders_suite.verify.archive import Member

KINDS = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
         "hardlink": tarfile.LNKTYPE, "other": tarfile.FIFOTYPE}


def write_tar(members: Iterable[Member]) -> bytes:
    """An uncompressed GNU-format tar of the members, in the order given."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for m in members:
            info = tarfile.TarInfo(m.raw_name)
            info.type, info.mode, info.mtime = KINDS[m.kind], m.mode, m.mtime
            info.uid, info.gid, info.uname, info.gname = m.uid, m.gid, m.uname, m.gname
            info.linkname, info.size = m.linkname, len(m.data)
            tar.addfile(info, io.BytesIO(m.data) if m.kind == "file" else None)
    return buf.getvalue()


def write_archive(members: Iterable[Member]) -> bytes:
    """tar, then xz with xz(1)'s defaults (CRC64), as ``tar -I $XZ`` does."""
    return lzma.compress(write_tar(members), format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64)
