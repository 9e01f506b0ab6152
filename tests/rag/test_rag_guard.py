"""One guard on every path: real MedMCQA dev items planted in every form of the guard's
measurement (benchmarks/guard.py) never come back from an index opened for their benchmark:
not from `Index.search`, not from `curate rag search`, not into MedPrompt's few-shot prompts."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from click.testing import CliRunner
from conftest import write_mcqa_benchmark

from curate.cli import main
from curate.errors import ConfigError
from curate.evaluate.config import McqaConfig
from curate.evaluate.mcqa import evaluate_mcqa
from curate.rag.build import check_benchmarks, index_input, open_index, read_benchmarks, search_index
from curate.rag.config import GuardConfig
from curate.rag.index import RECORD_SCHEMA, Index, build_index

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(Path(__file__).parents[1] / "evaluate"))
from guard import FORMS, paraphrase, replace_fifth  # noqa: E402
from helpers import tiny_model  # noqa: E402

pytestmark = pytest.mark.slow
TEST_ROWS = 6


@pytest.fixture(scope="module")
def planted(tmp_path_factory, data_root):
    """A benchmark of the first six MedMCQA dev items with six words or more (its own catalog,
    so only these are embedded), and an index of 40 honest MMLU-medical questions plus
    every item planted in every form."""
    folder = tmp_path_factory.mktemp("guard")
    dev = read_benchmarks(["medmcqa"], data_root=data_root)["medmcqa"].sort("row")
    tests = [m for m in dev.get_column("mcqa").to_list() if len(m["question"].split()) >= 6][:TEST_ROWS]
    catalog = write_mcqa_benchmark(folder, "medmcqa_small", [
        {"question": m["question"], "options": m["options"], "answer": m["answer"]} for m in tests],
        question="question", options="options", answer="answer", answer_format="index")
    honest = read_benchmarks(["mmlu_medical"], data_root=data_root)["mmlu_medical"].head(40)
    rng = random.Random(0)
    vocabulary = sorted({w for m in honest.get_column("mcqa").to_list() for w in m["question"].split()
                         if w.isalpha() and len(w) > 3})
    records = [{"id": f"honest{i:03d}", "source": "mmlu", "question": m["question"], "options": m["options"],
                "answer": m["answer"]} for i, m in enumerate(honest.get_column("mcqa").to_list())]
    for row, m in enumerate(tests):
        order = list(range(len(m["options"])))
        rng.shuffle(order)
        para = paraphrase(m["question"])
        forms = {"verbatim": (m["question"], m["options"], m["answer"]),
                 "shuffled": (m["question"], [m["options"][i] for i in order], order.index(m["answer"])),
                 "paraphrased": (para, m["options"], m["answer"]),
                 "fifth_word": (replace_fifth(para, vocabulary, rng), m["options"], m["answer"])}
        assert tuple(forms) == FORMS
        records += [{"id": f"planted-{form}-{row}", "source": "train", "question": q, "options": o,
                     "answer": a} for form, (q, o, a) in forms.items()]
    build_index(pa.Table.from_pylist(records, schema=RECORD_SCHEMA), folder / "index", input_name="test")
    return {"index": folder / "index", "catalog": catalog, "tests": tests, "records": records,
            "folder": folder}


def planted_ids(hits) -> set[str]:
    return {h.id for found in hits for h in found if h.id.startswith("planted-")}


def test_an_index_opened_for_a_benchmark_never_returns_its_items(planted, data_root):
    raw = Index.open(planted["index"])
    queries = [m["question"] for m in planted["tests"]] + [r["question"] for r in planted["records"]
                                                            if r["id"].startswith("planted-")]
    assert len(planted_ids(raw.search(queries, k=5))) == TEST_ROWS * len(FORMS)  # unguarded, they come back
    guarded = open_index(planted["index"], benchmarks=["medmcqa_small"], catalog_dirs=[planted["catalog"]],
                         data_root=data_root)
    assert planted_ids(guarded.search(queries, k=len(raw))) == set()
    assert len(guarded) == len(raw) - TEST_ROWS * len(FORMS)
    assert all(reason.startswith(("contaminated:medmcqa_small:", "similar:medmcqa_small:"))
               for reason in guarded.excluded.values())


def test_the_similarity_guard_catches_what_the_lexical_tiers_are_blind_to(planted, data_root):
    """With the lexical tiers blind (an n-gram no question reaches, containment tiers left to
    items of 10,000 tokens, no stem specific enough), the similarity tier alone excludes
    every planted copy: by the question's cosine (at or above 0.8), or, for a copy whose
    question was reworded below it (every fifth word replaced), by its options with a cosine
    of 0.25 or more; and no honest record."""
    blind = GuardConfig(decontam={"ngram": 50, "min_item_shingles": 10_000, "min_stem_specificity": 1e9})
    check = check_benchmarks(planted["index"], ["medmcqa_small"], blind, catalog_dirs=[planted["catalog"]],
                             data_root=data_root)
    assert {e.tier for e in check.excluded} == {"similarity"}
    planted_all = {r["id"] for r in planted["records"] if r["id"].startswith("planted-")}
    assert {e.id for e in check.excluded} == planted_all
    for e in check.excluded:
        if e.field == "question":
            assert e.score is not None and e.score >= 0.8
        else:
            assert e.field == "question+options" and e.score is not None and 0.25 <= e.score < 0.8
    raw = Index.open(planted["index"])
    vectors = dict(zip(raw.ids, raw.vectors, strict=True))
    tests = raw.embed([m["question"] for m in planted["tests"]])
    below = {f"planted-fifth_word-{row}" for row in range(TEST_ROWS)
             if float(vectors[f"planted-fifth_word-{row}"] @ tests[row]) < 0.8}
    assert below and below == {e.id for e in check.excluded if e.field == "question+options"}
    without_options = check_benchmarks(planted["index"], ["medmcqa_small"],
                                       blind.model_copy(update={"min_options_similarity": 1.0}),
                                       catalog_dirs=[planted["catalog"]], data_root=data_root)
    assert {e.id for e in without_options.excluded} == {e.id for e in check.excluded} - below


def test_a_retrieved_example_too_close_to_the_query_is_dropped_and_counted(planted):
    raw = Index.open(planted["index"])
    question = planted["tests"][0]["question"]
    found = raw.guarded(GuardConfig().max_similarity).retrieve([question], k=5)[0]
    assert {h.id for h in found.dropped} >= {"planted-verbatim-0", "planted-shuffled-0",
                                             "planted-paraphrased-0"}
    assert len(found.hits) == 5  # filled up from further down the ranking
    # (the query-time guard alone: a copy below the threshold, with every fifth word replaced,
    # is left to the decontamination tiers of an index opened for the benchmark)
    assert all(h.score < 0.8 for h in found.hits) and all(h.score >= 0.8 for h in found.dropped)


def test_medprompt_never_shows_a_planted_copy(planted, data_root, tmp_path):
    model = tiny_model(tmp_path / "tiny")
    config = McqaConfig(model={"backend": "transformers", "model": str(model), "device": "cpu"},
                        retrieval=str(planted["index"]), k=4, shuffles=2, resamples=200)
    result = evaluate_mcqa(["medmcqa_small"], config, out=tmp_path / "out", catalog_dirs=[planted["catalog"]],
                           data_root=data_root)
    predictions = result.retrieval
    assert predictions is not None and predictions.height == TEST_ROWS
    shown = set(predictions.get_column("examples").explode().to_list())
    assert not {i for i in shown if i.startswith("planted-")}
    assert predictions.get_column("example_questions").list.len().to_list() == [4] * TEST_ROWS
    r = result.results["retrieval"]
    assert r["contamination"]["excluded"] == TEST_ROWS * len(FORMS)
    assert r["guard"]["max_similarity"] == 0.8 and r["guard"]["dropped_at_query"] == 0
    # the same guard options give `rag check` and the evaluation the same exclusions
    loose = GuardConfig(decontam={"min_containment": 0.4})
    checked = check_benchmarks(planted["index"], ["medmcqa_small"], loose, catalog_dirs=[planted["catalog"]],
                               data_root=data_root)
    again = evaluate_mcqa(["medmcqa_small"], config.model_copy(update={"guard": loose}), out=tmp_path / "o2",
                          catalog_dirs=[planted["catalog"]], data_root=data_root)
    assert again.results["retrieval"]["contamination"]["records"] == checked.summary()["records"]


def test_the_command_line_searches_and_checks_with_the_guard(planted, data_root, tmp_path):
    common = ["--catalog", str(planted["catalog"]), "--data-root", str(data_root)]
    question = planted["tests"][1]["question"]
    raw = CliRunner().invoke(main, ["rag", "search", str(planted["index"]), question, "--json"])
    assert raw.exit_code == 0 and "planted-" in raw.output
    out = CliRunner().invoke(main, ["rag", "search", str(planted["index"]), question, "--k", "8",
                                    "--benchmark", "medmcqa_small", "--json", *common])
    assert out.exit_code == 0, out.output
    assert "planted-" not in out.output
    assert len(json.loads(out.output)[0]["hits"]) == 8
    listed = tmp_path / "check.json"
    check = CliRunner().invoke(main, ["rag", "check", str(planted["index"]), "medmcqa_small", "--out",
                                      str(listed), *common])
    assert check.exit_code == 0, check.output
    assert "... 4 more: --out FILE or --json lists every one" in check.output
    written = json.loads(listed.read_text())
    assert written["excluded"] == len(written["records"]) == TEST_ROWS * len(FORMS)
    assert {"id", "benchmark", "item", "tier", "score", "question"} <= set(written["records"][0])
    refused = CliRunner().invoke(main, ["rag", "check", str(planted["index"]), "medmcqa_small",
                                        "--reject-source-above", "0.1", *common])
    assert refused.exit_code == 2 and "No such option" in refused.output
    assert search_index(planted["index"], [question], k=2, benchmarks=["medmcqa_small"],
                        catalog_dirs=[planted["catalog"]], data_root=data_root)[0].dropped == 0


def test_every_guarded_command_takes_the_same_guard_options():
    from curate.cli.options import ConfigOption

    def guard(path: list[str]) -> set[str]:
        command = main
        for name in path:
            command = command.get_command(None, name)  # type: ignore[union-attr, arg-type]
        return {p.name for p in command.params if isinstance(p, ConfigOption) and "guard" in p.target}

    check, search, evaluate = guard(["rag", "check"]), guard(["rag", "search"]), guard(["eval", "mcqa"])
    assert check == search == evaluate and {"max_similarity", "min_containment", "ngram"} <= check
    assert "reject_source_above" not in check


def test_a_benchmark_is_not_indexed_unless_asked(planted, data_root, tmp_path):
    with pytest.raises(ConfigError, match="`mmlu_medical` is a benchmark.*--allow-benchmark"):
        index_input("mmlu_medical", tmp_path / "ix", data_root=data_root)
    path = data_root / "benchmarks/mmlu_medical/mmlu_medical_test.jsonl"
    with pytest.raises(ConfigError, match="`mmlu_medical` is a benchmark"):
        index_input(str(path), tmp_path / "ix", source="mmlu_medical", data_root=data_root)
    refused = CliRunner().invoke(main, ["rag", "index", "mmlu_medical", "--out", str(tmp_path / "ix"),
                                        "--data-root", str(data_root)])
    assert refused.exit_code == 2 and "--allow-benchmark" in refused.output
    assert not (tmp_path / "ix").exists()
    built = index_input("medmcqa_small", tmp_path / "ok", catalog_dirs=[planted["catalog"]],
                        data_root=data_root, allow_benchmark=True)
    assert built.added == TEST_ROWS
    assert pl.DataFrame(Index.open(tmp_path / "ok").records).height == TEST_ROWS
