from __future__ import annotations

import pytest

from kheaders_suite.text import first_line


@pytest.mark.parametrize(("text", "want"), [
    ("error: a\nerror: b\n", "error: a"),
    ("\n  \n  fatal: not a git repository  \nmore", "fatal: not a git repository"),
    ("", ""),
    (" \n\t\n", ""),
    (None, ""),
])
def test_first_line_is_the_first_that_is_not_blank(text: str | None, want: str) -> None:
    assert first_line(text) == want
