"""Benchmark decontamination in three tiers, each covering the others' blind spots.

1. **n-gram** (GPT-3 / lm-eval style): a record shares a ``ngram``-token sequence (13 by
   default, after the MinHash normalisation) with a benchmark question. N-grams found in
   ``boilerplate_items`` or more benchmark items, or in ``stop_phrases``, never count, so
   exam phrases alone ("most appropriate next step in the management of this patient")
   do not make a match. Catches items embedded in long text; misses items under 13 words
   and copies whose every 13-gram was broken by edits.
2. **MinHash**: the record's user turn against each item's question plus its options, as
   sets of shingles (``minhash.ngram``, words by default, so option order and labels do
   not matter). LSH finds candidates; the score is the smaller of two exact shares: of
   the question's shingles found in the record, and of the options' shingles. Catches
   edited copies and items in another template; an answer alone, or a generic stem with
   other options, stays below it.
3. **embedding** (optional): cosine similarity of sentence embeddings (MiniLM by
   default) between the user turn and the question, for paraphrases. A threshold below
   about 0.9 flags topic, not contamination, on medical text.

Each record gets, per tier, its best benchmark item and score; ``decide`` applies the
thresholds, gives ``contaminated:<benchmark>``, and rejects a whole source whose
contaminated share exceeds ``reject_source_above`` (``source_rejected:contamination``).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from typing_extensions import override

from curate.curation.config import DecontamConfig
from curate.curation.embed import embed, nearest
from curate.curation.minhash import (
    band_keys,
    common_shingles,
    shingle_hits,
    shingle_novelty,
    shingle_table,
    signatures,
)
from curate.curation.text import all_text, user_text
from curate.engine.stage import RowStage, StageContext, select_rows

TIERS = ("ngram", "minhash", "embedding")
EXAMPLES_PER_PAIR = 3


class Decontaminate(RowStage[DecontamConfig]):
    """Flag records that contain benchmark items; reject heavily contaminated sources."""

    name = "decontam"
    version = 1
    decision_fields = frozenset(
        {"ngram_min_matches", "min_containment", "embedding_threshold", "reject_source_above"}
    )
    columns = ("messages", "chosen", "rejected")
    score_columns = {f"{tier}_{part}": dtype for tier in TIERS
                     for part, dtype in (("score", pl.Float64), ("benchmark", pl.String),
                                         ("item", pl.String))}

    def __init__(self, config: DecontamConfig | None = None):
        super().__init__(config)
        self._index: tuple[StageContext, BenchmarkIndex] | None = None

    @override
    def teardown(self) -> None:
        """Drop the benchmark index (its embeddings); ``reports`` builds it again if needed."""
        self._index = None

    def index(self, context: StageContext) -> BenchmarkIndex:
        """The benchmark side, built once per context (so once per run)."""
        if self._index is None or self._index[0] is not context:
            names = self.config.benchmarks or list(context.benchmarks)
            self._index = (context, BenchmarkIndex(load_items(context, names), self.config))
        return self._index[1]

    # -- scoring ----------------------------------------------------------------------------

    @override
    def score(self, records: pa.Table, context: StageContext) -> pa.Table:
        index = self.index(context)
        frame = pl.DataFrame(records).select(user=user_text(), text=all_text())
        columns: dict[str, Any] = {}
        for tier, (item, value) in (
            ("ngram", index.ngram_matches(frame.get_column("text"))),
            ("minhash", index.containment(frame.get_column("user"))),
            ("embedding", index.similarity(frame.get_column("user"))),
        ):
            columns[f"{tier}_score"] = pa.array(value, pa.float64(), mask=np.isnan(value))
            columns[f"{tier}_benchmark"] = index.benchmark_of(item)
            columns[f"{tier}_item"] = index.item_of(item)
        return pa.table(columns)

    @override
    def decide(self, scores: pl.DataFrame) -> pl.DataFrame:
        o = self.config
        fired = {
            "ngram": pl.col("ngram_score") >= o.ngram_min_matches,
            "minhash": pl.col("minhash_score") >= o.min_containment,
            "embedding": pl.col("embedding_score") >= o.embedding_threshold,
        }
        tier = pl.coalesce([pl.when(fired[t].fill_null(False)).then(pl.lit(t)) for t in TIERS])
        benchmark = pl.coalesce(
            [pl.when(fired[t].fill_null(False)).then(pl.col(f"{t}_benchmark")) for t in TIERS])
        item = pl.coalesce([pl.when(fired[t].fill_null(False)).then(pl.col(f"{t}_item")) for t in TIERS])
        decided = scores.with_columns(contam_tier=tier, contam_benchmark=benchmark, contam_item=item)
        share = pl.col("contam_tier").is_not_null().mean().over("source")
        rejected = share > o.reject_source_above
        return decided.with_columns(
            keep=pl.col("contam_tier").is_null() & ~rejected,
            reason=pl.when(pl.col("contam_tier").is_not_null())
            .then(pl.lit("contaminated:") + pl.col("contam_benchmark"))
            .when(rejected)
            .then(pl.lit("source_rejected:contamination")),
        )

    @override
    def reports(self, decisions: pl.DataFrame, records: pl.LazyFrame,
                context: StageContext) -> dict[str, pl.DataFrame]:
        return {"contamination": contamination_report(decisions, records, self.index(context))}


def load_items(context: StageContext, names: list[str]) -> pl.DataFrame:
    """Benchmark items: their question (stem) and their options, one row per item."""
    frames = [
        context.benchmark_records(name).select(
            benchmark=pl.lit(name),
            item=pl.format("{}:{}", pl.lit(name), pl.col("row")),
            stem=pl.coalesce(pl.col("mcqa").struct.field("question"), user_text()),
            options=pl.col("mcqa").struct.field("options").list.join("\n").fill_null(""),
        )
        for name in names
    ]
    if not frames:
        return pl.DataFrame(schema={"benchmark": pl.String, "item": pl.String, "stem": pl.String,
                                    "options": pl.String})
    return pl.concat([f.collect() for f in frames])


class BenchmarkIndex:
    """The benchmark side of every tier, built once and queried per shard of records."""

    def __init__(self, items: pl.DataFrame, config: DecontamConfig):
        self.items = items
        self.config = config
        self.stems = items.get_column("stem").to_arrow()
        full = items.select(pl.concat_str(["stem", "options"], separator="\n")).to_series()
        self.full = full.to_arrow()
        self._benchmarks = np.array(items.get_column("benchmark").to_list() + [None], dtype=object)
        self._ids = np.array(items.get_column("item").to_list() + [None], dtype=object)

    def benchmark_of(self, item: np.ndarray) -> pa.Array:
        """The benchmark name of each item index (the last index: no item, null)."""
        return pa.array(self._benchmarks[item], pa.string())

    def item_of(self, item: np.ndarray) -> pa.Array:
        """The item id of each item index (the last index: no item, null)."""
        return pa.array(self._ids[item], pa.string())

    # tier 1 ---------------------------------------------------------------------------------

    @cached_property
    def ngrams(self) -> pl.DataFrame:
        """(hash, item) for every n-gram of the items' questions that is not boilerplate:
        found in ``boilerplate_items`` or more items, or with fewer than
        ``min_novel_tokens`` tokens outside boilerplate phrases (so "the" + a stock exam
        phrase is not a match)."""
        c = self.config
        width = c.boilerplate_width
        phrases, starts, _ = shingle_novelty(self.stems, width, width=width, common=np.zeros(0, np.uint64))
        common = _in_many_items(pl.DataFrame({"hash": phrases, "item": _owners(starts)}),
                                c.boilerplate_items).to_numpy()
        if c.stop_phrases:
            common = np.concatenate([common, shingle_table(c.stop_phrases, width)[0]])
        flat, starts, novel = shingle_novelty(self.stems, c.ngram, width=width, common=common)
        table = pl.DataFrame({"hash": flat, "item": _owners(starts), "novel": novel})
        shared = _in_many_items(table, c.boilerplate_items).to_frame()
        return (table.filter(pl.col("novel") >= c.min_novel_tokens)
                .join(shared, on="hash", how="anti").select("hash", "item").unique()
                .sort("item", "hash"))

    def ngram_matches(self, texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
        """Per text: the item sharing the most n-grams (or -1) and how many it shares."""
        doc, found = shingle_hits(texts.to_arrow(), self.config.ngram,
                                  self.ngrams.get_column("hash").to_numpy())
        hits = (
            pl.DataFrame({"doc": doc, "hash": found}).unique()
            .join(self.ngrams, on="hash")
            .group_by("doc", "item").agg(pl.len().alias("matches"))
        )
        return _best(hits, "matches", len(texts))

    # tier 2 ---------------------------------------------------------------------------------

    @cached_property
    def part_shingles(self) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """The shingle tables of the items' questions and of their options, apart."""
        n = self.config.minhash.ngram
        options = self.items.get_column("options").to_arrow()
        return shingle_table(self.stems, n), shingle_table(options, n)

    @cached_property
    def buckets(self) -> pl.DataFrame:
        """(band, key, item) of the items with enough shingles for tier 2."""
        mh = self.config.minhash
        bands, rows = mh.banding
        keys = band_keys(signatures(self.full, mh), bands, rows)
        sizes = np.diff(shingle_table(self.full, mh.ngram)[1])
        table = pl.DataFrame({
            "band": np.tile(np.arange(bands, dtype=np.int32), len(self.items)),
            "key": keys.reshape(-1),
            "item": np.repeat(np.arange(len(self.items)), bands),
        })
        return table.filter(pl.Series(np.repeat(sizes >= self.config.min_item_shingles, bands)))

    def containment(self, texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
        """Per text: the item whose shingles it contains most (or -1) and that share."""
        mh = self.config.minhash
        bands, rows = mh.banding
        arrow = texts.to_arrow()
        keys = band_keys(signatures(arrow, mh), bands, rows)
        candidates = (
            pl.DataFrame({
                "doc": np.repeat(np.arange(len(texts)), bands),
                "band": np.tile(np.arange(bands, dtype=np.int32), len(texts)),
                "key": keys.reshape(-1),
            })
            .join(self.buckets, on=["band", "key"])
            .group_by("doc", "item").agg(pl.len().alias("bands"))
            .filter(pl.col("bands") >= self.config.min_shared_bands)
            .select("doc", "item").sort("doc", "item")
        )
        if candidates.height == 0:
            return _best(candidates.with_columns(share=pl.lit(0.0)), "share", len(texts))
        docs = np.unique(candidates.get_column("doc").to_numpy())
        doc_table = shingle_table(arrow.take(pa.array(docs)), mh.ngram)
        doc = np.searchsorted(docs, candidates.get_column("doc").to_numpy())
        item = candidates.get_column("item").to_numpy()
        share = np.minimum(*(_contained(part, item, doc_table, doc) for part in self.part_shingles))
        return _best(candidates.with_columns(share=pl.Series(share, dtype=pl.Float64)), "share",
                     len(texts))

    # tier 3 ---------------------------------------------------------------------------------

    @cached_property
    def stem_vectors(self) -> np.ndarray:
        """Embeddings of the items' questions (tier 3), computed once."""
        assert self.config.embedding_model is not None
        return embed(self.stems.to_pylist(), self.config.embedding_model,
                     max_tokens=self.config.embedding_max_tokens)

    def similarity(self, texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
        """Per text: the item whose question is most similar in meaning, and the cosine."""
        if self.config.embedding_model is None or len(self.items) == 0:
            return np.full(len(texts), -1), np.full(len(texts), np.nan)
        vectors = embed(texts.to_list(), self.config.embedding_model,
                        max_tokens=self.config.embedding_max_tokens)
        item, cosine = nearest(vectors, self.stem_vectors)
        return item, cosine.astype(np.float64)


def _contained(part: tuple[np.ndarray, np.ndarray], item: np.ndarray,
               docs: tuple[np.ndarray, np.ndarray], doc: np.ndarray) -> np.ndarray:
    """Per (item, doc) pair: the share of the item part's shingles found in the doc; an
    empty part (no options) is fully contained."""
    sizes = np.diff(part[1])[item]
    common = common_shingles(part, item, docs, doc)
    return np.divide(common, sizes, out=np.ones(len(item)), where=sizes > 0)


def _owners(starts: np.ndarray) -> np.ndarray:
    """For a flat table with ``starts``, the text each entry belongs to."""
    return np.repeat(np.arange(len(starts) - 1), np.diff(starts))


def _in_many_items(table: pl.DataFrame, items: int) -> pl.Series:
    """The hashes of ``table`` (hash, item, ...) found in ``items`` or more items."""
    return (table.select("hash", "item").unique().group_by("hash").agg(pl.len().alias("items"))
            .filter(pl.col("items") >= items).get_column("hash").sort())


def _best(hits: pl.DataFrame, value: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per document: the item with the highest ``value`` (ties: lowest item), or -1."""
    item = np.full(n, -1, np.int64)
    score = np.full(n, np.nan)
    if hits.height:
        best = hits.sort(["doc", value, "item"], descending=[False, True, False]).unique(
            "doc", keep="first")
        docs = best.get_column("doc").to_numpy()
        item[docs] = best.get_column("item").to_numpy()
        score[docs] = best.get_column(value).to_numpy()
    return item, score


def contamination_report(
    decisions: pl.DataFrame, records: pl.LazyFrame, index: BenchmarkIndex
) -> pl.DataFrame:
    """Per source x benchmark: rows, contaminated rows and share, rows per tier, whether
    the source was rejected, and up to three examples (record text beside the item)."""
    totals = decisions.group_by("source").agg(
        pl.len().alias("source_rows"),
        (pl.col("reason") == "source_rejected:contamination").any().alias("source_rejected"),
    )
    hit = decisions.filter(pl.col("contam_tier").is_not_null())
    if hit.height == 0:
        return pl.DataFrame(schema={
            "source": pl.String, "benchmark": pl.String, "source_rows": pl.UInt32,
            "contaminated": pl.UInt32, "share": pl.Float64, **{t: pl.UInt32 for t in TIERS},
            "source_rejected": pl.Boolean, "examples": pl.List(pl.Struct({
                "record": pl.String, "record_text": pl.String, "item": pl.String,
                "item_text": pl.String, "tier": pl.String})),
        })
    texts = select_rows(records, hit.select("source", "row"), "source", "row", "id",
                        user_text().alias("record_text"))
    item_text = index.items.select("item", item_text=pl.concat_str(["stem", "options"], separator="\n"))
    examples = (
        hit.join(texts, on=["source", "row", "id"])
        .join(item_text, left_on="contam_item", right_on="item")
        .sort("source", "row")
        .group_by("source", "contam_benchmark", maintain_order=True)
        .head(EXAMPLES_PER_PAIR)
        .group_by("source", "contam_benchmark", maintain_order=True)
        .agg(examples=pl.struct(
            record=pl.format("{}:{}", "source", "row"),
            record_text=pl.col("record_text").str.slice(0, 600),
            item=pl.col("contam_item"),
            item_text=pl.col("item_text").str.slice(0, 600),
            tier=pl.col("contam_tier"),
        ))
    )
    counts = hit.group_by("source", "contam_benchmark").agg(
        pl.len().alias("contaminated"),
        *[(pl.col("contam_tier") == t).sum().alias(t) for t in TIERS],
    )
    return (
        counts.join(totals, on="source")
        .join(examples, on=["source", "contam_benchmark"], how="left")
        .with_columns(share=pl.col("contaminated") / pl.col("source_rows"))
        .rename({"contam_benchmark": "benchmark"})
        .select("source", "benchmark", "source_rows", "contaminated", "share", *TIERS,
                "source_rejected", "examples")
        .sort("source", "benchmark")
    )
