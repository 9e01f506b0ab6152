"""`benchmarks/gpu_smoke.py` answers `--help` and its dry run builds and validates everything
a GPU run needs (the tiny model, the catalog entry, the recipe) without loading an engine."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_smoke.py"


def test_help_names_the_options():
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    for option in ("--rows", "--dry-run", "--max-model-len", "--gpu-memory-utilization", "--work"):
        assert option in out


@pytest.mark.slow
def test_the_dry_run_builds_the_model_and_a_valid_recipe_and_loads_no_engine(tmp_path, data_root,
                                                                            capsys):
    spec = importlib.util.spec_from_file_location("gpu_smoke", SCRIPT)
    smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke)
    smoke.main(["--dry-run", "--rows", "5", "--work", str(tmp_path / "smoke"),
                "--data-root", str(data_root)])
    out = capsys.readouterr().out
    assert "5 rows, max_model_len 256, gpu_memory_utilization 0.6 per engine" in out
    assert "dry run: recipe valid; would run quality (vllm, in_turn) then synth cot (vllm)" in out
    work = tmp_path / "smoke"
    recipe = yaml.safe_load((work / "gpu-smoke.yaml").read_text())
    assert recipe["stages"]["quality"]["max_model_len"] == 256
    assert recipe["synth"]["cot"]["generator"]["gpu_memory_utilization"] == 0.6
    assert len((work / "data" / "medquad_5.jsonl").read_text().splitlines()) == 5
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(work / "tiny-llama")
    assert [len(tokenizer.encode(d, add_special_tokens=False)) for d in "123456"] == [1] * 6
    assert (work / "tiny-llama" / "config.json").exists() and "vllm" not in sys.modules
