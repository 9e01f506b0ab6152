"""Benchmark items: a catalog entry read through the ingestion mapping, as MCQA items.

A benchmark is read exactly as a run reads it (``curate.read.sources``: the same readers,
mapping and quarantine), so an item here is the record decontamination checks and a
release is measured on (``McqaItem`` lives in ``curate.rag.prompts``, beside the prompt
builder, so retrieval can use both). An item's id is ``<benchmark>:<row>`` (``row``: its 0-based
position in the benchmark's files), the same id the decontamination report gives.

Every row is accounted for (``BenchmarkData.count``): a row that cannot be scored is
*dropped* with the audit's code for its flaw (``DROP_CODES``: ``missing_answer``,
``answer_not_in_options``, ``empty_option``, ...), never left out of the denominator in
silence; ``Denominator`` holds rows read, items scored and drops by reason, and
``Denominator.refuse`` stops an evaluation of a benchmark with more drops than allowed.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from curate.catalog import Source
from curate.errors import ConfigError
from curate.rag.prompts import McqaItem
from curate.read.sources import read_entries

SUBJECT_KEYS = ("subject", "subject_name")
"""``meta`` keys that name an item's subject (MMLU's `subject`, MedMCQA's `subject_name`);
another field (MedQA's `meta_info`) is named by ``subject_field``."""

QUARANTINE_FLAWS = {"unknown_answer": "answer_not_in_options",
                    "answer_out_of_range": "answer_not_in_options",
                    "empty_option": "empty_option", "too_few_options": "empty_option",
                    "unreadable_image": "unreadable_image"}
"""Ingestion's quarantine reasons -> the audit's flaw codes."""
DROP_CODES = ("missing_answer", "answer_not_in_options", "empty_option", "unreadable_image",
              "missing_image", "unreadable_row")
"""The codes a row that cannot be scored is dropped with (the audit's)."""


def flaw_of(reason: str, entry: Source) -> str:
    """The audit's code for a row ingestion quarantined with ``reason``: a missing or empty
    answer column is ``missing_answer``, a missing or empty image column ``missing_image``,
    anything not named here ``unreadable_row``."""
    if reason in QUARANTINE_FLAWS:
        return QUARANTINE_FLAWS[reason]
    kind, _, column = reason.partition(":")
    if kind in ("missing_field", "empty_field"):
        if column and column == getattr(entry.mapping, "answer", None):
            return "missing_answer"
        if column and column == getattr(entry.mapping, "image", None):
            return "missing_image"
    return "unreadable_row"


@dataclass(frozen=True)
class Denominator:
    """How a benchmark's rows became scored items: ``read`` rows in its files, ``scored``
    items, ``dropped`` rows by the audit's code (with their item ids in ``dropped_items``),
    and ``not_evaluated`` items left out by a ``limit``; read = scored + dropped + not evaluated."""

    benchmark: str
    read: int
    scored: int
    dropped: dict[str, int] = field(default_factory=dict)
    dropped_items: dict[str, list[str]] = field(default_factory=dict)
    not_evaluated: int = 0

    @property
    def dropped_total(self) -> int:
        """Rows dropped, whatever the reason."""
        return sum(self.dropped.values())

    def to_json(self) -> dict[str, Any]:
        """The ``items`` section of results and exports."""
        return {"read": self.read, "scored": self.scored, "dropped": self.dropped_total,
                "dropped_by_reason": dict(self.dropped), "dropped_items": dict(self.dropped_items),
                "not_evaluated": self.not_evaluated}

    def refuse(self, allowed: int) -> None:
        """A ConfigError when more than ``allowed`` rows were dropped: a benchmark that lost
        items in silence would be measured on another denominator than the one published."""
        if self.dropped_total > allowed:
            reasons = ", ".join(f"{n} {code}" for code, n in self.dropped.items())
            first = next(iter(self.dropped_items.values()))[:3]
            raise ConfigError(
                f"benchmark `{self.benchmark}`: {self.dropped_total} of {self.read} rows cannot be "
                f"scored ({reasons}; e.g. {', '.join(first)}); `curate audit {self.benchmark}` lists "
                f"them. Fix the file, or pass --allow-dropped {self.dropped_total} to score the "
                f"{self.scored + self.not_evaluated} others")


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

    def items(self, *, limit: int | None = None, answered: bool = True,
              subject_field: str | None = None) -> list[McqaItem]:
        """The MCQA items in row order (the first ``limit``); ``answered``: only items with a
        gold answer; ``subject_field``: the ``meta`` key naming each item's subject (default:
        ``SUBJECT_KEYS``)."""
        frame = self.records.sort("row")
        if answered:
            frame = frame.filter(pl.col("mcqa").struct.field("answer").is_not_null())
        if limit is not None:
            frame = frame.head(limit)
        keys = SUBJECT_KEYS if subject_field is None else (subject_field,)
        return [
            McqaItem(benchmark=self.entry.name, row=row, record_id=rid, question=mcqa["question"],
                     options=tuple(mcqa["options"]), answer=mcqa["answer"], subject=_subject(meta, keys))
            for row, rid, mcqa, meta in frame.select("row", "id", "mcqa", "meta").iter_rows()
        ]

    def count(self, scored: int) -> Denominator:
        """The denominator of an evaluation that scored ``scored`` items of this benchmark:
        every quarantined row and every record without a gold answer is dropped with its code."""
        dropped: dict[str, list[int]] = {}
        quarantined = self.quarantine.select("row", "reason").iter_rows() if self.quarantine.height else ()
        for row, reason in quarantined:
            dropped.setdefault(flaw_of(reason, self.entry), []).append(row)
        if self.records.height:
            unanswered = self.records.filter(pl.col("mcqa").struct.field("answer").is_null())
            if unanswered.height:
                dropped.setdefault("missing_answer", []).extend(unanswered.get_column("row").to_list())
        counts = Counter({code: len(rows) for code, rows in dropped.items()})
        answerable = self.rows - counts.total()
        return Denominator(
            benchmark=self.entry.name, read=self.rows, scored=scored,
            dropped={code: counts[code] for code in DROP_CODES if counts[code]},
            dropped_items={code: [f"{self.entry.name}:{r}" for r in sorted(dropped[code])]
                           for code in DROP_CODES if code in dropped},
            not_evaluated=answerable - scored)


def read_benchmark(entry: Source, *, data_root: Path, kinds: tuple[str, ...] = ("mcqa",)) -> BenchmarkData:
    """Read a benchmark catalog entry (local files or the hub) into records and quarantine;
    its mapping must be of one of ``kinds``."""
    if entry.mapping.kind not in kinds:
        raise ConfigError(f"benchmark `{entry.name}` has mapping kind `{entry.mapping.kind}`; "
                          f"this needs an entry of kind {' or '.join(f'`{k}`' for k in kinds)}")
    from curate.ingest.runner import failures_raised_by_caller

    try:
        with failures_raised_by_caller():  # raised here, once, not also logged
            (read,) = read_entries([entry], data_root=data_root)
    except ConfigError as exc:
        message = str(exc).replace(f"`{entry.name}`: `{entry.name}`: ", f"`{entry.name}`: ")
        raise ConfigError(f"benchmark {message}") from None
    return BenchmarkData(entry=entry, records=pl.DataFrame(read.records),
                         quarantine=pl.DataFrame(read.quarantine))


def _subject(meta: str | None, keys: tuple[str, ...] = SUBJECT_KEYS) -> str | None:
    if not meta:
        return None
    values = json.loads(meta)
    for key in keys:
        value = values.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
    return None
