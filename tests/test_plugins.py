"""A package of the user's own adds a stage through an entry point: installed with pip (into a
folder on the path), named in a recipe, run by `curate build-mix` without editing curate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest
from conftest import write_yaml
from test_readme_stage import readme_code

ROOT = Path(__file__).resolve().parents[1]

PYPROJECT = """
[build-system]
requires = ["setuptools>=70"]
build-backend = "setuptools.build_meta"

[project]
name = "curate-shouting"
version = "0.1.0"

[project.entry-points."curate.stages"]
shouting = "curate_shouting:Shouting"

[tool.setuptools]
packages = ["curate_shouting"]
"""


@pytest.fixture(scope="module")
def plugin(tmp_path_factory) -> Path:
    """The README's stage as a package, installed by pip into a folder (its site)."""
    tmp = tmp_path_factory.mktemp("plugin")
    package = tmp / "src"
    (package / "curate_shouting").mkdir(parents=True)
    (package / "pyproject.toml").write_text(PYPROJECT)
    (package / "curate_shouting" / "__init__.py").write_text(readme_code("A stage"))
    site = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(site), str(package)],
                   check=True, capture_output=True, text=True)
    return site


def curate(site: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    return subprocess.run([sys.executable, "-m", "curate.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=site.parent)


@pytest.mark.slow  # pip builds the plugin; build-mix runs in a subprocess
def test_an_installed_plugin_stage_runs_from_a_recipe(plugin, tmp_path, data_root):
    recipe = write_yaml(tmp_path / "loud.yaml", """
        name: loud
        version: "1"
        sources: [dolly]
        stages:
          exact_dedup: {}
          shouting: {max_upper: 0.0}
    """)
    built = curate(plugin, "build-mix", recipe, "--runs", tmp_path / "runs", "--releases",
                   tmp_path / "releases", "--data-root", data_root, "--json")
    assert built.returncode == 0, built.stderr
    stages = {s["stage"]: s for s in json.loads(built.stdout)["stages"]}
    assert list(stages) == ["exact_dedup_v1", "shouting_v1"]
    decisions = pl.read_parquet(tmp_path / "runs/loud/1/shouting/decisions.parquet")
    flagged = decisions.filter(pl.col("upper_share") > 0).height
    assert stages["shouting_v1"]["reasons"] == {"shouting": flagged} and flagged > 0
    manifest = json.loads((tmp_path / "releases/loud/1/manifest.json").read_text())
    assert [s["stage"] for s in manifest["stages"]] == ["exact_dedup_v1", "shouting_v1"]


@pytest.mark.slow
def test_a_misspelled_plugin_name_gets_a_suggestion_and_no_traceback(plugin, tmp_path):
    recipe = write_yaml(tmp_path / "typo.yaml", textwrap.dedent("""
        name: typo
        version: "1"
        sources: [dolly]
        stages: {shoutin: {}}
    """))
    result = curate(plugin, "build-mix", recipe, "--dry-run", "--runs", tmp_path / "runs")
    assert result.returncode == 2
    assert "unknown stage `shoutin`; did you mean `shouting`?" in result.stderr
    assert "Traceback" not in result.stderr
