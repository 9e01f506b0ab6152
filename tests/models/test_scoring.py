"""The one scorer hierarchy (curate.models.scoring): the shared left-padded, last-position
forward pass gives each prompt the log-probabilities of a plain forward pass over that prompt
alone; the SCORERS registry is what picks the quality stage's and `eval mcqa`'s scorer class."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch
from tiny_lm import build_tiny_lm

from curate.config import ModelSpec
from curate.curation.quality import (
    DeitaScorer,
    Quality,
    QualityConfig,
    TransformersScorer,
    VllmScorer,
    complexity_prompt,
)
from curate.engine.stage import StageContext
from curate.errors import ConfigError
from curate.evaluate.config import McqaConfig
from curate.evaluate.scorers import Generative, TransformersLoglik, VllmLoglik, make_scorer
from curate.models.scoring import SCORERS, Scorer, TransformersModelScorer, next_token_logprobs

TEXTS = ["What is the capital of France?", "Thank you!", "Explain why the sky is blue.",
         "How do I treat a cold? Rest, fluids and time.", "Apples", "Give me a list of fruits."]


@pytest.fixture(scope="module")
def scorer(tmp_path_factory):
    folder = build_tiny_lm(tmp_path_factory.mktemp("tiny") / "lm")
    return TransformersModelScorer(ModelSpec(model=str(folder)), device="cpu", dtype="float32",
                                   batch_size=4)


def test_the_shared_forward_pass_equals_a_plain_forward_pass_per_prompt(scorer):
    sequences = [scorer.tokenizer(text)["input_ids"] for text in TEXTS]
    assert len({len(s) for s in sequences}) > 3  # batches that need padding
    seen: list[int] = []
    for rows, logprobs in scorer.next_token_logprobs(sequences):
        assert logprobs.dtype == torch.float32 and logprobs.shape[0] == len(rows) <= 4
        for row, i in enumerate(rows):
            with torch.no_grad():
                alone = scorer.network(input_ids=torch.tensor([sequences[i]])).logits[0, -1]
            expected = torch.log_softmax(alone.float(), dim=-1)
            assert torch.allclose(logprobs[row], expected, atol=1e-5), TEXTS[i]
        seen += rows
    assert sorted(seen) == list(range(len(TEXTS)))
    assert [len(sequences[i]) for i in seen] == sorted((len(s) for s in sequences), reverse=True)


def test_only_the_last_position_is_computed(scorer):
    calls = []

    def network(**inputs):
        calls.append(inputs)
        return scorer.network(**inputs)

    network.forward = scorer.network.forward  # type: ignore[attr-defined]
    sequences = [scorer.tokenizer(text)["input_ids"] for text in TEXTS[:2]]
    [(rows, logprobs)] = list(next_token_logprobs(network, sequences, pad_id=scorer.pad_id,
                                                  batch_size=2, device="cpu"))
    assert calls[0]["logits_to_keep"] == 1
    short = rows.index(1)
    width = len(sequences[0])
    pad = width - len(sequences[1])
    assert calls[0]["attention_mask"][short].tolist() == [0] * pad + [1] * len(sequences[1])
    assert calls[0]["position_ids"][short].tolist() == [0] * pad + list(range(len(sequences[1])))


def test_every_scorer_shares_one_base_and_one_lifecycle():
    for cls in (TransformersScorer, VllmScorer, TransformersLoglik, VllmLoglik, Generative):
        assert issubclass(cls, Scorer), cls
    assert issubclass(TransformersScorer, TransformersModelScorer)
    assert issubclass(TransformersLoglik, TransformersModelScorer)
    assert not hasattr(Scorer, "close")


def test_the_registry_names_every_scorer():
    assert SCORERS.load("deita_transformers") is TransformersScorer
    assert SCORERS.load("deita_vllm") is VllmScorer
    assert SCORERS.load("loglik_transformers") is TransformersLoglik
    assert SCORERS.load("loglik_vllm") is VllmLoglik
    assert SCORERS.load("generate") is Generative
    with pytest.raises(ConfigError, match="unknown scorer `deita_vlm`; did you mean `deita_vllm`"):
        SCORERS.load("deita_vlm")


class FakeDeita(DeitaScorer):
    """A DEITA scorer that scores every prompt 3 and records how the stage built it."""

    backend = "fake"
    built: list[tuple[str, float]] = []

    def __init__(self, model: str) -> None:
        self.model, self.revision = model, None

    @classmethod
    def from_config(cls, config, model, *, revision, gpu_memory_utilization):
        cls.built.append((model, gpu_memory_utilization))
        return cls(model)

    def scores(self, prompts):
        return np.full(len(prompts), 3.0)


def test_the_quality_stage_builds_its_scorer_through_the_registry(monkeypatch):
    monkeypatch.setitem(SCORERS.builtin, "deita_vllm", f"{__name__}:FakeDeita")
    FakeDeita.built.clear()
    stage = Quality(QualityConfig(complexity_model="c", quality_model="q", backend="vllm"))
    records = pa.table({"messages": [[{"role": "user", "content": "Why?"},
                                      {"role": "assistant", "content": "Because."}]],
                        "chosen": [None]})
    scored = stage.score(records, StageContext())
    assert scored.column("deita_score").to_pylist() == [9.0]
    assert FakeDeita.built == [("c", 0.45), ("q", 0.45)]  # two engines share the GPU
    assert isinstance(stage.scorer("c"), FakeDeita)
    stage.teardown()
    assert complexity_prompt("x").endswith("##Complexity: ")


def test_eval_mcqa_builds_its_scorer_through_the_registry(monkeypatch):
    config = McqaConfig(model={"backend": "offline"}, mode="generate")
    with make_scorer(config) as scorer:
        assert isinstance(scorer, Generative) and scorer.identity()["backend"] == "offline"
    monkeypatch.setitem(SCORERS.builtin, "generate", "curate.evaluate.scorers:VllmLoglik")
    with pytest.raises(ConfigError, match="scorer `loglik_vllm` needs backend `vllm`, not `offline`"):
        make_scorer(config)
