"""An interrupted ingestion resumes without a duplicate or a missing row."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from conftest import ingest_into

from curate.ingest.runner import source_fingerprint
from curate.progress import Tick


class Interrupted(Exception):
    pass


def stop_after(shards: int):
    seen = []

    def progress(tick: Tick) -> None:
        seen.append(tick.done)
        if len(seen) == shards:
            raise Interrupted(f"stopped after shard {len(seen)}")

    return progress


def test_interrupted_ingestion_resumes_exactly(catalog, data_root, tmp_path):
    source = catalog.source("medquad_sample")
    _, reference, _ = ingest_into(source, tmp_path / "whole", data_root, batch_rows=100)

    with pytest.raises(Interrupted, match="stopped after shard 5"):
        ingest_into(source, tmp_path / "cut", data_root, batch_rows=100, progress=stop_after(5))
    folder = tmp_path / "cut/ingest/medquad_sample"
    assert len(list((folder / "_done").glob("*.json"))) == 5
    # A crash while writing shard 5 leaves a data file without its marker, and a temp file.
    shutil.copy(folder / "records-00004.parquet", folder / "records-00005.parquet")
    (folder / ".records-00006.parquet.tmp").write_bytes(b"partial")

    result, resumed, _ = ingest_into(source, tmp_path / "cut", data_root, batch_rows=100)
    assert result.resumed_shards == 5
    assert result.records == 1500
    assert resumed.get_column("row").to_list() == list(range(1500))
    assert resumed.equals(reference)
    assert not list(folder.glob(".*.tmp"))


def test_a_finished_source_is_not_read_again(catalog, data_root, tmp_path):
    source = catalog.source("dolly")
    ingest_into(source, tmp_path / "run", data_root)
    marker = tmp_path / "run/ingest/dolly/_done/00000.json"
    before = marker.stat().st_mtime_ns
    result, records, _ = ingest_into(source, tmp_path / "run", data_root)
    assert marker.stat().st_mtime_ns == before
    assert records.height == result.records == 151


def test_a_changed_input_file_restarts_its_source(tmp_path, catalog, data_root):
    data = tmp_path / "data"
    (data / "general/dolly").mkdir(parents=True)
    target = data / "general/dolly/dolly_151.jsonl"
    lines = (data_root / "general/dolly/dolly_151.jsonl").read_text().splitlines()
    target.write_text("\n".join(lines[:10]) + "\n")
    source = catalog.source("dolly")
    _, first, _ = ingest_into(source, tmp_path / "run", data)
    target.write_text("\n".join(lines[:20]) + "\n")
    _, second, _ = ingest_into(source, tmp_path / "run", data)
    assert (first.height, second.height) == (10, 20)
    assert second.filter(pl.col("row") < 10).equals(first)


def test_a_new_citation_or_description_keeps_the_ingested_shards(catalog, data_root, tmp_path):
    source = catalog.source("dolly")
    ingest_into(source, tmp_path / "run", data_root)
    marker = tmp_path / "run/ingest/dolly/_done/00000.json"
    before = marker.stat().st_mtime_ns
    described = source.model_copy(update={"citation": "@misc{dolly, title={Dolly}}",
                                          "description": "Other words."})
    result, records, _ = ingest_into(described, tmp_path / "run", data_root)
    assert result.restarted is None and marker.stat().st_mtime_ns == before and records.height == 151
    relicensed = source.model_copy(update={"license": "CC-BY-4.0"})  # a field records hold: ingested again
    again, records, _ = ingest_into(relicensed, tmp_path / "run", data_root)
    assert again.restarted == "its catalog entry changed"
    assert records.get_column("license").unique().to_list() == ["CC-BY-4.0"]


def test_moving_the_data_folder_keeps_the_ingested_shards(catalog, data_root, tmp_path, caplog):
    first = tmp_path / "first"
    (first / "general/dolly").mkdir(parents=True)
    shutil.copy(data_root / "general/dolly/dolly_151.jsonl", first / "general/dolly/dolly_151.jsonl")
    source = catalog.source("dolly")
    ingest_into(source, tmp_path / "run", first)
    state = json.loads((tmp_path / "run/ingest/dolly/_state.json").read_text())
    assert list(state["files"]) == ["general/dolly/dolly_151.jsonl"]  # named as the entry names it
    marker = tmp_path / "run/ingest/dolly/_done/00000.json"
    before = marker.stat().st_mtime_ns
    identity = source_fingerprint(source, first)  # what a run's stages are keyed on, through it
    moved = Path(shutil.move(first, tmp_path / "moved"))
    assert source_fingerprint(source, moved) == identity
    result, records, _ = ingest_into(source, tmp_path / "run", moved)
    assert result.restarted is None and marker.stat().st_mtime_ns == before and records.height == 151
    assert "starts over" not in caplog.text
