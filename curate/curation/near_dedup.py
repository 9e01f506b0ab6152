"""Near-duplicate dedup: MinHash LSH candidates, verified by exact Jaccard, clustered.

1. Signatures of every record's text (all turns) with the shared ``MinHashConfig``,
   computed shard by shard where the executor runs work; only the band keys come back,
   not the texts.
2. Candidates: records that share a band key, band by band (grouped with Polars within
   hash partitions of the keys, no Python dict of buckets); each record of a bucket is
   paired with up to ``neighbours`` records before it in the bucket, so a bucket of a few
   records yields all its pairs and a huge bucket (templated text) stays linear.
3. Verification: the exact Jaccard similarity of the two records' shingle sets must
   reach ``threshold`` (the signature estimate alone loses true pairs near it). Only
   the texts of candidate records are read again.
4. Clusters: connected components of the verified pairs. Each keeps one representative:
   the longest text, ties by id; the others get ``near_duplicate_of:<representative id>``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import polars as pl
import pyarrow as pa
from typing_extensions import override

from curate.curation.config import MinHashConfig, NearDedupConfig
from curate.curation.minhash import band_keys, common_shingles, shingle_table, signatures
from curate.curation.text import all_text
from curate.engine.executor import GroupFunction
from curate.engine.stage import DatasetStage, StageContext, select_rows

Partitioned = Callable[[pl.DataFrame, str, GroupFunction], pl.DataFrame]
"""(table, key, function over a partition) -> the partitions' results (``StageContext.partitioned``)."""


class NearDedup(DatasetStage[NearDedupConfig]):
    """Cluster records whose texts are near-duplicates; keep one per cluster."""

    name = "near_dedup"
    version = 1
    columns = ("messages", "chosen", "rejected")
    score_columns = {"near_dup_cluster": pl.String, "near_dup_jaccard": pl.Float64}

    @override
    def thresholds(self) -> dict[str, float]:
        """A ``near_dup_jaccard`` at ``minhash.threshold`` or above joins a cluster."""
        return {"near_dup_jaccard": self.config.minhash.threshold}

    @override
    def score(self, records: pl.LazyFrame, context: StageContext) -> pl.DataFrame:
        config: MinHashConfig = self.config.minhash
        bands, _ = config.banding
        total = records.select(pl.len()).collect().item() if context.progress is not None else 0
        shards = context.map_records(partial(keyed, config=config), ["source", "row", "id", *self.columns],
                                     part="MinHash signatures", total=total)
        frame = pl.concat([pl.DataFrame(t) for t in shards]).sort("source", "row") if shards else (
            pl.DataFrame(schema={"source": pl.String, "row": pl.Int64, "id": pl.String, "length": pl.UInt32,
                                 "empty": pl.Boolean, "keys": pl.Array(pl.UInt64, bands)}))
        key_matrix = frame.get_column("keys").to_numpy() if frame.height else np.zeros((0, bands), np.uint64)
        frame = frame.drop("keys")
        pairs = candidate_pairs(key_matrix, empty=frame.get_column("empty"),
                                neighbours=self.config.neighbours,
                                progress=context.reporter("LSH bands"), partitioned=context.partitioned)
        candidates = np.unique(pairs.select(pl.concat_list("a", "b").explode()).to_series().to_numpy())
        similarity = np.zeros(0)
        if len(candidates):
            # Both come in (source, row) order, so the texts line up with ``candidates``.
            wanted = frame[candidates].select("source", "row")
            texts = select_rows(records, wanted, all_text().alias("text")).get_column("text")
            context.report("verify candidate pairs", 0, pairs.height)
            similarity = verify(pairs, texts.to_arrow(), config.ngram, docs=candidates)
            context.report("verify candidate pairs", pairs.height, pairs.height)
        verified = pairs.with_columns(jaccard=pl.Series(similarity, dtype=pl.Float64)).filter(
            pl.col("jaccard") >= config.threshold
        )
        cluster, best = clusters(verified, frame.height, frame.get_column("length").to_numpy(),
                                 frame.get_column("id"))
        return frame.select("source", "row", "id").with_columns(
            near_dup_cluster=pl.Series(cluster, dtype=pl.String),
            near_dup_jaccard=pl.Series(best, dtype=pl.Float64),
        )

    @override
    def decide(self, scores: pl.DataFrame) -> pl.DataFrame:
        keep = pl.col("near_dup_cluster").is_null() | (pl.col("near_dup_cluster") == pl.col("id"))
        return scores.with_columns(
            keep=keep,
            reason=pl.when(keep).then(None).otherwise(
                pl.lit("near_duplicate_of:") + pl.col("near_dup_cluster")),
        )


