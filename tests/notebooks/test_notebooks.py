"""The notebooks run top to bottom on the demo run (nbclient on an ipykernel), so they never rot."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import write_yaml

from curate.pipeline.build import build_mix
from curate.pipeline.run import open_run

NOTEBOOKS = Path(__file__).parents[2] / "notebooks"
ROOT = Path(__file__).parents[2]


def execute(name: str, env: dict[str, str], monkeypatch) -> dict:
    """Run the notebook ``name`` in a fresh kernel (cwd notebooks/, ``env`` set); its cells."""
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    for key, value in {**env, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}.items():
        monkeypatch.setenv(key, value)
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code"), "outputs are committed"
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return notebook


def text_of(notebook) -> str:
    return "\n".join(o.get("text", "") + json.dumps(o.get("data", {})) for c in notebook.cells
                     if c.cell_type == "code" for o in c.outputs)


@pytest.mark.slow
def test_inspect_run_runs_top_to_bottom_on_the_demo_run(demo_build, monkeypatch):
    notebook = execute("inspect_run", {"CURATE_RUN": str(demo_build.run)}, monkeypatch)
    out = text_of(notebook)
    assert "stages clean, image, answers, exact_dedup, near_dedup, decontam, diversity" in out
    for text in ("near_duplicate_of", "too_similar_to", "source_rejected", "medquad_contaminated_demo",
                 "image/png", "score columns"):
        assert text in out


@pytest.mark.slow
def test_compare_releases_explains_a_changed_mix(demo_build, tmp_path, monkeypatch):
    # B: the demo recipe with other targets, built on a copy of the demo run (stages reused).
    shutil.copytree(demo_build.runs, tmp_path / "runs")
    recipe = (ROOT / "catalogs/mixes/demo.yaml").read_text().replace('version: "0.1.0"', 'version: "0.2.0"')
    recipe = recipe.replace("targets: {medical: 0.6, synthetic: 0.2, general: 0.2}",
                            "targets: {medical: 0.5, synthetic: 0.2, general: 0.3}")
    run = open_run(write_yaml(tmp_path / "demo.yaml", recipe), runs_dir=tmp_path / "runs", run_id="0.1.0")
    built = build_mix(run, releases_dir=tmp_path / "releases")
    assert {r.reused for r in built.stages} == {"decisions"}
    # A and B by default: the two newest versions of the demo under one releases folder
    shutil.copytree(demo_build.release, tmp_path / "releases/demo/0.1.0")
    for name in ("CURATE_RELEASE_A", "CURATE_RELEASE_B"):
        monkeypatch.delenv(name, raising=False)
    notebook = execute("compare_releases", {"CURATE_RELEASES": str(tmp_path / "releases")}, monkeypatch)
    out = text_of(notebook)
    assert "A demo 0.1.0" in out and "B demo 0.2.0" in out
    assert "mix.targets.general" in out and "not_selected" in out and "rows added" in out
