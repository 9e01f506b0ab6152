"""The mistakes of a newcomer's first hour get one clear line (issue 16, items 4-6)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write_yaml

from curate.cli import main


def curate(*args: str | Path, code: int = 0) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


@pytest.mark.slow
def test_an_infeasible_mix_names_each_empty_category_and_where_its_rows_went(tmp_path):
    recipe = write_yaml(tmp_path / "recipe.yaml", """
        name: lopsided
        version: "0.1.0"
        sources: [medquad_contaminated_demo, dolly]
        benchmarks: [mmlu_medical]
        stages:
          decontam: {}
        mix:
          targets: {medical: 0.5, general: 0.5}
        """)
    where = ["--runs", tmp_path / "runs", "--releases", tmp_path / "releases"]
    out = curate("build-mix", recipe, *where, code=2)
    assert out.startswith("error: the mix is infeasible: `medical` (target 50%) has no kept record "
                          "(`general` has 12,056 loss tokens).")
    assert ("`medical`: 0 kept rows; medquad_contaminated_demo: 126 removed by decontam "
            "(source_rejected 124, contaminated 2)") in out
    assert "mix is empty" not in out and len(out.strip().splitlines()) == 1
    assert not (tmp_path / "releases").exists()
    # The dry run says the same from the run folder, and fails.
    dry = curate("build-mix", recipe, *where, "--dry-run", code=1)
    assert "feasibility: the mix is infeasible: `medical` (target 50%) has no kept record" in dry


def test_a_dry_run_of_a_recipe_without_a_category_source_fails(tmp_path):
    recipe = write_yaml(tmp_path / "recipe.yaml", """
        name: nosynth
        version: "0.1.0"
        sources: [dolly]
        mix:
          targets: {general: 0.5, synthetic: 0.5}
        """)
    out = curate("build-mix", recipe, "--runs", tmp_path / "runs", "--dry-run", code=1)
    assert "no source of the recipe provides `synthetic`" in out


def test_misspelt_mix_and_a_data_file_for_a_recipe(tmp_path):
    out = curate("build-mix", "my-mixx", "--runs", tmp_path / "runs", code=2)
    assert out.startswith("error: unknown mix `my-mixx` in catalogs ") and "mixe" not in out
    data = tmp_path / "my_sft.jsonl"
    data.write_text('{"messages": []}\n')
    out = curate("ingest", data, "--runs", tmp_path / "runs", code=2)
    assert out.startswith(f"error: {data} is a data file, and this command takes a recipe: ")
    assert "expected '<document start>'" not in out
