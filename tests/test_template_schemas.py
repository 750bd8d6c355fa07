"""ci/templates/ against the schemas GitHub Actions and GitLab CI are checked with.

check-jsonschema (the test extra) validates each template against the schema it vendors
(SchemaStore's github-workflow and GitLab's own ci.json, offline), as its pre-commit hooks
check-github-workflows and check-gitlab-ci do. tests/test_ci_templates.py holds the
templates to the code they drive; this holds them to what the CI systems accept. Each
template's broken copies (an unknown job key, a value of the wrong type) must fail, and fail
naming the fault, so a validator that accepts anything cannot pass here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from kheaders_suite.catalog.paths import REPO_ROOT

VALIDATOR = Path(sys.executable).parent / "check-jsonschema"
TIMEOUT = 120  # seconds; one run takes about one
Doc = dict[Any, Any]


@dataclass(frozen=True)
class Template:
    path: Path
    schema: str  # a check-jsonschema --builtin-schema name
    transform: tuple[str, ...] = ()  # --data-transform, as check-jsonschema's hook has it


@dataclass(frozen=True)
class Breakage:
    name: str  # the broken copy's file name, without .yml
    mutate: Callable[[Doc], None]
    says: str  # what the validator's message must contain


GITHUB = Template(REPO_ROOT / "ci" / "templates" / "github-actions.yml",
                  "vendor.github-workflows")
GITLAB = Template(REPO_ROOT / "ci" / "templates" / "gitlab-ci.yml", "vendor.gitlab-ci",
                  ("--data-transform", "gitlab-ci"))

BREAKAGES: dict[Template, tuple[Breakage, ...]] = {
    GITHUB: (
        Breakage("unknown-key", lambda d: d["jobs"]["test"].update({"runs_on": "ubuntu-latest"}),
                 "'runs_on' was unexpected"),
        Breakage("wrong-type", lambda d: d["jobs"]["test"].update({"timeout-minutes": "6 h"}),
                 "'6 h' is not of type 'number'"),
    ),
    GITLAB: (
        Breakage("unknown-key", lambda d: d["test"].update({"timeuot": "6h"}),
                 "'timeuot' was unexpected"),
        Breakage("wrong-type", lambda d: d["report"].update({"needs": "test"}),
                 "'test' is not of type 'array'"),
    ),
}


def validator_argv(program: Path, template: Template, paths: Sequence[Path]) -> tuple[str, ...]:
    """One check-jsonschema run over ``paths``, its findings as JSON on stdout."""
    return (str(program), "--output-format", "json", "--builtin-schema", template.schema,
            *template.transform, *map(str, paths))


@dataclass(frozen=True)
class Validation:
    rc: int
    findings: dict[str, Any]  # check-jsonschema's JSON report
    stderr: str

    def errors_of(self, path: Path) -> str:
        """Every error check-jsonschema reported for ``path``, as one text."""
        return json.dumps([e for e in self.findings.get("errors", [])
                           if Path(e.get("filename", "")).name == path.name])


def validate(template: Template, paths: Sequence[Path]) -> Validation:
    __tracebackhide__ = True
    if not VALIDATOR.is_file():
        pytest.skip(f"check-jsonschema is not installed next to {sys.executable} "
                    "(pip install -e '.[test]')")
    run = subprocess.run(validator_argv(VALIDATOR, template, paths), capture_output=True,
                         text=True, timeout=TIMEOUT, check=False)
    try:
        findings = json.loads(run.stdout)
    except ValueError:
        pytest.fail(f"check-jsonschema wrote no JSON (rc {run.returncode}):\n"
                    f"{run.stdout}\n{run.stderr}")
    return Validation(run.returncode, findings, run.stderr)


def load_template(path: Path) -> Doc:
    """The template as data. PyYAML reads GitHub's bare ``on`` as True: back to "on"."""
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict)
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def broken_copy(template: Template, breakage: Breakage, directory: Path) -> Path:
    doc = load_template(template.path)
    breakage.mutate(doc)
    path = directory / f"{template.path.stem}-{breakage.name}.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


TEMPLATES = pytest.mark.parametrize("template", [GITHUB, GITLAB], ids=["github", "gitlab"])


@TEMPLATES
def test_template_passes_its_ci_schema(template: Template) -> None:
    result = validate(template, [template.path])
    assert (result.rc, result.findings.get("status")) == (0, "ok"), \
        f"{template.path.name}:\n{json.dumps(result.findings, indent=1)}\n{result.stderr}"


@TEMPLATES
def test_broken_copies_fail_naming_the_fault(template: Template, tmp_path: Path) -> None:
    copies = {b: broken_copy(template, b, tmp_path) for b in BREAKAGES[template]}
    result = validate(template, list(copies.values()))
    assert (result.rc, result.findings.get("status")) == (1, "fail"), result.stderr
    for breakage, path in copies.items():
        assert breakage.says in result.errors_of(path), \
            f"{path.name}: {result.errors_of(path)}"


def test_validator_argv() -> None:
    assert validator_argv(Path("/v/bin/check-jsonschema"), GITLAB, [Path("a.yml")]) == (
        "/v/bin/check-jsonschema", "--output-format", "json", "--builtin-schema",
        "vendor.gitlab-ci", "--data-transform", "gitlab-ci", "a.yml")
