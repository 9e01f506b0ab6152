"""What an evaluation spent: `curate eval mcqa` records its measured scoring time, items
and tokens per second, accelerator-hours and energy (where measurable) beside the plan's
inference estimate, with a tiny Llama on the CPU."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from curate.evaluate.config import McqaConfig
from curate.evaluate.mcqa import evaluate_mcqa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("tiny") / "lm")


def test_an_mcqa_record_shows_the_estimate_beside_the_measurement(model_dir, tmp_path):
    config = McqaConfig(model={"backend": "transformers", "model": str(model_dir), "device": "cpu"}, limit=6)
    evaluate_mcqa(["medmcqa"], config, out=tmp_path)
    cost = json.loads((tmp_path / "results.json").read_text())["cost"]
    measured, estimate, comparison = cost["measured"], cost["estimate"], cost["comparison"]
    assert measured["device"] == "cpu" and measured["wall_seconds"] > 0 and measured["tokens"] > 0
    assert measured["tokens_per_second"] == pytest.approx(measured["tokens"] / measured["wall_seconds"])
    assert (measured["energy_joules"] is None) == measured["energy_source"].startswith("not measured")
    assert estimate["workload"] == "evaluation" and estimate["accelerator"] == "cpu-core"
    assert estimate["tokens"] == measured["tokens"]  # loglik: the prompts, no output
    # 2 N FLOPs per token (N: the tiny Llama's parameters in matrix multiplies)
    figures = {f["name"]: f for f in estimate["figures"]}
    assert "2·N per token × 6 items" in figures["FLOPs"]["assumption"]
    assert comparison["wall_time_measured_over_estimated"] == pytest.approx(
        measured["wall_seconds"] / (estimate["wall_hours"] * 3600))


def test_the_offline_backend_has_no_local_cost_to_estimate(tmp_path):
    config = McqaConfig(model={"backend": "offline"}, mode="generate", limit=2)
    evaluate_mcqa(["medmcqa"], config, out=tmp_path)
    cost = json.loads((tmp_path / "results.json").read_text())["cost"]
    assert cost["estimate"] is None and "runs no model here" in cost["estimate_missing"]
    assert cost["measured"]["wall_seconds"] > 0
