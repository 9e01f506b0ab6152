"""Exact dedup: records with the same content id are copies; one is kept.

The id hashes normalized content (see ``curate.records``), so copies that differ only
in whitespace or Unicode composition are caught, across sources. The kept copy is the
first by (source name, row): the same whatever the order of sources in a recipe.
"""

from __future__ import annotations

import polars as pl
from typing_extensions import override

from curate.curation.config import ExactDedupConfig
from curate.engine.stage import DatasetStage, StageContext


class ExactDedup(DatasetStage[ExactDedupConfig]):
    """Keep one record per content id; the others get ``duplicate_of:<id>``."""

    name = "exact_dedup"
    version = 1
    score_columns = {"dup_copies": pl.Int64, "dup_rank": pl.Int64}
    rank_columns = frozenset({"dup_rank"})

    @override
    def score(self, records: pl.LazyFrame, context: StageContext) -> pl.DataFrame:
        keys = records.select("source", "row", "id").collect()
        return context.partitioned(keys, "id", copies).sort("source", "row")

    @override
    def decide(self, scores: pl.DataFrame) -> pl.DataFrame:
        keep = pl.col("dup_rank") == 1
        return scores.with_columns(
            keep=keep,
            reason=pl.when(keep).then(None).otherwise(pl.lit("duplicate_of:") + pl.col("id")),
        )


def copies(keys: pl.DataFrame) -> pl.DataFrame:
    """``dup_copies`` (records with the id) and ``dup_rank`` (1 for the first by (source,
    row)) of records whose copies are all in ``keys`` (a partition by id, or all records)."""
    return keys.sort("source", "row").with_columns(
        dup_copies=pl.len().over("id").cast(pl.Int64),
        dup_rank=(pl.int_range(pl.len()).over("id") + 1).cast(pl.Int64),
    )
