"""What a plain `pip install .` gets: every module the packages import is a declared
dependency (a transitive one may vanish with another package's next release)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("crawler", "pipelines", "scheduler")


def imported_modules() -> set[str]:
    """The top-level modules the packages import, outside the standard library and us."""
    found: set[str] = set()
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                if isinstance(node, ast.Import):
                    found |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - set(PACKAGES)


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_module_is_a_declared_dependency() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]
    declared = {
        normalized(re.split(r"[\s\[<>=!~;]", dep, maxsplit=1)[0]) for dep in project["dependencies"]
    }
    providers = importlib.metadata.packages_distributions()
    undeclared = {
        module: providers.get(module)
        for module in imported_modules()
        if not any(normalized(dist) in declared for dist in providers.get(module, []))
    }
    assert undeclared == {}, "declare these in [project] dependencies"


def test_lxml_html_clean_is_declared_for_trafilatura() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]
    assert any(normalized(dep).startswith("lxml-html-clean") for dep in project["dependencies"])
