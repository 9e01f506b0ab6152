"""One summary everywhere (issue 16, item 4) and `--json` for scripts (issue 14, item 5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write_yaml

from curate.cli import main

RECIPE = """
name: summary
version: "1"
sources: [medquad_sample, dolly]
stages:
  exact_dedup: {}
synth:
  cot:
    generator: {backend: offline}
    sources: [medquad_sample]
    max_rows: 30
mix:
  targets: {medical: 0.6, synthetic: 0.2, general: 0.2}
  tolerance: 0.05
"""


def curate(*args: str | Path, code: int = 0) -> tuple[str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args], env={"COLUMNS": "200"},
                                catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.stdout, result.output


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("summary")
    recipe = write_yaml(tmp / "summary.yaml", RECIPE)
    where = ["--runs", tmp / "runs", "--releases", tmp / "releases"]
    first, _ = curate("build-mix", recipe, *where)
    again, _ = curate("build-mix", recipe, *where)
    return tmp, recipe, where, first, again


@pytest.mark.slow
def test_inspect_prints_what_build_mix_printed(built):
    tmp, _, _, first, again = built
    shown, _ = curate("inspect", tmp / "runs/summary/1")
    printed = first.rstrip("\n").split("\n")
    assert printed[-1] == "reused nothing: all computed now"
    # The run last found its release unchanged (the second build): the rest is the same.
    expected = [line.replace("(written)", "(unchanged)") for line in printed[:-1]]
    assert shown.rstrip("\n").split("\n") == expected
    for part in ("synth_cot: 30 synthetic of", "offline backend", "synthetic", "modality: text",
                 f"release {tmp}/releases/summary/1 (unchanged)"):
        assert part in shown


@pytest.mark.slow
def test_a_resumed_build_says_what_it_reused(built):
    *_, again = built
    last = again.rstrip("\n").split("\n")[-1]
    assert last == ("reused from the run: 2 ingested shards, finished stages exact_dedup, "
                    "the synthetic records (no request sent), the release (unchanged)")
    assert "; reused from the run: no request sent now" in again
    assert "(unchanged)" in again


@pytest.mark.slow
def test_json_documents_with_stable_keys(built):
    tmp, recipe, where, *_ = built
    run = tmp / "runs/summary/1"
    summary = json.loads(curate("inspect", run, "--json")[0])
    assert list(summary) == ["run", "recipe", "sources", "quarantine", "stages", "contamination",
                             "modalities", "synth", "release"]
    release = tmp / "releases/summary/1"
    manifest = json.loads((release / "manifest.json").read_text())
    assert summary["release"]["composition"] == manifest["composition"]
    assert summary["synth"]["synthetic"] == 30
    build = json.loads(curate("build-mix", recipe, *where, "--json")[0])
    assert build["reused"]["release_unchanged"] and build["failed"] == []
    plan = json.loads(curate("build-mix", recipe, *where, "--dry-run", "--json")[0])
    assert list(plan) == ["recipe", "feasibility", "feasible"] and plan["feasible"] is True
    listed = json.loads(curate("release", "ls", "--releases", tmp / "releases", "--json")[0])
    assert [(r["name"], r["version"]) for r in listed] == [("summary", "1")]
    # `release ls` and `release show` give the same total.
    total = listed[0]["loss_tokens"]
    assert f"total {total:,} {listed[0]['rows']:,}" in " ".join(curate("release", "show", release)[0].replace(
        "│", " ").split())
    shown = json.loads(curate("release", "show", release, "--json")[0])
    assert list(shown) == ["path", "name", "version", "budget", "composition", "modality", "stages",
                           "contamination"]
    diff = json.loads(curate("release", "diff", release, release, "--json")[0])
    assert diff["a"] == str(release) and diff["added"] == [] and diff["recipe_changed"] is False
    checked = json.loads(curate("catalog", "validate", recipe, "--json")[0])
    assert checked["valid"] == checked["total"] == 1 and checked["entries"][0]["kind"] == "mix"
