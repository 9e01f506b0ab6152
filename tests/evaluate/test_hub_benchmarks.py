"""The shipped MedQA and CareQA entries, read by the real hub code (`datasets.load_dataset`)
from local folders in their hub layout, offline: the catalog's mapping, the pinned commit,
the subject field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from curate.catalog import Catalog
from curate.evaluate.items import read_benchmark

ROOT = Path(__file__).resolve().parents[2]
DEV = [  # MedMCQA-dev-like items, written in each hub dataset's own format
    ("Which nerve supplies the deltoid muscle?", ["Axillary", "Radial", "Ulnar", "Median"], 0, "anatomy"),
    ("Drug of choice for absence seizures is:", ["Phenytoin", "Ethosuximide", "Carbamazepine", "Diazepam"], 1,
     "pharmacology"),
    ("Vitamin deficiency causing night blindness:", ["Vitamin D", "Vitamin C", "Vitamin A", "Vitamin K"], 2,
     "medicine"),
]


def local_entry(tmp_path: Path, name: str, folder: Path) -> Path:
    """A catalog folder with the shipped entry ``name``, its hub repo replaced by ``folder``."""
    entry = yaml.safe_load((ROOT / f"catalogs/benchmarks/{name}.yaml").read_text())
    assert len(entry["location"]["hf"]["revision"]) == 40  # pinned to a commit
    entry["location"]["hf"]["repo"] = str(folder)
    entry["name"] = f"{name}_local"
    path = tmp_path / "cat/benchmarks" / f"{name}_local.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(entry))
    return tmp_path / "cat"


def test_medqa_test_entry_reads_the_hub_layout(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = tmp_path / "MedQA-USMLE-4-options"
    repo.mkdir()
    rows = [{"question": q, "answer": o[a], "options": dict(zip("ABCD", o, strict=True)),
             "meta_info": f"step{1 + i % 2}", "answer_idx": "ABCD"[a]} for i, (q, o, a, _) in enumerate(DEV)]
    (repo / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (repo / "train.jsonl").write_text(json.dumps(rows[0]) + "\n")
    catalog = Catalog.load([local_entry(tmp_path, "medqa", repo)])
    data = read_benchmark(catalog.benchmark("medqa_local"), data_root=data_root)
    items = data.items(subject_field="meta_info")
    assert [(i.options, i.answer, i.subject) for i in items] == [
        (tuple(o), a, f"step{1 + n % 2}") for n, (_, o, a, _) in enumerate(DEV)]
    assert data.count(len(items)).to_json()["read"] == 3  # the test split only
    assert [i.subject for i in data.items()] == [None] * 3  # `meta_info` is no default subject key


def test_careqa_entry_reads_its_config_and_one_based_answers(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = tmp_path / "CareQA"
    repo.mkdir()
    (repo / "README.md").write_text(
        "---\nconfigs:\n- config_name: CareQA_en\n  data_files:\n  - split: test\n    path: CareQA_en.json\n"
        "- config_name: CareQA_es\n  data_files:\n  - split: test\n    path: CareQA_es.json\n---\n")
    rows = [{"exam_id": 26, "question": q, "op1": o[0], "op2": o[1], "op3": o[2], "op4": o[3],
             "cop": a + 1, "year": 2024, "category": c, "unique_id": f"u{n}"}
            for n, (q, o, a, c) in enumerate(DEV)]
    (repo / "CareQA_en.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (repo / "CareQA_es.json").write_text(json.dumps({**rows[0], "question": "¿Qué nervio?"}) + "\n")
    catalog = Catalog.load([local_entry(tmp_path, "careqa", repo)])
    data = read_benchmark(catalog.benchmark("careqa_local"), data_root=data_root)
    items = data.items(subject_field="category")
    assert [(i.question, i.answer, i.subject) for i in items] == [(q, a, c) for q, _, a, c in DEV]
    assert data.quarantine.height == 0


@pytest.mark.parametrize("cop, reason", [(0, "answer_out_of_range"), (5, "answer_out_of_range")])
def test_a_one_based_answer_outside_the_options_is_quarantined(tmp_path, data_root, cop, reason):
    from curate.catalog import Source

    data = tmp_path / "x.jsonl"
    data.write_text(json.dumps({"q": "Which?", "a": "x", "b": "y", "c": "z", "cop": cop}) + "\n")
    entry = Source.model_validate({
        "name": "x", "version": 1, "license": "MIT", "domain": "medical", "task": "mcqa",
        "location": {"path": str(data), "allow_outside_data_root": True},
        "mapping": {"kind": "mcqa", "question": "q", "options": ["a", "b", "c"], "answer": "cop",
                    "answer_format": "index1"}})
    read = read_benchmark(entry, data_root=data_root)
    assert read.quarantine.get_column("reason").to_list() == [reason]
