"""DEITA quality scoring on tiny in-process Llama models loaded by path, as hub models are."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from conftest import ingest_into
from tiny_lm import build_tiny_lm

from curate.curation.quality import (
    COMPLEXITY_TEMPLATE,
    QUALITY_TEMPLATE,
    Quality,
    QualityConfig,
    TransformersScorer,
    complexity_prompt,
    digit_token_ids,
    encode_prompts,
    quality_prompt,
)
from curate.engine.runner import run_stages
from curate.engine.stage import StageContext
from curate.errors import ConfigError
from curate.store import RunStore

QUESTIONS = [
    "What is the capital of France?", "How do I treat a cold?", "Explain why the sky is blue.",
    "Write a short poem about the sea.", "What are the symptoms of diabetes?",
    "Give me a list of fruits.", "Thank you!",
]
ANSWERS = [
    "Paris is the capital of France.", "Rest, fluids and time; see a doctor if the fever is high.",
    "Sunlight scatters off air molecules, and blue light scatters most.",
    "The sea is wide and grey and deep.",
    "Thirst, frequent urination, tiredness and blurred vision.",
    "Apples, pears, plums.", "You are welcome.",
]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Three scorers: random weights; the same with another vocabulary order; a flat one."""
    root = tmp_path_factory.mktemp("tiny")
    return {
        "lm": build_tiny_lm(root / "lm"),
        "shuffled": build_tiny_lm(root / "shuffled", vocab_seed=7),
        "flat": build_tiny_lm(root / "flat", constant_logits=True),
    }


def stage(model, **options) -> Quality:
    return Quality(QualityConfig(complexity_model=str(model), quality_model=str(model),
                                 device="cpu", max_length=128, **options))


def chats(records: list[list[tuple[str, str]]]) -> pa.Table:
    """Chat records from their (user, assistant) turns."""
    messages = [[{"role": role, "content": text} for pair in turns
                 for role, text in zip(("user", "assistant"), pair)] for turns in records]
    return pa.table({"messages": messages, "chosen": [None] * len(messages)})


def scored(model, records: list[list[tuple[str, str]]], **options) -> pl.DataFrame:
    return pl.from_arrow(stage(model, **options).score(chats(records), StageContext()))


