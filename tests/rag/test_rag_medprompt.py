"""The example database (synth_cot_v1, offline backend), the contamination check of a
planted benchmark item, and MedPrompt end to end on MedMCQA dev items with a tiny model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from curate.evaluate.config import McqaConfig
from curate.evaluate.mcqa import evaluate_mcqa
from curate.rag.build import check_benchmarks, index_input
from curate.rag.config import CotIndexConfig
from curate.rag.examples import index_rows, read_input, self_generated_cot
from curate.rag.index import Index, build_index
from curate.records import conform

sys.path.insert(0, str(Path(__file__).parents[1] / "evaluate"))
from helpers import tiny_model  # noqa: E402

pytestmark = pytest.mark.slow
PLANTED_ROW = 3  # the MedMCQA dev item planted into the example database


@pytest.fixture(scope="module")
def database(tmp_path_factory, data_root):
    """MMLU-medical's first 24 items with offline chains of thought (gold withheld, kept
    when verified), plus one MedMCQA dev item planted as a plain record."""
    folder = tmp_path_factory.mktemp("rag")
    mmlu = read_input("mmlu_medical", data_root=data_root).records.slice(0, 24)
    config = CotIndexConfig(generator={"backend": "offline"}, max_attempts=2)
    synthetic, stats = self_generated_cot(mmlu, config, work=folder / "work", cache=folder / "cache")
    medmcqa = read_input("medmcqa", data_root=data_root).records
    planted = medmcqa.filter(pa.compute.equal(medmcqa.column("row"), PLANTED_ROW))
    rows, skipped = index_rows(pa.concat_tables([synthetic, conform(planted)]))
    build_index(rows, folder / "index", input_name="test")
    return {"folder": folder, "index": folder / "index", "stats": stats,
            "planted": planted.column("id")[0].as_py(), "medmcqa": medmcqa, "skipped": skipped}


def test_cot_database_keeps_only_verified_chains(database):
    stats = database["stats"]
    assert stats["stage"] == "synth_cot_v1" and stats["offline_backend"] is True
    kept = stats["synthetic"]
    rejected = sum(stats["rejected"].values())
    assert kept + rejected == 24 and 0 < kept < 24  # withheld gold: the offline picks are sometimes wrong
    assert set(stats["rejected"]) == {"wrong_answer"}
    index = Index.open(database["index"])
    assert len(index) == kept + 1
    with_cot = index.records.filter(pl.col("cot").is_not_null())
    assert with_cot.height == kept
    for record in with_cot.to_dicts():  # every kept chain concludes with the gold letter
        assert record["cot"].rstrip().endswith(f"Answer: {chr(65 + record['answer'])}")
        assert json.loads(record["meta"])["offline_backend"] is True


def test_planted_benchmark_item_is_excluded_and_counted(database, data_root):
    index = Index.open(database["index"])
    question = database["medmcqa"].filter(pa.compute.equal(database["medmcqa"].column("row"), PLANTED_ROW)
                                          ).column("mcqa")[0].as_py()["question"]
    assert index.search([question], k=1)[0][0].id == database["planted"]  # unchecked, it retrieves itself
    check = check_benchmarks(database["index"], ["medmcqa"], data_root=data_root)
    summary = check.summary()
    assert summary["excluded"] == 2 and summary["by_benchmark"] == {"medmcqa": 2}
    assert summary["records"][0]["id"] == database["planted"]
    assert summary["records"][0]["item"] == f"medmcqa:{PLANTED_ROW}"
    # the similarity guard also finds an MMLU anatomy item that is MedMCQA dev's item 2069
    # ("The palatine processes begin to fuse at" / "Palatine process begins to fuse at:")
    assert {k: summary["records"][1][k] for k in ("item", "tier", "field")} == {
        "item": "medmcqa:2069", "tier": "similarity", "field": "question"}
    assert summary["records"][1]["score"] > 0.95
    assert summary["kept"] == len(index) - 2
    assert database["planted"] not in {h.id for h in check.index.search([question], k=len(index))[0]}


def test_medprompt_end_to_end_on_medmcqa_dev(database, tmp_path):
    model = tiny_model(tmp_path / "tiny")
    config = McqaConfig(model={"backend": "transformers", "model": str(model)}, limit=6,
                        retrieval=str(database["index"]), k=3, shuffles=3, resamples=200)
    result = evaluate_mcqa(["medmcqa"], config, out=tmp_path / "out")
    r = result.results["retrieval"]
    assert r["contamination"]["excluded"] == 1 and r["k"] == 3 and r["shuffles"] == 3
    assert r["prompts"] == 6 * 3
    predictions = result.retrieval
    assert predictions is not None and predictions.height == 6
    assert predictions.get_column("examples").list.len().to_list() == [3] * 6
    assert database["planted"] not in set(predictions.get_column("examples").explode().to_list())
    for votes, choice in predictions.select("votes", "prediction").iter_rows():
        assert len(votes) == 3 and choice in votes
    zero = result.results["benchmarks"]["medmcqa"]["accuracy"]["value"]
    side = r["versus_zero_shot"]["medmcqa"]
    assert side["accuracy_b"] == zero
    assert side["accuracy_a"] == r["benchmarks"]["medmcqa"]["accuracy"]["value"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Retrieval-augmented (k = 3, 3 shuffles, numpy search)" in report
    assert "**1 excluded** (1 from medmcqa" in report
    consistency = r["benchmarks"]["medmcqa"]["position_bias"]["permutation_consistency"]
    votes = predictions.get_column("votes").to_list()
    assert consistency["items"] == 6
    assert consistency["all_agree"] == pytest.approx(sum(len(set(v)) == 1 for v in votes) / 6)
    assert "| medmcqa | 6 |" in report.split("Position bias per item")[1]
    assert (tmp_path / "out" / "predictions_retrieval.parquet").is_file()


def test_medprompt_generate_mode_with_the_offline_backend(database, tmp_path):
    config = McqaConfig(model={"backend": "offline"}, mode="generate", limit=4,
                        retrieval=str(database["index"]), k=2, shuffles=4, resamples=200)
    result = evaluate_mcqa(["medmcqa"], config, out=tmp_path / "out")
    assert result.results["offline_backend"] is True
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Offline backend" in report and "## Retrieval-augmented" in report
    predictions = result.retrieval
    assert predictions is not None
    assert predictions.get_column("votes").list.len().to_list() == [4] * 4


def test_index_a_release_with_synthetic_cot(database, tmp_path):
    """A release holds messages, not `mcqa`: the question, options and answer are read back
    from its turns, and its manifest hash goes into the index's manifest."""
    from curate.mixes.release import trl_columns, write_release

    index = Index.open(database["index"])
    synthetic = pl.from_arrow(index.as_records())
    originals = {r["id"]: r for r in synthetic.to_dicts()}
    from curate.rag.exclusion import as_records

    records = pl.from_arrow(as_records(index)).with_columns(
        source=pl.lit("synth_cot"), category=pl.lit("synthetic"),
        meta=pl.Series(synthetic.get_column("meta").to_list()))

    def write(folder: Path) -> list[str]:
        (folder / "data" / "text").mkdir(parents=True)
        trl_columns(records, "text").write_parquet(folder / "data" / "text" / "train-00000.parquet")
        return ["data/text/train-00000.parquet"]

    release = tmp_path / "releases" / "demo" / "0.1.0"
    write_release(release, write, pl.DataFrame({"id": []}, schema={"id": pl.String}),
                  {"name": "demo", "version": "0.1.0"}, lambda _: "card")
    result = index_input(str(release), tmp_path / "ix")
    rebuilt = Index.open(tmp_path / "ix")
    assert rebuilt.ids == index.ids
    for row in rebuilt.records.to_dicts():
        original = originals[row["id"]]
        assert (row["question"], row["options"], row["answer"]) == (
            original["question"], original["options"], original["answer"])
        assert (row["cot"] is None) == (original["cot"] is None)
    assert result.index.manifest["parts"][0]["release_manifest_sha256"] is not None
    assert result.index.manifest["parts"][0]["input"] == "demo@0.1.0"
