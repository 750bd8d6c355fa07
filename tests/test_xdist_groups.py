"""xdist must keep one arch's targets on one worker (--dist=loadgroup), or every worker boots
every kernel. pytest 9.2 silently broke that (pytest-xdist#1386): this fails if it breaks."""

import re
import subprocess
import sys
from pathlib import Path

TESTS = """
import pytest

@pytest.mark.parametrize("i", [pytest.param(i, marks=pytest.mark.xdist_group("g"))
                               for i in range(6)])
def test_grouped(i):
    pass
"""


def test_one_group_runs_on_one_worker(tmp_path: Path) -> None:
    (tmp_path / "test_grouped.py").write_text(TESTS)
    out = subprocess.run(
        (sys.executable, "-m", "pytest", "-n", "2", "--dist=loadgroup", "-v", "-p",
         "no:cacheprovider", "-p", "no:kheaders_suite.plugin", "test_grouped.py"),
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    workers = set(re.findall(r"\[(gw\d+)\].*PASSED", out.stdout))
    assert len(workers) == 1, out.stdout