def by_hand(model, prompt: str) -> float:
    """The DEITA score computed directly: the model's logits at the end of ``prompt``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    lm = AutoModelForCausalLM.from_pretrained(model)
    with torch.no_grad():
        logits = lm(tokenizer(prompt, return_tensors="pt").input_ids).logits[0, -1]
    digits = tokenizer.convert_tokens_to_ids(list("123456"))
    p = torch.softmax(logits[digits].double(), dim=0)
    return float((p * torch.arange(1, 7, dtype=torch.float64)).sum())


def test_the_prompts_are_deitas_byte_for_byte():
    # Copied from hkust-nlp/deita, src/deita/selection/scorer/llama_scorer.py, lines 23 and 30
    # (commit acec45ca2ec7534513a352cbbac3965c1cf82a13; mistral_scorer.py has the same).
    assert COMPLEXITY_TEMPLATE == ("You are a helpful assistant. Please identify the complexity score of the following user query. \n##Query: {instruction}  \n##Complexity: ")  # noqa: E501
    assert QUALITY_TEMPLATE == ("You are a helpful assistant. Please identify the quality score of the Response corresponding to the Question. \n #Question#:\n{instruction}\n#Response#:\n{output} \n##Quality: ")  # noqa: E501
    assert complexity_prompt("Q?").endswith("##Query: Q?  \n##Complexity: ")
    assert quality_prompt("Q?", "A.").endswith("#Question#:\nQ?\n#Response#:\nA. \n##Quality: ")


def test_a_score_is_the_expected_digit_under_the_softmax_of_the_logits(models):
    scores = scored(models["lm"], [[(QUESTIONS[0], ANSWERS[0])]])
    complexity = by_hand(models["lm"], complexity_prompt(QUESTIONS[0]))
    quality = by_hand(models["lm"], quality_prompt(QUESTIONS[0], ANSWERS[0]))
    row = scores.row(0, named=True)
    assert row["complexity"] == pytest.approx(complexity, abs=1e-5)
    assert row["quality"] == pytest.approx(quality, abs=1e-5)
    assert row["deita_score"] == pytest.approx(complexity * quality, abs=1e-4)
    assert 1 <= complexity <= 6 and abs(complexity - 3.5) > 1e-3  # the random model is not flat


def test_a_two_turn_record_sums_complexity_times_quality_over_its_turns(models):
    turns = [(QUESTIONS[1], ANSWERS[1]), (QUESTIONS[2], ANSWERS[2])]
    row = scored(models["lm"], [turns]).row(0, named=True)
    # Complexity of each user turn alone (no history); quality of each (user, assistant) pair.
    c = [by_hand(models["lm"], complexity_prompt(u)) for u, _ in turns]
    q = [by_hand(models["lm"], quality_prompt(u, a)) for u, a in turns]
    assert row["turns"] == 2
    assert row["complexity_turns"] == pytest.approx(c, abs=1e-5)
    assert row["quality_turns"] == pytest.approx(q, abs=1e-5)
    assert row["deita_score"] == pytest.approx(c[0] * q[0] + c[1] * q[1], abs=1e-4)
    assert row["complexity"] == pytest.approx(np.mean(c), abs=1e-5)


def test_digit_token_ids_come_from_the_tokenizer(models):
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers import models as tokenizer_models
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    ids = {}
    for name in ("lm", "shuffled"):
        tokenizer = AutoTokenizer.from_pretrained(models[name])
        ids[name] = digit_token_ids(tokenizer)
        assert ids[name] == tokenizer.convert_tokens_to_ids(list("123456"))
    assert ids["lm"] != ids["shuffled"]
    # The other vocabulary still scores exactly.
    row = scored(models["shuffled"], [[(QUESTIONS[3], ANSWERS[3])]]).row(0, named=True)
    expected = by_hand(models["shuffled"], complexity_prompt(QUESTIONS[3]))
    assert row["complexity"] == pytest.approx(expected, abs=1e-5)
    # A tokenizer without a "4" token is refused, naming the digit.
    raw = Tokenizer(tokenizer_models.WordLevel(
        vocab={"<unk>": 0, "1": 1, "2": 2, "3": 3, "5": 4, "6": 5}, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(ConfigError, match="encodes `4` as"):
        digit_token_ids(PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>"))


def test_left_padded_batches_score_like_one_prompt_at_a_time(models):
    prompts = [quality_prompt(q * (1 + i % 3), a)
               for i, (q, a) in enumerate(zip(QUESTIONS, ANSWERS))]
    prompts += [complexity_prompt(q) for q in QUESTIONS]
    one = TransformersScorer(str(models["lm"]), device="cpu", dtype="float32", max_length=128,
                             batch_size=1).scores(prompts)
    batched = TransformersScorer(str(models["lm"]), device="cpu", dtype="float32", max_length=128,
                                 batch_size=5).scores(prompts)
    assert np.abs(one - batched).max() < 1e-5
    assert len(set(np.round(one, 6))) == len(prompts)


def test_a_long_prompt_keeps_its_closing_line(models):
    long = " ".join(QUESTIONS * 40)
    scorer = TransformersScorer(str(models["lm"]), device="cpu", dtype="float32", max_length=64,
                                batch_size=4)
    [ids] = encode_prompts(scorer.tokenizer, [complexity_prompt(long)], 64)
    assert len(ids) == 64 and ids[0] == scorer.tokenizer.bos_token_id
    assert scorer.tokenizer.decode(ids[-3:]).split() == ["##", "Complexity", ":"]
    assert 1 <= scorer.scores([complexity_prompt(long)])[0] <= 6


def test_a_collapsed_scorer_fails_the_stage(models):
    table = chats([[(q, a)] for q, a in zip(QUESTIONS * 3, ANSWERS * 3)])  # 21 turns
    flat = stage(models["flat"])
    with pytest.raises(ConfigError, match=r"complexity scorer `.*flat` gave near-constant scores "
                       r"\(standard deviation 0\.0000 over 21 turns, 100% of them") as error:
        flat.score(table, StageContext())
    assert "select on noise" in str(error.value) and "`complexity_model`" in str(error.value)
    # Too few scores to judge: no check, and no constant substituted either (3.5 is uniform).
    few = pl.from_arrow(flat.score(table.slice(0, 5), StageContext()))
    assert few.get_column("complexity").to_list() == pytest.approx([3.5] * 5)
    # The same check guards `decide` over all shards together.
    scores = few.with_columns(source=pl.lit("s"), row=pl.int_range(5, dtype=pl.Int64),
                              id=pl.format("{}", pl.int_range(5)))
    with pytest.raises(ConfigError, match="near-constant"):
        stage(models["flat"], collapse_min_turns=5).decide(scores)


def scores_frame(values: dict[str, list[float]]) -> pl.DataFrame:
    """Scores of single-turn records: source -> deita scores (complexity x quality)."""
    rows = [(source, i, f"{source}-{i:03d}", s / (3 + i % 10 / 10), 3 + i % 10 / 10, s)
            for source, scores in values.items() for i, s in enumerate(scores)]
    columns = ["source", "row", "id", "complexity", "quality", "deita_score"]
    frame = pl.DataFrame(rows, schema=columns, orient="row")
    return frame.with_columns(turns=pl.lit(1, pl.Int32),
                              complexity_turns=pl.concat_list("complexity"),
                              quality_turns=pl.concat_list("quality"))


def test_decisions_drop_the_bottom_fraction_per_source_with_ties_by_id(models):
    rng = np.random.default_rng(0)
    scores = scores_frame({"a": list(rng.uniform(4, 30, 30)),
                           "b": [10.0] * 12 + list(rng.uniform(11, 30, 13))})
    decided = stage(models["lm"]).decide(scores)
    low = (pl.col("reason") == "low_quality").sum()
    counts = dict(decided.group_by("source").agg(low).iter_rows())
    assert counts == {"a": 6, "b": 5}  # 20% of 30, 20% of 25
    a = decided.filter(pl.col("source") == "a")
    assert a.filter(~pl.col("keep")).get_column("deita_score").max() < a.filter(
        pl.col("keep")).get_column("deita_score").min()
    # b: the 12 tied lowest scores lose by id, the smaller ids first.
    dropped = decided.filter((pl.col("source") == "b") & ~pl.col("keep"))
    assert dropped.get_column("row").to_list() == [0, 1, 2, 3, 4]
    assert decided.select("source", "row").equals(scores.select("source", "row"))  # order kept
    # Per-source fractions override the default.
    decided = stage(models["lm"], drop_fraction=0.0, source_fractions={"b": 0.5}).decide(scores)
    assert decided.get_column("reason").value_counts().sort("reason").rows() == [
        (None, 30 + 13), ("low_quality", 12)]


def test_thresholds_and_source_rejection(models):
    scores = scores_frame({"good": [20.0] * 20, "poor": [5.0] * 15 + [20.0] * 5})
    decided = stage(models["lm"], drop_fraction=0.0, min_score=8.0,
                    reject_source_above=0.5).decide(scores)
    reasons = dict(decided.get_column("reason").drop_nulls().value_counts().iter_rows())
    assert reasons == {"low_quality": 15, "source_rejected:low_quality": 5}
    assert decided.filter(pl.col("source") == "good").get_column("keep").all()
    # Complexity and quality thresholds apply to the means over turns.
    decided = stage(models["lm"], drop_fraction=0.0, min_complexity=2.0).decide(scores)
    assert decided.filter(~pl.col("keep")).height == 15  # 5 / 3.9 < 2 <= 20 / 3.9


def test_options_are_validated():
    with pytest.raises(ValueError, match=r"backend\n  Input should be 'transformers' or 'vllm'"):
        QualityConfig(backend="onnx")
    with pytest.raises(ValueError, match=r"source_fractions\.a\n  Input should be less than 1"):
        QualityConfig(source_fractions={"a": 1.5})
    assert {"drop_fraction", "source_fractions", "min_score", "min_complexity", "min_quality",
            "reject_source_above"} <= Quality.decision_fields
    assert "complexity_model" not in Quality.decision_fields


def test_a_missing_model_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot load scorer model"):
        stage(tmp_path / "nowhere").score(chats([[("q", "a")]]), StageContext())


def test_scores_persist_and_a_new_fraction_only_re_decides(models, catalog, data_root, tmp_path):
    for name in ("dolly", "self_instruct"):
        ingest_into(catalog.source(name), tmp_path / "run", data_root, batch_rows=100)
    store = RunStore(tmp_path / "run")

    def run(quality: Quality):
        return run_stages([quality], store, ["dolly", "self_instruct"], input_fingerprint="in")[0]

    first = run(stage(models["lm"]))
    assert first.reused == "nothing"
    assert first.stats["reasons"] == {"low_quality": 30 + 35}  # 20% of 151 and of 175
    decisions = pl.read_parquet(store.stage("quality").path / "decisions.parquet")
    assert decisions.get_column("deita_score").null_count() == 0

    again = stage(models["lm"], drop_fraction=0.1)
    second = run(again)
    assert (second.reused, again._scorers) == ("scores", {})  # no model was even loaded
    assert second.stats["reasons"] == {"low_quality": 15 + 17}
    redecided = pl.read_parquet(store.stage("quality").path / "decisions.parquet")
    assert redecided.get_column("deita_score").equals(decisions.get_column("deita_score"))


@pytest.mark.gpu
def test_vllm_scores_like_transformers(models):
    pytest.importorskip("vllm")
    records = [[pair] for pair in zip(QUESTIONS, ANSWERS)]
    ours = scored(models["lm"], records)
    theirs = scored(models["lm"], records, backend="vllm", dtype="float32")
    assert np.allclose(ours.get_column("deita_score").to_numpy(),
                       theirs.get_column("deita_score").to_numpy(), atol=1e-3)