def keyed(records: pa.Table, *, config: MinHashConfig) -> pa.Table:
    """Per record (keys, text length, whether its text is empty), its LSH band keys: the
    row-wise work of near-dedup, one shard at a time where the executor runs work."""
    bands, rows = config.banding
    frame = pl.DataFrame(records).select("source", "row", "id", all_text().alias("text"))
    keys = band_keys(signatures(frame.get_column("text").to_arrow(), config), bands, rows)
    return frame.select("source", "row", "id", length=pl.col("text").str.len_chars(),
                        empty=pl.col("text").str.len_bytes() == 0).with_columns(
        keys=pl.Series(keys, dtype=pl.Array(pl.UInt64, bands))).to_arrow()


def bucket_pairs(frame: pl.DataFrame, *, neighbours: int) -> pl.DataFrame:
    """Pairs (a, b) of rows (``doc``) sharing a ``key``: in each bucket (rows in order), every
    row with the ``neighbours`` rows before it. Buckets of one row (nearly all) pair with
    nothing and are dropped before sorting."""
    shared = frame.filter(pl.len().over("key") > 1).sort("key", "doc")
    return pl.concat([
        shared.select(a=pl.col("doc").shift(lag), b=pl.col("doc"),
                      same=pl.col("key") == pl.col("key").shift(lag)).filter("same").drop("same")
        for lag in range(1, neighbours + 1)
    ])


def candidate_pairs(keys: np.ndarray, *, empty: pl.Series | None = None,
                    neighbours: int = 8,
                    progress: Callable[[int, int], None] | None = None,
                    partitioned: Partitioned | None = None) -> pl.DataFrame:
    """Pairs (a, b), a < b, of rows sharing a band key (``bucket_pairs`` of each band). Rows
    flagged ``empty`` (no tokens) never pair. One band at a time, so memory holds one
    column of keys; within a band, ``partitioned(table, "key", function)`` groups the
    buckets (default: all in this process); ``progress(bands done, bands)`` after each."""
    n, bands = keys.shape
    docs = np.arange(n, dtype=np.int64)
    if empty is not None and empty.any():
        docs = docs[~empty.to_numpy()]
    grouped = partitioned or (lambda frame, key, fn: fn(frame))
    pairs = partial(bucket_pairs, neighbours=neighbours)
    found = []
    for band in range(bands):
        found.append(grouped(pl.DataFrame({"doc": docs, "key": keys[docs, band]}), "key", pairs))
        if progress is not None:
            progress(band + 1, bands)
    if not found:
        return pl.DataFrame(schema={"a": pl.Int64, "b": pl.Int64})
    return pl.concat(found).unique().sort("a", "b")


def verify(pairs: pl.DataFrame, texts: pa.Array | pa.ChunkedArray, ngram: int,
           docs: np.ndarray | None = None) -> np.ndarray:
    """Exact Jaccard of each pair's shingle sets. ``texts`` are the texts of ``docs``
    (sorted row numbers; default: every row, ``texts[i]`` is row ``i``)."""
    if pairs.height == 0:
        return np.zeros(0)
    table = shingle_table(texts, ngram)
    a, b = pairs.get_column("a").to_numpy(), pairs.get_column("b").to_numpy()
    if docs is not None:
        a, b = np.searchsorted(docs, a), np.searchsorted(docs, b)
    common = common_shingles(table, a, table, b)
    sizes = np.diff(table[1])
    union = sizes[a] + sizes[b] - common
    return np.divide(common, union, out=np.zeros(len(common)), where=union > 0)


def clusters(
    edges: pl.DataFrame, n: int, lengths: np.ndarray, ids: pl.Series
) -> tuple[list[str | None], list[float | None]]:
    """For each row: its cluster's representative id (None when alone) and the highest
    verified Jaccard it has with another member."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a = edges.get_column("a").to_numpy()
    b = edges.get_column("b").to_numpy()
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    members = pl.DataFrame({"label": labels, "length": lengths, "id": ids, "doc": np.arange(n)})
    sizes = members.group_by("label").agg(pl.len().alias("size"))
    representative = (
        members.sort(["length", "id"], descending=[True, False])
        .group_by("label", maintain_order=True)
        .first()
        .select("label", rep=pl.col("id"))
    )
    resolved = (
        members.join(sizes, on="label").join(representative, on="label").sort("doc")
        .select(pl.when(pl.col("size") > 1).then(pl.col("rep")))
        .to_series()
        .to_list()
    )
    best = np.full(n, np.nan)
    if len(a):
        sim = edges.get_column("jaccard").to_numpy()
        np.fmax.at(best, a, sim)
        np.fmax.at(best, b, sim)
    return resolved, [None if np.isnan(x) else float(x) for x in best]
