"""Nothing runs as a shell string built from input (issue 13): every command the suite runs,
on the host or in the guest, is an argv. Checked on the source itself, so a new
``shell=True``, ``os.system`` or a shell snippet with values pasted in fails here."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
SOURCES = sorted([*(ROOT / "src").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")])
SHELLS = {"os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput"}


def dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def pasted(node: ast.expr) -> bool:
    """A string built from values at run time: an f-string with fields, % or + or .format."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp):
        return True
    return isinstance(node, ast.Call) and dotted(node.func).endswith(".format")


def problems(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = dotted(node.func)
        if name in SHELLS:
            yield node.lineno, f"{name}() runs a shell string"
        for kw in node.keywords:
            if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant)
                                          and kw.value.value is False):
                yield node.lineno, "shell=True"
        if name.endswith("run_script") and node.args and pasted(node.args[0]):
            yield node.lineno, "run_script() with values pasted into the script"
        if node.args and shell_snippet_pasted(node.args[0]):
            yield node.lineno, "sh -c with values pasted into the script"


def shell_snippet_pasted(argv: ast.expr) -> bool:
    """An argv literal ("sh", "-c", <script>) whose script is built from values."""
    if not isinstance(argv, ast.Tuple | ast.List) or len(argv.elts) < 3:
        return False
    first, flag, script = argv.elts[:3]
    return (isinstance(first, ast.Constant) and first.value in ("sh", "bash")
            and isinstance(flag, ast.Constant) and flag.value == "-c" and pasted(script))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_shell_strings_built_from_values(path: Path) -> None:
    found = [f"{path.name}:{line}: {what}" for line, what in problems(ast.parse(path.read_text()))]
    assert not found, found


@pytest.mark.parametrize("code", [
    "import subprocess\nsubprocess.run('make ' + target, shell=True)",
    "import os\nos.system('rm -rf ' + path)",
    "guest.run_script(f'cat {path}')",
    "guest.run(('sh', '-c', f'echo {value} > /x'))",
])
def test_the_scan_catches_each_kind(code: str) -> None:
    assert list(problems(ast.parse(code)))


def test_the_scan_lets_constant_snippets_through() -> None:
    assert not list(problems(ast.parse(
        "guest.run_script('dmesg | tail')\nrun(('sh', '-c', 'exit 0'))\n"
        "subprocess.run(('make', f'-j{jobs}'), shell=False)")))
