"""The DEITA scorers on vLLM, through a test double of `vllm.LLM` (no GPU here; see
tests/vllm_double.py): scores equal the transformers path's, prompts are capped against the
engine's reported `max_model_len`, the engine options reach vLLM, and `in_turn` loading keeps
one scorer on the GPU at a time."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from tiny_lm import build_tiny_lm
from vllm_double import install_vllm_double, write_chat_source

from curate.curation.quality import Quality, QualityConfig, VllmScorer, complexity_prompt
from curate.engine.runner import run_stages
from curate.engine.stage import StageContext
from curate.store import RunStore

QUESTIONS = ["What is the capital of France?", "How do I treat a cold?",
             "Explain why the sky is blue.", "Give me a list of fruits.", "Thank you!"]
ANSWERS = ["Paris is the capital of France.", "Rest, fluids and time.",
           "Sunlight scatters off air molecules.", "Apples, pears, plums.", "You are welcome."]
LONG = " ".join(["Explain why the sky is blue and what the symptoms of diabetes are."] * 20)


@pytest.fixture(scope="module")
def scorers(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {"complexity": build_tiny_lm(root / "complexity"),
            "quality": build_tiny_lm(root / "quality", seed=1)}


@pytest.fixture
def vllm(monkeypatch):
    return install_vllm_double(monkeypatch)


def chats(pairs: list[tuple[str, str]]) -> pa.Table:
    messages = [[{"role": "user", "content": q}, {"role": "assistant", "content": a}]
                for q, a in pairs]
    return pa.table({"messages": messages, "chosen": [None] * len(messages)})


def quality(scorers, **options) -> Quality:
    return Quality(QualityConfig(complexity_model=str(scorers["complexity"]),
                                 quality_model=str(scorers["quality"]), max_length=2048,
                                 **options))


def test_vllm_scores_equal_the_transformers_scores(vllm, scorers):
    records = chats(list(zip(QUESTIONS, ANSWERS)))
    ours = quality(scorers, device="cpu").score(records, StageContext())
    theirs = quality(scorers, backend="vllm").score(records, StageContext())
    for column in ("complexity", "quality", "deita_score"):
        assert np.allclose(ours.column(column).to_numpy(), theirs.column(column).to_numpy(), atol=1e-5)
    assert {e.engine["logprobs_mode"] for e in vllm.instances} == {"processed_logprobs"}
    assert [p.logprobs for p in vllm.instances[0].params] == [6]


def test_prompts_are_capped_at_the_reported_max_model_len_minus_one(vllm, scorers):
    vllm.model_max_len = 40  # what the engine reports for a model with a short context
    scorer = VllmScorer(str(scorers["complexity"]))  # max_length 2048 > the model's context
    assert (scorer.max_model_len, scorer.max_length) == (40, 39)
    scores = scorer.scores([complexity_prompt(LONG), complexity_prompt("Thank you!")])
    assert len(scores) == 2 and all(1 <= s <= 6 for s in scores)
    long, short = vllm.instances[0].prompts
    assert len(long) == 39  # room for the one scored token; the double rejects 40
    assert long[-3:] == short[-3:]  # the closing line `##Complexity: ` is kept
    scorer.teardown()


def test_the_max_model_len_option_reaches_vllm_and_caps_prompts(vllm, scorers):
    scorer = VllmScorer(str(scorers["complexity"]), max_model_len=64, max_length=2048)
    assert vllm.instances[0].engine["max_model_len"] == 64 and scorer.max_length == 63
    scorer.scores([complexity_prompt(LONG)])
    assert [len(p) for p in vllm.instances[0].prompts] == [63]
    # The uncapped prompt is what vLLM would have rejected, failing the whole batch.
    with pytest.raises(ValueError, match="longer than the maximum model length of 64"):
        vllm.instances[0].generate([{"prompt_token_ids": list(range(64))}], scorer.params)


def test_engine_options_and_the_memory_split(vllm, scorers):
    records = chats(list(zip(QUESTIONS, ANSWERS)))
    together = quality(scorers, backend="vllm", tensor_parallel_size=2, max_model_len=256)
    together.score(records, StageContext())
    assert [(e.engine["gpu_memory_utilization"], e.engine["tensor_parallel_size"],
             e.engine["max_model_len"]) for e in vllm.instances] == [(0.45, 2, 256)] * 2
    together.teardown()
    assert vllm.alive == []
    vllm.instances.clear()
    in_turn = quality(scorers, backend="vllm", scorer_loading="in_turn")
    in_turn.score(records, StageContext())
    assert [e.engine["gpu_memory_utilization"] for e in vllm.instances] == [0.9, 0.9]
    in_turn.teardown()
    # 0.9 each, side by side, is what a GPU cannot give: vLLM refuses at start-up.
    with pytest.raises(ValueError, match="Free memory on device"):
        quality(scorers, backend="vllm", gpu_memory_utilization=0.9).score(records, StageContext())


@pytest.mark.slow
def test_in_turn_loads_one_scorer_at_a_time_across_shards(vllm, scorers, tmp_path):
    store = RunStore(tmp_path / "run")
    write_chat_source(store, "toy", rows=100, shards=4)
    stage = Quality(QualityConfig(
        complexity_model=str(scorers["complexity"]), quality_model=str(scorers["quality"]),
        backend="vllm", scorer_loading="in_turn", max_length=48))
    [result] = run_stages([stage], store, ["toy"], input_fingerprint="in")
    assert result.stats["rows"] == 100
    c, q = str(scorers["complexity"]), str(scorers["quality"])
    # Four shards; the loaded scorer goes first, so each shard costs one switch, and every
    # engine is shut down before the next one starts.
    assert vllm.events == [("start", c), ("shutdown", c), ("start", q),  # shard 1
                           ("shutdown", q), ("start", c),  # shard 2: quality, then complexity
                           ("shutdown", c), ("start", q),  # shard 3
                           ("shutdown", q), ("start", c),  # shard 4
                           ("shutdown", c)]  # teardown
    assert vllm.alive == []
    decisions = pl.read_parquet(store.stage("quality").decisions)
    assert decisions.get_column("deita_score").null_count() == 0
