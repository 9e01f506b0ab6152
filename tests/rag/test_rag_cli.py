"""`curate rag cot | index | search | check` through the command line."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from curate.cli import main

pytestmark = pytest.mark.slow


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_cot_then_search_then_check(tmp_path, data_root):
    index = str(tmp_path / "ix")
    out = run("rag", "cot", "mmlu_medical", "--out", index, "--backend", "offline", "--max-rows", "8",
              "--cache", str(tmp_path / "cache"), "--data-root", str(data_root), "--allow-benchmark")
    assert "offline backend" in out
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    stats = manifest["parts"][0]["stats"]["synth_cot"]
    assert manifest["records"] == stats["synthetic"] and stats["rows"] == 8
    assert f"{stats['synthetic']} records added from mmlu_medical" in out
    # again: every record is held already, nothing is embedded or added
    again = run("rag", "cot", "mmlu_medical", "--out", index, "--backend", "offline", "--max-rows", "8",
                "--cache", str(tmp_path / "cache"), "--data-root", str(data_root), "--allow-benchmark")
    assert f"0 records added from mmlu_medical ({stats['synthetic']} already indexed" in again
    found = run("rag", "search", index, "a question about the orbit", "--k", "2")
    assert found.count("│ yes │") == 2
    # the index was built from MMLU-medical itself: checked against it, every record is excluded
    checked = run("rag", "check", index, "mmlu_medical", "--data-root", str(data_root))
    assert f"{stats['synthetic']} records checked: {stats['synthetic']} contaminated" in checked
    assert "0 kept" in checked


def test_index_refuses_an_input_without_multiple_choice(tmp_path, data_root):
    result = CliRunner().invoke(main, ["rag", "index", "medquad_sample", "--out", str(tmp_path / "ix"),
                                       "--data-root", str(data_root)])
    assert result.exit_code != 0
    assert "no multiple-choice record with a gold answer to index" in result.output
