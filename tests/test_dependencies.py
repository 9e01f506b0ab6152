"""Every package curate or its notebooks import is declared in pyproject.toml, so a user
who installs what the README says has it (a package that only arrives with another one can
disappear with that one's next release)."""

from __future__ import annotations

import ast
import json
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def imported(sources: list[str]) -> set[str]:
    """The top-level modules ``sources`` import (at module level or in a function), stdlib aside."""
    found = set()
    for text in sources:
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"curate", "__future__"}


NOT_INSTALLED_HERE = {"pynvml": "nvidia-ml-py"}
"""Modules of GPU-only extras, never installed here, whose distribution is named otherwise."""


def undeclared(modules: set[str], declared: set[str]) -> list[str]:
    """The modules whose distribution (the installed one, else the module's own name) is
    not among ``declared``."""
    owners = packages_distributions()
    missing = []
    for module in sorted(modules):
        fallback = [NOT_INSTALLED_HERE.get(module, module)]
        names = {d.lower().replace("_", "-") for d in owners.get(module, fallback)}
        if not names & declared:
            missing.append(f"{module} ({', '.join(sorted(names))})")
    return missing


def test_every_package_curate_imports_is_declared():
    extras = PROJECT["optional-dependencies"]
    declared = requirement_names(PROJECT["dependencies"]).union(
        *(requirement_names(v) for v in extras.values()))
    sources = [p.read_text("utf-8") for p in (ROOT / "curate").rglob("*.py")]
    assert undeclared(imported(sources), declared) == []


def test_the_notebooks_need_only_the_notebooks_extra():
    declared = requirement_names(PROJECT["dependencies"]) | requirement_names(
        PROJECT["optional-dependencies"]["notebooks"])
    cells = ["\n".join(line for line in "".join(cell["source"]).splitlines()
                       if not line.startswith(("%", "!")))
             for path in sorted((ROOT / "notebooks").glob("*.ipynb"))
             for cell in json.loads(path.read_text("utf-8"))["cells"] if cell["cell_type"] == "code"]
    modules = imported(cells)
    assert "matplotlib" in modules
    assert undeclared(modules, declared) == []
