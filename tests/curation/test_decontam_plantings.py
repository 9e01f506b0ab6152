"""decontam_v3 on real plantings: every shipped benchmark in every form of
``benchmarks/decontam.py``, fields apart, every turn, specific stems, the embedding cache."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from curate.catalog import resolve_data_root
from curate.curation.config import DecontamConfig
from curate.curation.decontam import BenchmarkIndex, Decontaminate, load_items
from curate.curation.embed import EmbeddingCache, embed
from curate.engine.stage import StageContext
from curate.pipeline.adhoc import run_on_file

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("decontam_bench", ROOT / "benchmarks" / "decontam.py")
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

ITEMS = 20  # per benchmark


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The three shipped decontamination benchmarks indexed; planted and clean real rows."""
    files = bench.ingest_benchmarks(tmp_path_factory.mktemp("bench"))
    index = BenchmarkIndex(load_items(StageContext(benchmarks=files), list(bench.BENCHMARKS)),
                           DecontamConfig())
    pool = bench.hosts(2500)
    clean_pairs, host_rows = pool[:1500], pool[1500:]
    vocab = " ".join(a for _, a in host_rows[:300]).split()
    items = bench.sample_items(index, ITEMS, seed=3)
    planted = bench.with_texts(bench.planted_rows(items, host_rows, vocab, seed=3))
    clean = bench.with_texts(bench.chats(clean_pairs))
    return files, index, planted, clean


@pytest.fixture(scope="module")
def decided(world):
    """The real stage (score, then ``Decontaminate.decide``; its index built once), the source
    rule off (``reject_source_above=1``), so ``keep`` is the per-row verdict."""
    stage = Decontaminate(DecontamConfig(embedding_cache=False, reject_source_above=1.0))
    context = StageContext(benchmarks=world[0])

    def run(frame: pl.DataFrame) -> pl.DataFrame:
        records = frame.select("messages", "chosen", "rejected").to_arrow()
        scores = pl.from_arrow(stage.score(records, context))
        assert isinstance(scores, pl.DataFrame)
        decided = stage.decide(scores.with_columns(source=pl.lit("planted")))
        assert not (decided.get_column("reason") == "source_rejected:contamination").any()
        return decided

    return run


def flagged(out: pl.DataFrame) -> np.ndarray:
    assert out.filter(~pl.col("keep")).get_column("reason").str.starts_with("contaminated:").all()
    return (~out.get_column("keep")).to_numpy()


def test_every_benchmark_in_every_form_is_caught_naming_its_item(world, decided):
    _, index, planted, _ = world
    out = decided(planted)
    hit = (~out.get_column("keep")).to_numpy()
    benchmarks = planted.filter(pl.Series(hit)).get_column("benchmark").to_list()
    reasons = out.filter(~pl.col("keep")).get_column("reason").to_list()
    assert reasons == [f"contaminated:{b}" for b in benchmarks]
    table = planted.select("benchmark", "item", "form").with_columns(
        flagged=pl.Series(hit), named=out.get_column("contam_item"))
    # the exact rows: every flagged row names the very item planted in it (or one with the
    # same question and options elsewhere in the benchmark)
    questions = index.items.select("item", key=pl.concat_str(["question", "options"]))
    wrong = (table.filter("flagged").join(questions, on="item").join(
        questions.rename({"item": "named", "key": "named_key"}), on="named")
        .filter(pl.col("key") != pl.col("named_key")))
    assert wrong.height == 0, wrong.head(5)
    recall = table.group_by("benchmark", "form").agg(pl.col("flagged").mean()).sort("flagged")
    assert recall.height == len(bench.BENCHMARKS) * len(bench.FORMS)
    assert recall.get_column("flagged").min() >= 0.9, recall.head(5)
    missed = table.filter(~pl.col("flagged"))
    assert missed.height <= 3, missed  # of 540 rows; measured: 2, both PubMedQA edited


def test_clean_real_rows_raise_no_flag(world, decided):
    *_, clean = world
    assert clean.height == 1500
    assert not flagged(decided(clean)).any()


