"""Benchmark items: a catalog entry read through the ingestion mapping, as MCQA items.

A benchmark is read exactly as a run reads it (``curate.read.sources``: the same readers,
mapping and quarantine), so an item here is the record decontamination checks and a
release is measured on (``McqaItem`` lives in ``curate.rag.prompts``, beside the prompt
builder, so retrieval can use both). An item's id is ``<benchmark>:<row>`` (``row``: its 0-based
position in the benchmark's files), the same id the decontamination report gives.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from curate.catalog import Source
from curate.errors import ConfigError
from curate.rag.prompts import McqaItem
from curate.read.sources import read_entries

SUBJECT_KEYS = ("subject", "subject_name")
"""``meta`` keys that name an item's subject (MMLU's `subject`, MedMCQA's `subject_name`)."""


@dataclass
class BenchmarkData:
    """What reading a benchmark gave: its records (one per readable row) and the rows that
    could not become records, with their reasons (``unknown_answer``, ``empty_option``, ...)."""

    entry: Source
    records: pl.DataFrame
    quarantine: pl.DataFrame

    @property
    def rows(self) -> int:
        """Rows in the benchmark's files: records plus quarantined rows."""
        return self.records.height + self.quarantine.height

    def items(self, *, limit: int | None = None, answered: bool = True) -> list[McqaItem]:
        """The MCQA items in row order (the first ``limit``); ``answered``: only items with a
        gold answer."""
        frame = self.records.sort("row")
        if answered:
            frame = frame.filter(pl.col("mcqa").struct.field("answer").is_not_null())
        if limit is not None:
            frame = frame.head(limit)
        return [
            McqaItem(benchmark=self.entry.name, row=row, record_id=rid, question=mcqa["question"],
                     options=tuple(mcqa["options"]), answer=mcqa["answer"], subject=_subject(meta))
            for row, rid, mcqa, meta in frame.select("row", "id", "mcqa", "meta").iter_rows()
        ]


def read_benchmark(entry: Source, *, data_root: Path, kinds: tuple[str, ...] = ("mcqa",)) -> BenchmarkData:
    """Read a benchmark catalog entry (local files or the hub) into records and quarantine;
    its mapping must be of one of ``kinds``."""
    if entry.mapping.kind not in kinds:
        raise ConfigError(f"benchmark `{entry.name}` has mapping kind `{entry.mapping.kind}`; "
                          f"this needs an entry of kind {' or '.join(f'`{k}`' for k in kinds)}")
    try:
        (read,) = read_entries([entry], data_root=data_root)
    except ConfigError as exc:
        raise ConfigError(f"benchmark {exc}") from None
    return BenchmarkData(entry=entry, records=pl.DataFrame(read.records),
                         quarantine=pl.DataFrame(read.quarantine))


def _subject(meta: str | None) -> str | None:
    if not meta:
        return None
    values = json.loads(meta)
    for key in SUBJECT_KEYS:
        if isinstance(values.get(key), str) and values[key]:
            return values[key]
    return None
