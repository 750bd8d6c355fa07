"""The comment stripping gen_kheaders.sh applies to every member, done in Python.

The kernel runs, over each whole file (``BEGIN {undef $/}`` makes the file one record):

    perl -pi -e 's/\\/\\*((?!SPDX).)*?\\*\\///smg'

i.e. every ``/* ... */`` block that has no "SPDX" in it is removed, ``//`` comments stay, and
nothing knows about C strings: a "/*" inside a string literal opens a "comment" too. Members
are therefore equal to the tree's files only after this same transformation.

``PERL_PATTERN`` is the transcription (``/s`` is DOTALL; ``/m`` changes nothing without ``^``
or ``$``). ``strip_comments`` gives the same result without the per-character lookahead:
on the 6644 headers (44 MB) of a 6.12 tree's include/ and arch/x86/include/ it takes 0.3 s
where the regex takes 0.7 s, with identical output for every file. tests/test_verify.py
proves both equal to perl's own output.
"""

from __future__ import annotations

import re

PERL_PATTERN = re.compile(rb"/\*((?!SPDX).)*?\*/", re.S)
PERL_ONE_LINER = r"BEGIN {undef $/;}; s/\/\*((?!SPDX).)*?\*\///smg;"


def strip_comments_regex(data: bytes) -> bytes:
    """The literal transcription of the perl substitution (reference implementation)."""
    return PERL_PATTERN.sub(b"", data)


def strip_comments(data: bytes) -> bytes:
    """Same result as ``strip_comments_regex``, by scanning for "/*" and the next "*/".

    At a given "/*" the lazy, SPDX-tempered match can only end at the first "*/" after it
    (the lazy quantifier stops there), and it fails if "SPDX" starts anywhere before that
    "*/": then the engine moves on to the next start position, i.e. the next "/*".
    """
    if b"/*" not in data:
        return data
    out: list[bytes] = []
    pos = 0  # start of the text not yet copied to out
    search = 0  # where to look for the next "/*"
    while True:
        start = data.find(b"/*", search)
        if start < 0:
            break
        end = data.find(b"*/", start + 2)
        if end < 0:
            break  # no "*/" after this start, so none after any later start either
        if b"SPDX" in data[start + 2 : end]:
            search = start + 1
            continue
        out.append(data[pos:start])
        pos = search = end + 2
    out.append(data[pos:])
    return b"".join(out)