def test_a_copied_pubmedqa_question_with_its_label_is_contamination_without_the_abstract(world):
    _, index, *_ = world
    items = index.items.filter(pl.col("benchmark") == "pubmedqa").head(30)
    rows = bench.chats([(q, f"{a}.") for q, a in zip(items["question"], items["answer"], strict=True)])
    abstract = bench.chats([("Summarise this.", c) for c in items["context"].head(5)])
    frame = bench.with_texts(pl.concat([rows, abstract]))
    found = index.match(frame.get_column("text"), frame.get_column("turns"))
    item, score, field = found["stem"]
    hit = np.nan_to_num(score[:30]) >= index.config.min_stem_containment
    assert hit.sum() == 29  # one of the 30 questions is too generic to count without its abstract
    assert np.array(index.item_of(item[:30]).to_pylist())[hit].tolist() == items["item"].filter(
        pl.Series(hit)).to_list()
    # the question alone, or (a question other items share) the question with its label
    assert {field[i] for i in np.flatnonzero(hit)} <= {"question", "answer"}
    n_item, n_score, n_field = found["ngram"]
    assert index.item_of(n_item[30:]).to_pylist() == items["item"].head(5).to_list()
    assert n_field[30:] == ["context"] * 5


def test_an_item_in_a_later_assistant_turn_is_found(world):
    _, index, *_ = world
    item = index.items.filter(pl.col("benchmark") == "mmlu_medical").row(7, named=True)
    options = item["options"].split("\n")
    messages = [[{"role": "user", "content": "Tell me about anatomy exams."},
                 {"role": "assistant", "content": "They are hard."},
                 {"role": "user", "content": "Give an example."},
                 {"role": "assistant", "content": "Sure: " + item["question"] + " " + " / ".join(options)}]]
    frame = bench.with_texts(pl.DataFrame({"messages": messages}))
    found = index.match(frame.get_column("text"), frame.get_column("turns"))
    assert index.item_of(found["containment"][0]).to_pylist() == [item["item"]]
    assert found["containment"][1][0] >= index.config.min_containment


def _containment_of(index: BenchmarkIndex, text: str) -> tuple[float, str | None]:
    frame = bench.with_texts(bench.chats([(text, "ok")]))
    item, score, _ = index.containment(frame.get_column("text"))["containment"]
    return float(np.nan_to_num(score[0], nan=0.0)), index.item_of(item).to_pylist()[0]


def test_an_edit_that_wiped_a_short_question_is_carried_by_its_options(world):
    _, index, *_ = world
    # medmcqa:1003, "IDL has" with four options, 15% of its words replaced (from the
    # benchmark's edited form): the question part lost its one rare word
    edited = "IDL continues Apo B100 and Apo E\nB. Apo C\nC. intraocular E\nD. All of the above"
    assert index.items.filter(pl.col("item") == "medmcqa:1003").get_column("question").item() == "IDL has"
    score, item = _containment_of(index, edited)
    assert (item, score >= index.config.min_containment) == ("medmcqa:1003", True)
    frame = bench.with_texts(bench.chats([(edited, "ok")]))
    parts = index.part_shares(frame.get_column("text")).join(
        index.keys.filter(pl.col("tier") == "containment").select("key", "item"), on="key")
    weakest = parts.filter(pl.col("item") == index.items.get_column("item").to_list().index("medmcqa:1003"))
    assert weakest.get_column("share").min() < 0.5  # the old rule (every part >= 0.55) missed it


def test_a_short_items_words_spread_over_a_long_passage_on_its_topic_are_not_a_copy(world):
    _, index, *_ = world
    # medmcqa:1708 ("Tumor marker for seminoma:" PLAP, LDH, AFP, HCG) against a real MedQuAD
    # answer on extragonadal germ cell tumours, which names the markers across a paragraph
    rows = [json.loads(line) for line in (resolve_data_root() / "medical/medquad/medquad_answered.jsonl")
            .read_text().splitlines()]
    row = next(r for r in rows if r["question"] == "How to diagnose Extragonadal Germ Cell Tumors ?")
    passage = row["question"] + "\n" + row["answer"]
    score, _ = _containment_of(index, passage)
    assert score < index.config.min_containment
    wide = BenchmarkIndex(index.items, DecontamConfig(short_window_words=index.config.window_words))
    score, item = _containment_of(wide, passage)  # compared with 160-word windows only
    assert (item, score >= index.config.min_containment) == ("medmcqa:1708", True)


def test_a_short_stem_quoted_with_its_answer_is_found(world):
    _, index, *_ = world
    # medmcqa:1156: a short stem, specific only with its gold answer (IDF mass 24-32)
    quote = 'A classic exam question asks: "Petechial hemorrhage is seen in" The expected answer is ' \
            'thrombocytopenic purpura.'
    frame = bench.with_texts(bench.chats([("Tell me about bleeding.", quote)]))
    item, score, field = index.containment(frame.get_column("text"))["stem"]
    assert (index.item_of(item).to_pylist(), field) == (["medmcqa:1156"], ["answer"])
    assert score[0] >= index.config.min_stem_containment


