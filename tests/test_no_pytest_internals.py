"""The package uses pytest's public API only: no ``_pytest`` import, no FixtureDef, no private
attribute of pytest's objects (``item._request``, ``config._store``, ...). Private API changes
in any release; the plugin must not break with one."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import kheaders_suite

PACKAGE = Path(kheaders_suite.__file__).parent
# pytest's private names a plugin is tempted by (dropping a cached fixture, the JUnit
# writer's state), wherever they are looked up.
PRIVATE_NAMES = {"FixtureDef", "_request", "_fixturemanager", "_store", "_fixtureinfo",
                 "_initrequest", "_pyfuncitem", "_getini", "_inicache", "_tmp_path_factory"}
# The names pytest's objects go by in hooks and fixtures: no underscore attribute on them.
PYTEST_OBJECTS = {"item", "config", "request", "pytestconfig", "session", "metafunc",
                  "node", "report", "call", "excinfo", "parser", "terminalreporter",
                  "fixturedef", "nextitem", "collector"}
ATTRIBUTE_FUNCTIONS = {"getattr", "hasattr", "setattr", "delattr"}


def _dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _private_attribute(owner: ast.expr, attr: str) -> bool:
    if attr in PRIVATE_NAMES:
        return True
    base = owner
    while isinstance(base, ast.Attribute):  # item.config._x: its root names a pytest object
        base = base.value
    return (attr.startswith("_") and not _dunder(attr) and isinstance(base, ast.Name)
            and base.id in PYTEST_OBJECTS)


def _by_name(node: ast.Call) -> tuple[ast.expr, str] | None:
    """(object, attribute) of getattr(obj, "name", ...) and its kin."""
    if isinstance(node.func, ast.Name) and node.func.id in ATTRIBUTE_FUNCTIONS \
            and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) \
            and isinstance(node.args[1].value, str):
        return node.args[0], node.args[1].value
    return None


def findings(source: str, where: str) -> Iterator[str]:
    """Each use of pytest's private API in ``source``, as "<where>:<line>: <what>"."""
    for node in ast.walk(ast.parse(source, where)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) \
                else [node.module or ""]
            yield from (f"{where}:{line}: imports {m}" for m in modules
                        if m.split(".")[0] == "_pytest")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.split(".")[0] == "_pytest":
            yield f"{where}:{line}: names module {node.value}"
        elif isinstance(node, ast.Name) and node.id in PRIVATE_NAMES:
            yield f"{where}:{line}: uses {node.id}"
        elif isinstance(node, ast.Attribute) and _private_attribute(node.value, node.attr):
            yield f"{where}:{line}: reads .{node.attr}"
        elif isinstance(node, ast.Call) and (by_name := _by_name(node)) is not None \
                and _private_attribute(*by_name):
            yield f"{where}:{line}: reads .{by_name[1]} by name"


def test_the_package_uses_no_private_pytest_api() -> None:
    found = [f for path in sorted(PACKAGE.rglob("*.py"))
             for f in findings(path.read_text(), str(path.relative_to(PACKAGE.parent)))]
    assert found == [], "pytest's private API:\n" + "\n".join(found)


def test_the_plugin_is_scanned() -> None:
    assert (PACKAGE / "plugin" / "fixtures.py") in set(PACKAGE.rglob("*.py"))


def test_each_kind_of_private_use_is_found() -> None:
    source = '''
from _pytest.junitxml import xml_key
import _pytest.fixtures
from _pytest import nodes
def renew(item, config, request):
    defs = item._fixtureinfo.name2fixturedefs["guest"]
    defs[-1].finish(item._request)
    config._store.get(1)
    request._pyfuncitem
    getattr(item, "_fixtureinfo", None)
    item.config._inicache
    importlib.import_module("_pytest.junitxml")
    isinstance(defs[-1], FixtureDef)
'''
    found = [f.split(": ", 1)[1] for f in findings(source, "snippet.py")]
    assert sorted(found) == sorted([
        "imports _pytest.junitxml", "imports _pytest.fixtures", "imports _pytest",
        "reads ._fixtureinfo", "reads ._request", "reads ._store", "reads ._pyfuncitem",
        "reads ._fixtureinfo by name", "reads ._inicache", "names module _pytest.junitxml",
        "uses FixtureDef"])


def test_public_and_dunder_attributes_are_fine() -> None:
    source = '''
def hook(item, report, exc):
    item.stash[KEY] = True
    item.user_properties.append(("a", "b"))
    report.sections.append(("x", "y"))
    exc.__cause__
    getattr(item, "callspec", None)
    self._current
'''
    assert list(findings(source, "snippet.py")) == []
