"""The lm-eval export: lm-eval's own `simple_evaluate`, offline, on the exported task folder
gives the accuracy (and the option log-likelihoods) `curate eval mcqa` gives on the same items."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from curate.evaluate.config import McqaConfig
from curate.evaluate.lm_eval_export import export_lm_eval
from curate.evaluate.mcqa import evaluate_mcqa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import tiny_model  # noqa: E402

lm_eval = pytest.importorskip("lm_eval")


def test_export_writes_lm_eval_task_yaml_and_data(tmp_path, data_root):
    task = export_lm_eval("pubmedqa", tmp_path, limit=5, data_root=data_root)
    config = yaml.safe_load(task.config.read_text())
    assert task.name == "curate_pubmedqa" and task.items == 5
    assert config["output_type"] == "multiple_choice" and config["dataset_path"] == "json"
    assert config["dataset_kwargs"]["data_files"]["test"] == str(task.data)
    assert (config["doc_to_text"], config["doc_to_choice"], config["doc_to_target"]) == (
        "prompt", "letters", "answer")
    docs = [json.loads(line) for line in task.data.read_text().splitlines()]
    assert [d["item"] for d in docs] == [f"pubmedqa:{i}" for i in range(5)]
    assert docs[0]["letters"] == ["A", "B", "C"]
    assert docs[0]["prompt"].endswith("\nA. yes\nB. no\nC. maybe\nAnswer:")


@pytest.mark.slow
def test_simple_evaluate_agrees_with_curate_on_the_same_items(tmp_path, monkeypatch):
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = tiny_model(tmp_path / "lm", seed=3)
    names = ["mmlu_medical"]
    tasks = [export_lm_eval(name, tmp_path / "tasks", limit=30) for name in names]
    ours = evaluate_mcqa(names, McqaConfig(model={"backend": "transformers", "model": str(model),
                                                  "device": "cpu"}, limit=30), out=tmp_path / "ours")
    theirs = lm_eval.simple_evaluate(
        model=HFLM(pretrained=str(model), device="cpu", batch_size=8), tasks=[t.name for t in tasks],
        task_manager=TaskManager(include_path=str(tmp_path / "tasks")), log_samples=True)
    for name, task in zip(names, tasks, strict=False):
        mine = ours.predictions.filter(ours.predictions["benchmark"] == name).sort("row")
        samples = sorted(theirs["samples"][task.name], key=lambda s: s["doc_id"])
        assert [s["doc"]["item"] for s in samples] == mine.get_column("item").to_list()
        for sample, scores in zip(samples, mine.get_column("scores").to_list(), strict=False):
            assert [r[0] for r in sample["filtered_resps"]] == pytest.approx(scores, abs=1e-3)
        assert theirs["results"][task.name]["acc,none"] == pytest.approx(
            ours.results["benchmarks"][name]["accuracy"]["value"])


@pytest.mark.slow
def test_few_shot_export_gives_lm_eval_curates_few_shot_prompts(tmp_path, monkeypatch, data_root):
    """lm-eval's fixed `first_n` sampler puts the same shots, in the same text, before each
    question as `build_prompt(item, examples=shots)`, and scores the letters the same."""
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from curate.catalog import Catalog
    from curate.errors import ConfigError
    from curate.evaluate.items import read_benchmark
    from curate.evaluate.prompts import build_prompt
    from curate.evaluate.scorers import TransformersLoglik
    from curate.synth.config import TransformersOptions

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="--fewshot-from"):
        export_lm_eval("mmlu_medical", tmp_path / "t0", num_fewshot=2)
    with pytest.raises(ConfigError, match="its own test items"):
        export_lm_eval("mmlu_medical", tmp_path / "t0", num_fewshot=2, fewshot_from="mmlu_medical")
    task = export_lm_eval("mmlu_medical", tmp_path / "tasks", limit=8, num_fewshot=2,
                          fewshot_from="medmcqa_singlechoice", data_root=data_root)
    config = yaml.safe_load(task.config.read_text())
    assert (config["num_fewshot"], config["fewshot_split"], config["fewshot_config"]) == (
        2, "fewshot", {"sampler": "first_n"})
    assert config["metadata"]["curate_fewshot"] == ["medmcqa_singlechoice:0", "medmcqa_singlechoice:1"]
    catalog = Catalog.load([])
    shots = read_benchmark(catalog.benchmark("medmcqa_singlechoice"), data_root=data_root).items(limit=2)
    items = read_benchmark(catalog.benchmark("mmlu_medical"), data_root=data_root).items(limit=8)
    model = tiny_model(tmp_path / "lm", seed=5)
    theirs = lm_eval.simple_evaluate(
        model=HFLM(pretrained=str(model), device="cpu", batch_size=8), tasks=[task.name],
        task_manager=TaskManager(include_path=str(tmp_path / "tasks")), log_samples=True)
    samples = sorted(theirs["samples"][task.name], key=lambda s: s["doc_id"])
    ours = [build_prompt(item, examples=shots) for item in items]
    with TransformersLoglik(TransformersOptions(model=str(model), device="cpu")) as scorer:
        scored = scorer(ours)
    for sample, prompt, result in zip(samples, ours, scored, strict=True):
        assert sample["doc"]["prompt_fewshot"] == prompt.text
        assert sample["arguments"][0][0] == prompt.text  # lm-eval's context, character for character
        assert [r[0] for r in sample["filtered_resps"]] == pytest.approx(list(result.scores or ()), abs=1e-3)
