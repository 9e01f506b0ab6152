"""Near-duplicate dedup: MinHash LSH candidates, verified by exact Jaccard, clustered.

1. Signatures of every record's text (all turns) with the shared ``MinHashConfig``.
2. Candidates: records that share a band key (grouped with Polars, no Python dict of
   buckets); each record in a bucket is paired with the bucket's first record.
3. Verification: the exact Jaccard similarity of the two records' shingle sets must
   reach ``threshold`` (the signature estimate alone loses true pairs near it).
4. Clusters: connected components of the verified pairs. Each keeps one representative:
   the longest text, ties by id; the others get ``near_duplicate_of:<representative id>``.

Signatures are computed shard by shard and only band keys are kept, so memory holds
``bands`` integers per record, not the texts.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from pydantic import Field

from curate.curation.minhash import MinHashConfig, band_keys, jaccard, shingle_sets, signatures
from curate.curation.text import all_text
from curate.engine.stage import DatasetStage, StageConfig, StageContext

_BATCH = 20_000


class NearDedupConfig(StageConfig):
    """Options of near-duplicate dedup."""

    minhash: MinHashConfig = Field(
        default_factory=MinHashConfig,
        description="Shingles, permutations, banding; `threshold` is the Jaccard that makes "
        "two records near-duplicates.",
    )


class NearDedup(DatasetStage):
    """Cluster records whose texts are near-duplicates; keep one per cluster."""

    name = "near_dedup"
    version = 1
    config_class = NearDedupConfig
    columns = ("messages", "chosen", "rejected")

    def score(self, records: pl.LazyFrame, context: StageContext) -> pl.DataFrame:
        config: MinHashConfig = self.config.minhash  # type: ignore[attr-defined]
        frame = records.select("source", "row", "id", text=all_text()).collect()
        texts = frame.get_column("text").to_arrow()
        bands, rows = config.banding
        keys = []
        for start in range(0, frame.height, _BATCH):
            sigs = signatures(texts.slice(start, _BATCH), config)
            keys.append(band_keys(sigs, bands, rows))
        key_matrix = np.vstack(keys) if keys else np.zeros((0, bands), np.uint64)
        pairs = candidate_pairs(key_matrix, empty=frame.get_column("text").str.len_bytes() == 0)
        similarity = verify(pairs, texts, config.ngram)
        verified = pairs.with_columns(jaccard=pl.Series(similarity, dtype=pl.Float64)).filter(
            pl.col("jaccard") >= config.threshold
        )
        lengths = frame.get_column("text").str.len_chars().to_numpy()
        cluster, best = clusters(verified, frame.height, lengths, frame.get_column("id"))
        return frame.select("source", "row", "id").with_columns(
            near_dup_cluster=pl.Series(cluster, dtype=pl.String),
            near_dup_jaccard=pl.Series(best, dtype=pl.Float64),
        )

    def decide(self, scores: pl.DataFrame) -> pl.DataFrame:
        keep = pl.col("near_dup_cluster").is_null() | (pl.col("near_dup_cluster") == pl.col("id"))
        return scores.with_columns(
            keep=keep,
            reason=pl.when(keep).then(None).otherwise(
                pl.lit("near_duplicate_of:") + pl.col("near_dup_cluster")),
        )


def candidate_pairs(keys: np.ndarray, *, empty: pl.Series | None = None) -> pl.DataFrame:
    """Pairs (a, b), a < b, of rows sharing a band key; each row of a bucket is paired
    with the bucket's first row. Rows flagged ``empty`` (no tokens) never pair."""
    n, bands = keys.shape
    table = pl.DataFrame({
        "doc": np.repeat(np.arange(n, dtype=np.int64), bands),
        "band": np.tile(np.arange(bands, dtype=np.int32), n),
        "key": keys.reshape(-1),
    })
    if empty is not None and empty.any():
        table = table.filter(~pl.Series(np.repeat(empty.to_numpy(), bands)))
    return (
        table.lazy()
        .with_columns(first=pl.col("doc").min().over("band", "key"))
        .filter(pl.col("doc") != pl.col("first"))
        .select(a=pl.col("first"), b=pl.col("doc"))
        .unique()
        .sort("a", "b")
        .collect()
    )


def verify(pairs: pl.DataFrame, texts, ngram: int) -> np.ndarray:
    """Exact Jaccard of each pair's shingle sets (shingles computed once per record)."""
    if pairs.height == 0:
        return np.zeros(0)
    docs = np.unique(np.concatenate([pairs.get_column("a").to_numpy(), pairs.get_column("b").to_numpy()]))
    import pyarrow as pa

    sets = shingle_sets(texts.take(pa.array(docs)), ngram)
    position = {int(d): i for i, d in enumerate(docs)}
    return np.array([
        jaccard(sets[position[a]], sets[position[b]])
        for a, b in zip(pairs.get_column("a").to_list(), pairs.get_column("b").to_list())
    ])


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
