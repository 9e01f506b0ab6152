"""Decontamination on the real benchmark files: planted items, subsets, generic stems."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import ingest_into

from curate.curation.decontam import BenchmarkIndex, DecontamConfig, Decontaminate, load_items
from curate.curation.text import all_text, user_text
from curate.engine.stage import StageContext
from curate.pipeline.adhoc import run_on_file

BENCHMARKS = ("pubmedqa", "mmlu_medical")
KINDS = ("verbatim", "template", "shuffled", "edited")


@pytest.fixture(scope="module")
def bench(catalog, data_root, tmp_path_factory):
    """The real benchmarks, ingested; their items; and the clean MedQuAD sample."""
    run = tmp_path_factory.mktemp("bench")
    for name in (*BENCHMARKS, "medmcqa", "medmcqa_singlechoice"):
        ingest_into(catalog.benchmark(name), run, data_root)
    files = {name: sorted((run / "ingest" / name).glob("records-*.parquet"))
             for name in (*BENCHMARKS, "medmcqa", "medmcqa_singlechoice")}
    _, clean, _ = ingest_into(catalog.source("medquad_sample"), run, data_root)
    return files, clean


def render(question: str, options: list[str], kind: str, rng: random.Random, vocab: list[str]) -> str:
    if kind == "verbatim":
        return question + "\n" + "\n".join(f"{chr(65 + i)}. {o}" for i, o in enumerate(options))
    if kind == "template":
        return ("Answer the following multiple choice question.\nQuestion: " + question
                + "\nOptions:\n" + "\n".join(f"({chr(97 + i)}) {o}" for i, o in enumerate(options))
                + "\nAnswer with the letter only.")
    if kind == "shuffled":
        shuffled = options[:]
        rng.shuffle(shuffled)
        return question + "\n" + "\n".join(f"{i + 1}) {o}" for i, o in enumerate(shuffled))
    words = render(question, options, "verbatim", rng, vocab).split(" ")
    for i in rng.sample(range(len(words)), max(1, int(len(words) * rng.uniform(0.10, 0.20)))):
        words[i] = rng.choice(vocab)
    return " ".join(words)


def index_of(files, names, **options) -> BenchmarkIndex:
    context = StageContext(benchmarks={n: files[n] for n in names})
    return BenchmarkIndex(load_items(context, list(names)), DecontamConfig(**options))


def flagged(index: BenchmarkIndex, user: list[str], text: list[str] | None = None) -> np.ndarray:
    """Tiers 1-3 on chats whose user turns are ``user`` (and whose whole texts are ``text``)."""
    config = index.config
    texts = pl.Series(text or user)
    ngram = np.nan_to_num(index.ngram_matches(texts)[1]) >= config.ngram_min_matches
    found = index.containment(texts)
    containment = np.nan_to_num(found["containment"][1]) >= config.min_containment
    stem = np.nan_to_num(found["stem"][1]) >= config.min_stem_containment
    return ngram | containment | stem


@pytest.mark.parametrize("kind", KINDS)
def test_planted_items_are_caught_in_every_disguise(bench, kind):
    files, clean = bench
    rng = random.Random(kind)
    vocab = " ".join(clean.get_column("messages").list.get(1).struct.field("content").to_list()).split()
    index = index_of(files, BENCHMARKS)
    for name in BENCHMARKS:
        items = pl.read_parquet(files[name]).sample(150, seed=1).get_column("mcqa").to_list()
        planted = [render(i["question"], i["options"], kind, rng, vocab) for i in items]
        recall = flagged(index, planted).mean()
        assert recall >= 0.95, f"{name} {kind}: recall {recall:.3f}"


def test_clean_medquad_has_no_false_positive(bench):
    files, clean = bench
    frame = clean.select(user=user_text(), text=all_text())
    index = index_of(files, (*BENCHMARKS, "medmcqa"))
    hits = flagged(index, frame.get_column("user").to_list(), frame.get_column("text").to_list())
    assert hits.sum() == 0


def test_the_singlechoice_dev_set_is_found_inside_the_full_dev_set(bench):
    files, _ = bench
    subset = pl.read_parquet(files["medmcqa_singlechoice"])
    assert subset.height == 2816
    frame = subset.select(user=user_text(), text=all_text())
    hits = flagged(index_of(files, ["medmcqa"]), frame.get_column("user").to_list(),
                   frame.get_column("text").to_list())
    assert hits.all()
    questions = subset.filter(pl.Series(hits)).get_column("mcqa").struct.field("question")
    assert questions.str.strip_chars().n_unique() >= 2802


def test_a_generic_stem_with_other_options_is_not_contamination(bench, tmp_path):
    files, _ = bench
    mmlu = pl.read_parquet(files["mmlu_medical"])
    stem = pl.col("mcqa").struct.field("question")
    generic = mmlu.filter(stem.is_duplicated()).unique("id", maintain_order=True)
    generic = generic.filter(stem.is_duplicated())  # same stem, different options
    assert generic.height >= 2
    first, others = generic.head(1), generic.slice(1)
    first.write_parquet(tmp_path / "one.parquet")
    index = BenchmarkIndex(load_items(StageContext(benchmarks={"one": [tmp_path / "one.parquet"]}),
                                      ["one"]), DecontamConfig())
    frame = others.select(user=user_text(), text=all_text())
    assert not flagged(index, frame.get_column("user").to_list(), frame.get_column("text").to_list()).any()


def write_chats(path: Path, users: list[str]) -> Path:
    path.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": u}, {"role": "assistant", "content": "An answer."}]}) + "\n"
        for u in users))
    return path


@pytest.mark.parametrize(("clean_rows", "rejected"), [(150, True), (250, False)])
def test_a_source_above_half_a_percent_is_rejected(bench, tmp_path, clean_rows, rejected):
    files, clean = bench
    item = pl.read_parquet(files["mmlu_medical"]).row(10, named=True)["mcqa"]
    users = clean.get_column("messages").list.get(0).struct.field("content").to_list()[:clean_rows]
    path = write_chats(tmp_path / "chats.jsonl", [render(item["question"], item["options"],
                                                         "template", random.Random(0), [])] + users)
    result = run_on_file(path, tmp_path / "out.parquet", {"decontam": {}}, benchmarks=["mmlu_medical"])
    out = pl.read_parquet(result.out).sort("row")
    first = out.row(0, named=True)
    assert (first["reason"], first["reason_ref"]) == ("contaminated", "mmlu_medical")
    assert first["contam_item"] == {"benchmark": "mmlu_medical", "row": 10}  # read back as a struct
    expected = {"contaminated": 1}
    if rejected:
        expected["source_rejected"] = clean_rows
    assert result.reasons == expected
    report = pl.read_parquet(result.reports["contamination"]).row(0, named=True)
    assert (report["contaminated"], report["source_rows"], report["source_rejected"]) == (
        1, clean_rows + 1, rejected)
    example = report["examples"][0]
    assert example["item"] == "mmlu_medical:10" and item["question"][:40] in example["item_text"]


def test_thresholds_are_decisions_not_scores():
    assert {"reject_source_above", "min_containment", "ngram_min_matches",
            "embedding_threshold"} <= Decontaminate.decision_fields


@pytest.mark.slow
def test_embedding_tier_catches_a_paraphrase(bench, tmp_path):
    files, clean = bench
    items = pl.read_parquet(files["mmlu_medical"])
    question = items.row(0, named=True)["mcqa"]["question"]
    paraphrase = ("Compression of the facial nerve at the stylomastoid foramen by a lesion "
                  "results in ipsilateral what?")
    users = [paraphrase] + clean.get_column("messages").list.get(0).struct.field("content").to_list()[:50]
    result = run_on_file(write_chats(tmp_path / "p.jsonl", users), tmp_path / "out.parquet",
                         {"decontam": {"embedding_model": "minilm", "reject_source_above": 1.0}},
                         benchmarks=["mmlu_medical"])
    out = pl.read_parquet(result.out).sort("row")
    assert "facial nerve" in question
    first = out.row(0, named=True)
    assert first["contam_tier"] == "embedding"
    assert first["contam_item"] == {"benchmark": "mmlu_medical", "row": 0}
    assert first["embedding_score"] >= 0.92
    assert out.slice(1).get_column("embedding_score").max() < 0.92
    assert result.reasons == {"contaminated": 1}


def test_a_stock_exam_phrase_with_one_matching_word_is_not_a_match():
    phrase = "which of the following is the most appropriate next step in the management of this patient"
    stems = [f"{w} presents with fever cough and {last} {phrase}" for w, last in
             (("alice", "wheeze"), ("bob", "rash"), ("carol", "pain"), ("dave", "nausea"))]
    items = pl.DataFrame({"benchmark": "exam", "item": [f"exam:{i}" for i in range(4)],
                          "question": stems, "context": "", "options": "", "answer": ""})
    index = BenchmarkIndex(items, DecontamConfig())
    texts = pl.Series([
        f"The nurse noted a wheeze {phrase} and wrote it down.",  # "wheeze" + the phrase
        f"Case: {stems[1]}? Discuss.",                              # the whole question
    ])
    item, matches, _ = index.ngram_matches(texts)
    assert item.tolist() == [-1, 1]
    legacy = BenchmarkIndex(items, DecontamConfig(min_novel_tokens=1))
    assert legacy.ngram_matches(texts)[0].tolist() == [0, 1]  # what plain 13-grams flag