def test_a_generic_repeated_stem_alone_is_not_contamination(world, decided):
    _, index, *_ = world
    stem = "Which of the following statements is false?"
    assert index.items.filter(pl.col("question").str.starts_with("Which of the following statements is false"
                                                                 )).height >= 2
    frame = bench.with_texts(bench.chats([(stem, "The third one.")]))
    assert not flagged(decided(frame)).any()
    generic = (index.items.with_row_index("i").select(pl.col("i").cast(pl.Int64), "question")
               .filter(pl.col("question").str.to_lowercase().str.strip_chars(" ?:.")
                       == "which of the following statements is false"))
    assert generic.height >= 2
    keys = index.keys.join(generic, left_on="item", right_on="i")
    assert keys.filter(pl.col("tier") == "stem").get_column("field").to_list() in ([], ["answer"] * len(
        keys.filter(pl.col("tier") == "stem")))


def test_the_report_says_which_field_matched(world, tmp_path):
    _, index, *_ = world
    item = index.items.filter(pl.col("benchmark") == "pubmedqa").row(3, named=True)
    rows = [{"messages": [{"role": "user", "content": item["question"]},
                          {"role": "assistant", "content": item["answer"]}]}]
    rows += [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
             for q, a in bench.hosts(40)[1:40]]
    path = tmp_path / "chats.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = run_on_file(path, tmp_path / "out.parquet", {"decontam": {"embedding_cache": False}},
                         benchmarks=["pubmedqa"])
    out = pl.read_parquet(result.out).sort("row")
    first = out.row(0, named=True)
    benchmark, row = item["item"].rsplit(":", 1)
    assert first["contam_field"] == "question"
    assert first["contam_item"] == {"benchmark": benchmark, "row": int(row)}
    assert first["contam_tier"] in ("ngram", "stem")  # a long question has 13-grams too
    assert result.reasons == {"contaminated": 1, "source_rejected": 39}
    assert dict(out.group_by("reason_ref").len().iter_rows()) == {"pubmedqa": 1, "contamination": 39}
    report = pl.read_parquet(result.reports["contamination"]).row(0, named=True)
    assert (report["contaminated"], report["field_question"], report["source_rejected"]) == (1, 1, True)
    assert report["examples"][0]["field"] == "question"


@pytest.mark.slow
def test_the_embedding_cache_reads_back_and_stays_bounded(tmp_path):
    texts = ["What causes anaemia?", "How is asthma treated?", "What causes anaemia?"]
    first = embed(texts, cache=tmp_path)
    store = EmbeddingCache(tmp_path)
    assert len(store) == 2
    store.close()
    again = embed(texts, cache=tmp_path)
    assert np.array_equal(first, again)
    assert np.allclose((first[0] * first[2]).sum(), 1.0)
    small = EmbeddingCache(tmp_path, max_bytes=384 * 4)  # room for one vector
    small.put_many(small.keys("x", ["a", "b"]), np.ones((2, 384), np.float32))
    assert len(small) == 1 and small.size_bytes() <= 384 * 4
    small.close()


@pytest.mark.slow
def test_the_onnx_backend_gives_the_torch_vectors(tmp_path):
    pytest.importorskip("onnxruntime")
    texts = [q + " " + a for q, a in bench.hosts(40)]
    torch_vectors = embed(texts, max_tokens=128)
    onnx_vectors = embed(texts, max_tokens=128, backend="onnx", cache=tmp_path)
    assert (torch_vectors * onnx_vectors).sum(axis=1).min() >= 0.999
    assert list(tmp_path.glob("onnx/*/model.onnx"))


def test_tier_four_embeds_the_turns_of_the_chosen_roles():
    from curate.curation.decontam import turn_texts

    turn = pl.Struct({"role": pl.String, "content": pl.String})
    frame = pl.DataFrame({
        "messages": [[{"role": "system", "content": "be brief"}, {"role": "user", "content": "what is it"},
                      {"role": "assistant", "content": "a cyst"}], None],
        "chosen": [None, [{"role": "assistant", "content": "yes"}]],
        "rejected": [None, [{"role": "assistant", "content": "no"}]],
    }, schema={"messages": pl.List(turn), "chosen": pl.List(turn), "rejected": pl.List(turn)})
    texts = frame.select(turns=turn_texts(DecontamConfig().embedding_roles)).get_column("turns").to_list()
    assert texts == [["what is it"], []]
    texts = frame.select(turns=turn_texts(["user", "assistant"])).get_column("turns").to_list()
    assert texts == [["what is it", "a cyst"], ["yes", "no"]]
