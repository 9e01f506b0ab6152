"""`curate eval mcqa` end to end on the real benchmark files with a tiny Llama."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import polars as pl
import pytest

from curate.errors import ConfigError
from curate.evaluate.config import McqaConfig
from curate.evaluate.items import McqaItem, read_benchmark
from curate.evaluate.mcqa import evaluate_mcqa
from curate.evaluate.prompts import TEMPLATES, build_prompt
from curate.evaluate.scorers import TransformersLoglik, VllmLoglik
from curate.synth.config import TransformersOptions, VllmOptions

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "synth"))
from fake_openai import Reply, chat_completion, server  # noqa: E402, F401 (fixture)
from helpers import tiny_model  # noqa: E402

BENCHMARKS = ["pubmedqa", "mmlu_medical", "medmcqa"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("tiny") / "lm")


@pytest.fixture(scope="module")
def scorer(model_dir):
    with TransformersLoglik(TransformersOptions(model=str(model_dir), device="cpu", batch_size=4)) as s:
        yield s


def loglik_config(model_dir: Path, **options) -> McqaConfig:
    return McqaConfig(model={"backend": "transformers", "model": str(model_dir), "device": "cpu"},
                      **options)


def test_loglik_on_the_real_benchmarks(model_dir, scorer, tmp_path):
    result = evaluate_mcqa(BENCHMARKS, loglik_config(model_dir, limit=12), out=tmp_path, scorer=scorer)
    p = result.predictions
    assert p.height == 36
    assert p.group_by("benchmark").len().sort("benchmark").rows() == [
        ("medmcqa", 12), ("mmlu_medical", 12), ("pubmedqa", 12)]
    assert p.filter(pl.col("benchmark") == "mmlu_medical").get_column("item").to_list()[:3] == [
        "mmlu_medical:0", "mmlu_medical:1", "mmlu_medical:2"]
    # the prediction is the best-scored option; correct means it is the gold one
    for scores, guess, answer, correct in p.select("scores", "prediction", "answer", "correct").rows():
        assert guess == max(range(len(scores)), key=lambda i: (scores[i], -i))
        assert correct == (guess == answer)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["backend"] == "transformers" and results["model"] == str(model_dir)
    assert results["mode"] == "loglik" and results["template"] == {
        "name": "letters", "hash": TEMPLATES["letters"].hash, "chat_template": False}
    assert results["options"]["limit"] == 12 and results["options"]["model"]["batch_size"] == 8
    for name in BENCHMARKS:
        frame = p.filter(pl.col("benchmark") == name)
        bench = results["benchmarks"][name]
        assert bench["accuracy"]["value"] == pytest.approx(frame.get_column("correct").mean())
        assert bench["parse_failures"] == {"count": 0, "rate": 0.0, "n": 12}
        assert sum(v["chosen"] for v in bench["position_bias"]["letters"].values()) == pytest.approx(1)
    assert len(results["benchmarks"]["pubmedqa"]["position_bias"]["letters"]) == 3
    assert set(results["benchmarks"]["mmlu_medical"]["subjects"]) == {"anatomy"}
    assert pl.read_parquet(tmp_path / "predictions.parquet").equals(p)
    report = (tmp_path / "report.md").read_text()
    assert "| mmlu_medical | 12 |" in report and "![position bias](position_bias.png)" in report
    assert (tmp_path / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "position_bias.png").stat().st_size > 1000


def test_batched_scores_equal_one_prompt_at_a_time(scorer, data_root, catalog):
    items = read_benchmark(catalog.benchmark("medmcqa"), data_root=data_root).items(limit=6)
    prompts = [build_prompt(i) for i in items]
    together = scorer(prompts)
    for prompt, scored in zip(prompts, together, strict=False):
        [alone] = scorer([prompt])
        assert alone.scores == pytest.approx(scored.scores, abs=1e-4)


def test_prompt_layout_few_shot_and_option_order():
    item = McqaItem("b", 3, "x" * 32, " Which one? ", ("red", "green", "blue"), 2)
    shot = McqaItem("b", 0, "y" * 32, "Pick one", ("yes", "no"), 1)
    prompt = build_prompt(item, examples=[shot], order=[2, 0, 1])
    assert prompt.text == ("Pick one\nA. yes\nB. no\nAnswer: B\n\n"
                           "Which one?\nA. blue\nB. red\nC. green\nAnswer:")
    assert prompt.continuations == (" A", " B", " C")
    assert [prompt.original(k) for k in range(3)] == [2, 0, 1]
    cot = build_prompt(item, "cot")
    assert cot.messages[1]["content"].startswith(
        "Question:\nWhich one?\n\nOptions:\nA. red\nB. green\nC. blue\n\n")
    with pytest.raises(ConfigError, match="not a permutation"):
        build_prompt(item, order=[0, 0, 1])


class VllmLLMTestDouble:
    """A test double of `vllm.LLM` (no GPU here): `generate` over `TokensPrompt`s with
    `prompt_logprobs`, computed by a real transformers model from the same folder."""

    instances: list[VllmLLMTestDouble] = []

    def __init__(self, **engine):
        from curate.models import load_causal_lm

        self.engine = engine
        self.network, self.tokenizer = load_causal_lm(engine["model"], device="cpu")
        self.llm_engine = types.SimpleNamespace(model_config=types.SimpleNamespace(max_model_len=512))
        self.params: list = []
        VllmLLMTestDouble.instances.append(self)

    def get_tokenizer(self):
        return self.tokenizer

    def generate(self, prompts, sampling_params, use_tqdm=True):
        import torch

        self.params.append(sampling_params)
        outputs = []
        for prompt in prompts:
            ids = prompt["prompt_token_ids"]
            with torch.no_grad():
                logits = self.network(input_ids=torch.tensor([ids])).logits[0]
            logprobs = torch.log_softmax(logits.float(), -1)
            entries = [None] + [{ids[i]: types.SimpleNamespace(logprob=float(logprobs[i - 1, ids[i]]))}
                                for i in range(1, len(ids))]
            outputs.append(types.SimpleNamespace(prompt_logprobs=entries, outputs=[]))
        return outputs


@pytest.fixture
def vllm_double(monkeypatch):
    module = types.ModuleType("vllm")
    module.LLM = VllmLLMTestDouble
    module.SamplingParams = lambda **kw: types.SimpleNamespace(**kw)
    module.TokensPrompt = lambda prompt_token_ids: {"prompt_token_ids": prompt_token_ids}
    monkeypatch.setitem(sys.modules, "vllm", module)
    VllmLLMTestDouble.instances.clear()
    return VllmLLMTestDouble


def test_vllm_prompt_logprobs_give_the_transformers_scores(vllm_double, model_dir, scorer, data_root,
                                                            catalog):
    items = read_benchmark(catalog.benchmark("mmlu_medical"), data_root=data_root).items(limit=5)
    prompts = [build_prompt(i) for i in items]
    vllm = VllmLoglik(VllmOptions(model=str(model_dir)))
    try:
        got = vllm(prompts)
    finally:
        vllm.teardown()
    double = vllm_double.instances[0]
    assert double.engine["model"] == str(model_dir) and double.engine["tensor_parallel_size"] == 1
    params = double.params[0]
    assert (params.max_tokens, params.prompt_logprobs, params.temperature) == (1, 1, 0.0)
    for mine, theirs in zip(scorer(prompts), got, strict=False):
        assert theirs.scores == pytest.approx(mine.scores, abs=1e-4)
        assert theirs.choice == mine.choice


def test_generate_mode_with_the_offline_backend_is_labelled(tmp_path):
    config = McqaConfig(model={"backend": "offline"}, mode="generate", limit=8)
    result = evaluate_mcqa(["medmcqa"], config, out=tmp_path)
    assert result.predictions.get_column("prediction").null_count() == 0
    assert result.predictions.get_column("output").str.contains("Answer: [A-D]").all()
    assert result.results["offline_backend"] is True
    assert result.results["template"]["name"] == "cot"
    assert "Offline backend" in (tmp_path / "report.md").read_text()


def test_generate_mode_through_an_openai_endpoint_counts_parse_failures(server, tmp_path):  # noqa: F811
    unreadable = chat_completion(["I am not sure."], model="tiny", completion_tokens=4)
    server.script.append(Reply(body=json.dumps(unreadable)))
    config = McqaConfig(model={"backend": "openai", "model": "tiny", "base_url": server.url,
                               "concurrency": 1}, mode="generate", limit=5, max_tokens=300, retries=0)
    result = evaluate_mcqa(["pubmedqa"], config, out=tmp_path)
    assert len(server.bodies) == 5 and server.bodies[0]["max_tokens"] == 300
    assert result.predictions.get_column("prediction").to_list()[0] is None
    assert result.predictions.get_column("prediction").null_count() == 1
    assert result.results["benchmarks"]["pubmedqa"]["parse_failures"] == {"count": 1, "rate": 0.2, "n": 5}
    assert result.results["backend"] == "openai" and result.results["offline_backend"] is False


def test_paired_comparison_with_a_baseline_on_the_same_items(model_dir, scorer, tmp_path):
    first = evaluate_mcqa(["mmlu_medical"], loglik_config(model_dir, limit=10), out=tmp_path / "a",
                          scorer=scorer)
    second = evaluate_mcqa(["mmlu_medical"], McqaConfig(model={"backend": "offline"}, mode="generate",
                                                        limit=10),
                           out=tmp_path / "b", baseline=tmp_path / "a")
    c = second.results["comparison"]["benchmarks"]["mmlu_medical"]
    a = second.predictions.get_column("correct").to_list()
    b = first.predictions.get_column("correct").to_list()
    assert c["difference"]["n"] == 10
    assert c["difference"]["value"] == pytest.approx((sum(a) - sum(b)) / 10)
    assert c["only_a"] == sum(x and not y for x, y in zip(a, b, strict=False))
    assert second.results["comparison"]["baseline"]["backend"] == "transformers"
    with pytest.raises(ConfigError, match="evaluated none of these items"):
        evaluate_mcqa(["pubmedqa"], McqaConfig(model={"backend": "offline"}, mode="generate", limit=3),
                      out=tmp_path / "c", baseline=tmp_path / "a")


def test_loglik_needs_a_model_backend():
    with pytest.raises(ValueError, match="mode `loglik` scores option letters with the model itself"):
        McqaConfig(model={"backend": "offline"})
    with pytest.raises(ValueError, match="unknown option `modle`; did you mean `model`"):
        McqaConfig(model={"backend": "transformers", "modle": "x"})


def test_chat_template_scoring_puts_the_prompt_in_a_user_turn(model_dir, data_root, catalog, tmp_path):
    """`chat_template`: the letters prompt as one user turn of the model's template with the
    assistant's opening; each bare letter scored as the assistant's first word, checked
    against a plain forward pass over the same tokens."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    items = read_benchmark(catalog.benchmark("medmcqa"), data_root=data_root).items(limit=3)
    prompts = [build_prompt(i) for i in items]
    options = TransformersOptions(model=str(model_dir), device="cpu")
    with TransformersLoglik(options, chat_template=True) as chat, TransformersLoglik(options) as plain:
        templated = chat(prompts)
        untemplated = plain(prompts)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    network = AutoModelForCausalLM.from_pretrained(model_dir)
    for prompt, scored, other in zip(prompts, templated, untemplated, strict=True):
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt.text}], tokenize=False,
                                             add_generation_prompt=True)
        assert text.startswith("<|user|> ") and text.endswith("<|assistant|> ")
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logprobs = torch.log_softmax(network(torch.tensor([ids])).logits[0, -1], -1)
        letters = [tokenizer(text + x, add_special_tokens=False)["input_ids"][-1] for x in prompt.letters]
        assert list(scored.scores or ()) == pytest.approx([float(logprobs[t]) for t in letters], abs=1e-4)
        assert scored.scores != other.scores
    result = evaluate_mcqa(["medmcqa"], loglik_config(model_dir, limit=3, chat_template=True), out=tmp_path)
    assert result.results["template"]["chat_template"] is True
    with pytest.raises(ValueError, match="`chat_template` applies to mode `loglik`"):
        McqaConfig(model={"backend": "offline"}, mode="generate", chat_template=True)
