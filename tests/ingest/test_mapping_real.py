"""Every mapping kind, on the real files in ../shared/data."""

from __future__ import annotations

import csv
import json

import polars as pl
import pytest
from conftest import ingest_into

from curate.records import validate_records


@pytest.fixture
def ingest(catalog, data_root, tmp_path):
    def run(name: str):
        entry = catalog.sources.get(name) or catalog.benchmarks[name]
        result, records, quarantine = ingest_into(entry, tmp_path / "run", data_root)
        assert result.error is None
        if records.height:
            validate_records(records.to_arrow(), where=name)
        return result, records, quarantine
    return run


def test_pubmedqa_object_of_records(ingest, data_root):
    result, records, quarantine = ingest("pubmedqa")
    assert (result.records, quarantine.height) == (1000, 0)
    raw = json.loads((data_root / "benchmarks/pubmedqa/ori_pqal.json").read_text())
    first_key, first = next(iter(raw.items()))
    row = records.row(0, named=True)
    assert row["mcqa"]["options"] == ["yes", "no", "maybe"]
    assert row["mcqa"]["options"][row["mcqa"]["answer"]] == first["final_decision"]
    assert row["mcqa"]["question"].endswith(first["QUESTION"])
    assert row["mcqa"]["question"].startswith(first["CONTEXTS"][0])
    assert json.loads(row["meta"])["pmid"] == first_key
    answers = records.get_column("mcqa").struct.field("answer").value_counts().sort("answer")
    assert answers.get_column("count").sum() == 1000


def test_mmlu_csv_and_jsonl_give_the_same_records(ingest):
    _, from_csv, _ = ingest("mmlu_medical_csv")
    _, from_jsonl, _ = ingest("mmlu_medical")
    assert from_csv.height == from_jsonl.height == 1089
    # Same content in two formats (index answers vs letter answers): same ids.
    assert set(from_csv.get_column("id")) == set(from_jsonl.get_column("id"))
    row = from_csv.row(0, named=True)
    assert row["messages"][0]["content"].endswith(
        "A. paralysis of the facial muscles.\nB. paralysis of the facial muscles and loss of taste."
        "\nC. paralysis of the facial muscles, loss of taste and lacrimation.\nD. paralysis of the "
        "facial muscles, loss of taste, lacrimation and decreased salivation.")
    assert row["messages"][1] == {"role": "assistant", "content": "A. paralysis of the facial muscles."}


def test_medmcqa_jsonl_with_labelled_options(ingest, data_root):
    _, records, _ = ingest("medmcqa")
    assert records.height == 4183
    first = json.loads((data_root / "benchmarks/medmcqa/medmcqa_dev_full.jsonl").open().readline())
    mcqa = records.row(0, named=True)["mcqa"]
    assert mcqa["options"][0] == first["choices"][0].removeprefix("A. ")
    assert mcqa["answer"] == first["answer"]


def test_hidden_answers_are_kept_as_questions(ingest):
    result, records, quarantine = ingest("medmcqa_test")
    assert (result.records, quarantine.height) == (6150, 0)
    assert records.get_column("mcqa").struct.field("answer").null_count() == 6150
    assert records.get_column("messages").list.len().unique().to_list() == [1]


def test_medquad_self_instruct_and_dolly_chats(ingest, data_root):
    _, medquad, _ = ingest("medquad_sample")
    assert medquad.height == 1500 and set(medquad.get_column("domain")) == {"medical"}
    _, seeds, _ = ingest("self_instruct")
    assert seeds.height == 175
    raw = [json.loads(line) for line in (data_root / "general/self_instruct/seed_tasks.jsonl").open()]
    with_input = next(i for i, r in enumerate(raw) if r["instances"][0]["input"])
    user = seeds.row(with_input, named=True)["messages"][0]["content"]
    assert user == raw[with_input]["instruction"] + "\n\n" + raw[with_input]["instances"][0]["input"]
    _, dolly, _ = ingest("dolly")
    assert dolly.height == 151 and set(dolly.get_column("license")) == {"CC-BY-SA-3.0"}


def test_advbench_csv_gives_prompt_only_records(ingest, data_root):
    _, records, _ = ingest("advbench")
    assert records.height == 520
    with (data_root / "safety/advbench/harmful_behaviors.csv").open() as handle:
        first = next(csv.DictReader(handle))
    row = records.row(0, named=True)
    assert row["messages"] == [{"role": "user", "content": first["goal"]}]
    assert json.loads(row["meta"]) == {"target": first["target"]}


def test_vqa_rad_carries_the_image_bytes(ingest, data_root):
    result, records, quarantine = ingest("vqa_rad")
    assert (result.records, quarantine.height) == (3515, 0)
    row = records.row(0, named=True)
    image = row["images"][0]
    assert image["path"] == "images/synpic54610.jpg"
    assert image["bytes"] == (data_root / "multimodal/vqa_rad/images/synpic54610.jpg").read_bytes()
    assert row["kind"] == "image_text"
    # Answers that are numbers in the JSON become text, not a failure.
    assert records.filter(pl.col("messages").list.get(1).struct.field("content") == "4").height >= 2


def test_ids_are_stable_across_runs(catalog, data_root, tmp_path):
    source = catalog.source("dolly")
    _, first, _ = ingest_into(source, tmp_path / "a", data_root)
    _, second, _ = ingest_into(source, tmp_path / "b", data_root, batch_rows=7)
    assert first.get_column("id").to_list() == second.get_column("id").to_list()
    assert first.get_column("row").to_list() == list(range(151))
