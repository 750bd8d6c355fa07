"""The package's imports go one way: an import graph of every module, with the imports inside
functions and under TYPE_CHECKING counted too, has no cycle."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import kheaders_suite

PACKAGE = Path(kheaders_suite.__file__).parent


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under ``root`` (a package directory)."""
    names: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _known(name: str, names: Mapping[str, Path]) -> str | None:
    """The module ``name`` is, or lies in (an imported class, function or constant)."""
    while name not in names and "." in name:
        name = name.rsplit(".", 1)[0]
    return name if name in names else None


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom,
             names: Mapping[str, Path]) -> Iterator[str | None]:
    if isinstance(node, ast.Import):
        yield from (_known(alias.name, names) for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        parts = module.split(".")[: None if is_package else -1]
        parts = parts[: len(parts) - node.level + 1]
        base = ".".join([*parts, base] if base else parts)
    for alias in node.names:  # `from pkg import mod` is an edge to pkg.mod, not to pkg
        full = f"{base}.{alias.name}"
        yield full if full in names else _known(base, names)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Each module of the package -> the package's modules it imports, anywhere in its file."""
    names = module_names(root)
    graph: dict[str, set[str]] = {}
    for module, path in names.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                deps.update(d for d in _targets(module, path.name == "__init__.py", node, names)
                            if d is not None and d != module)
        graph[module] = deps
    return graph


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One cycle as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*path[path.index(dep):], dep]
            if dep not in state and (cycle := visit(dep)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_the_package_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph(PACKAGE))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_a_cycle_hidden_in_a_function_or_type_checking_is_found(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\n"
                              "if TYPE_CHECKING:\n    from pkg.sub.b import B\n")
    (pkg / "sub" / "b.py").write_text("def f() -> None:\n    from pkg import c\n")
    (pkg / "c.py").write_text("from .a import x\n")
    assert find_cycle(import_graph(pkg)) == ["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]


def test_importing_modules_from_a_package_is_no_edge_to_the_package(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from pkg.sub import x\n")
    (pkg / "sub" / "x.py").write_text("")
    (pkg / "y.py").write_text("from pkg.sub import x\n")
    graph = import_graph(pkg)
    assert graph["pkg.y"] == {"pkg.sub.x"}
    assert find_cycle(graph) is None
