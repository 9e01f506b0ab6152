"""Hub locations go through the real `datasets.load_dataset`; here on a local folder."""

from __future__ import annotations

import shutil

from conftest import ingest_into, source_from_yaml


def test_hub_location_streams_through_datasets(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(data_root / "general/dolly/dolly_151.jsonl", repo / "train.jsonl")
    source = source_from_yaml(tmp_path, f"""
        name: dolly_hub
        version: 1
        license: CC-BY-SA-3.0
        domain: general
        task: instruction
        location:
          hf: {{repo: "{repo}", split: train, revision: 0123456789abcdef0123456789abcdef01234567}}
        mapping: {{kind: chat, question: instruction, context: context, answer: response}}
    """)
    result, records, _ = ingest_into(source, tmp_path / "run", data_root, batch_rows=40)
    assert (result.error, result.records) == (None, 151)
    assert records.get_column("row").to_list() == list(range(151))
    local = source.model_copy(update={"location": source.location.model_copy(
        update={"hf": None, "path": str(repo / "train.jsonl"), "allow_outside_data_root": True})})
    _, from_file, _ = ingest_into(local, tmp_path / "run2", data_root)
    assert records.get_column("id").to_list() == from_file.get_column("id").to_list()
