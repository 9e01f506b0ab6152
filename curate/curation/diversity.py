"""Diversity-aware selection (DEITA's filter): visit records best first and keep one
only if its cosine similarity to every record already kept is at most ``tau``.

Each record is embedded from its question and answer (user turns, then the last
assistant turn, of ``chosen`` for a preference record), cut to ``max_tokens`` model
tokens. Records are visited in the order ``order_by`` names, ties by id:
``length`` (the default) visits the longest text first, the same preference near-dedup
shows for its representative, so of two near-paraphrases the fuller one stays;
``source_row`` visits in (source, row) order; ``<stage>.<column>`` visits by the score
an earlier stage stored, highest first (DEITA: ``quality.deita_score``). Image-text
records are not visited and are kept: their text says nothing about how different their
images are.

Scores: ``diversity_rank`` (visit position), ``diversity_max_sim`` (highest cosine to a
record kept before it; null for the first) and ``diversity_nearest`` (that record's id).
Decisions: ``too_similar_to:<nearest id>`` above ``tau``; ``over_budget`` for a record
that was not too similar but came after ``budget`` records were kept.

``tau`` and ``budget`` are scoring options, not decision options: which records are
kept decides what later records are compared with, so another ``tau`` needs the
embeddings again (not stored in the run; a run reads them back from the shared embedding
cache). ``decide`` re-derives the greedy outcome from
the stored scores for the configured ``tau`` and ``budget`` only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
from typing_extensions import override

from curate.curation.config import DiversityConfig
from curate.curation.embed import embed, embedder_resolved
from curate.curation.text import answer_text, user_text
from curate.engine.stage import DatasetStage, StageContext
from curate.errors import ConfigError

_BLOCK = 1024  # candidates resolved together
_KEPT_CHUNK = 4096  # kept rows per matrix product (measured faster than larger products)


class Diversity(DatasetStage[DiversityConfig]):
    """Keep records that are not too similar to a better record already kept."""

    name = "diversity"
    version = 1
    columns = ("kind", "messages", "chosen")
    score_columns = {"diversity_rank": pl.Int64, "diversity_max_sim": pl.Float64,
                     "diversity_nearest": pl.String}
    rank_columns = frozenset({"diversity_rank"})

    @override
    def thresholds(self) -> dict[str, float]:
        """``diversity_max_sim`` above ``tau`` removes."""
        return {"diversity_max_sim": self.config.tau}

    @override
    def resolved(self) -> dict[str, Any]:
        """The precision and the embedder weights the scores are made with."""
        return embedder_resolved(self.config.model, self.config.precision)

    @override
    def score(self, records: pl.LazyFrame, context: StageContext) -> pl.DataFrame:
        o = self.config
        keys = records.select("source", "row", "id").collect()
        visit = (
            records.filter(pl.col("kind") != "image_text")
            .select("source", "row", "id", text=pl.concat_str(
                [user_text(), answer_text()], separator="\n", ignore_nulls=True))
            .with_columns(length=pl.col("text").str.len_chars())
        )
        if o.order_by == "source_row":
            visit = visit.sort("source", "row")
        elif o.order_by == "length":
            visit = visit.sort(["length", "id"], descending=[True, False])
        else:
            stage, column = o.order_by.split(".")
            scores = context.stage_scores(stage)
            if column not in scores.collect_schema().names():
                raise ConfigError(f"diversity: `order_by: {o.order_by}`: stage `{stage}` has no "
                                  f"score column `{column}`")
            visit = visit.join(scores.select("source", "row", pl.col(column).alias("_score")),
                               on=["source", "row"], how="left").sort(
                ["_score", "id"], descending=[True, False], nulls_last=True).drop("_score")
        visited = visit.collect()
        vectors = embed(visited.get_column("text").to_list(), o.model, max_tokens=o.max_tokens,
                        precision=o.precision, cache=context.embedding_cache,
                        progress=context.reporter("embedding"))
        _, nearest, max_sim = select_diverse(vectors, o.tau, o.budget,
                                             progress=context.reporter("selection"))
        found = nearest >= 0
        nearest_id = visited.get_column("id").gather(np.where(found, nearest, 0))
        scored = visited.select("source", "row").with_columns(
            diversity_rank=pl.int_range(visited.height, dtype=pl.Int64),
            diversity_max_sim=pl.when(pl.Series(found)).then(pl.Series(max_sim)),
            diversity_nearest=pl.when(pl.Series(found)).then(nearest_id),
        )
        return keys.join(scored, on=["source", "row"], how="left", maintain_order="left")

    @override
    def decide(self, scores: pl.DataFrame) -> pl.DataFrame:
        o = self.config
        similar = (pl.col("diversity_max_sim") > o.tau).fill_null(False)
        visited = pl.col("diversity_rank").is_not_null()
        # The n-th record that was not too similar, in visit order: kept while n <= budget.
        place = (visited & ~similar).cast(pl.Int64).cum_sum().over(order_by="diversity_rank")
        over = visited & ~similar & (place > o.budget) if o.budget is not None else pl.lit(False)
        return scores.with_columns(
            keep=~similar & ~over,
            reason=pl.when(similar).then(pl.lit("too_similar_to:") + pl.col("diversity_nearest"))
            .when(over).then(pl.lit("over_budget")),
        )


def select_diverse(
    embeddings: np.ndarray, tau: float, budget: int | None = None, *,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy diverse selection over unit rows given in visit order.

    Row i is kept when its cosine to every row kept before it is at most ``tau`` and
    fewer than ``budget`` rows are kept. Returns ``kept`` (bool), ``nearest`` (index of
    the most similar row kept before i, the earliest on ties; -1 when none) and
    ``max_similarity`` (that cosine, float64; -inf when none). Rows after the budget is
    full are compared with the final kept set.

    The same result as visiting rows one by one, computed in blocks: one matrix product
    compares a block with every row kept before it, then a loop over the block's
    surviving rows settles conflicts inside the block with its own similarity matrix.
    Similarities are float32 products, compared with ``tau`` in float64.
    ``progress(rows visited, rows)`` after each block.
    """
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    n = len(x)
    limit = n if budget is None else budget
    kept = np.zeros(n, bool)
    nearest = np.full(n, -1, np.int64)
    max_sim = np.full(n, -np.inf, np.float64)
    pool = np.empty_like(x)  # the kept rows, in visit order
    pool_rows = np.empty(n, np.int64)  # their row numbers
    count = 0
    for start in range(0, n, _BLOCK):
        block = x[start:start + _BLOCK]
        best, where = _best_match(block, pool[:count], pool_rows[:count])
        if count < limit:
            inner = (block @ block.T).astype(np.float64)
            chosen = _resolve_block(inner > tau, best > tau, limit - count)
            best, where = _with_block_matches(inner, chosen, best, where, start)
            fresh = np.flatnonzero(chosen)
            pool[count:count + len(fresh)] = block[fresh]
            pool_rows[count:count + len(fresh)] = start + fresh
            count += len(fresh)
            kept[start:start + len(block)] = chosen
        nearest[start:start + len(block)] = where
        max_sim[start:start + len(block)] = best
        if progress is not None:
            progress(start + len(block), n)
    return kept, nearest, max_sim


def _best_match(block: np.ndarray, pool: np.ndarray, pool_rows: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per block row: the highest cosine to a pool row (float64; -inf for an empty pool)
    and that pool row's number (-1), the earliest on ties; pool taken in chunks."""
    best = np.full(len(block), -np.inf, np.float64)
    where = np.full(len(block), -1, np.int64)
    for start in range(0, len(pool), _KEPT_CHUNK):
        sims = block @ pool[start:start + _KEPT_CHUNK].T
        arg = sims.argmax(axis=1)
        value = sims[np.arange(len(block)), arg].astype(np.float64)
        better = value > best
        best = np.where(better, value, best)
        where = np.where(better, pool_rows[start + arg], where)
    return best, where


def _resolve_block(too_similar: np.ndarray, blocked: np.ndarray, room: int) -> np.ndarray:
    """Which rows of a block are kept, given its pairs above tau (``too_similar``), its
    rows already too similar to earlier blocks (``blocked``) and the ``room`` left in the
    budget: a loop over the block's rows, each kept row blocking its successors at once."""
    blocked = blocked.copy()
    chosen = np.zeros(len(blocked), bool)
    for i in np.flatnonzero(~blocked):
        if room == 0:
            break
        if not blocked[i]:
            chosen[i] = True
            blocked |= too_similar[i]
            room -= 1
    return chosen


def _with_block_matches(inner: np.ndarray, chosen: np.ndarray, best: np.ndarray,
                        where: np.ndarray, start: int) -> tuple[np.ndarray, np.ndarray]:
    """``best`` and ``where`` updated with the rows kept earlier in the same block
    (``inner``: the block's similarities); a tie goes to the row kept in an earlier
    block (kept first)."""
    if not chosen.any():
        return best, where
    rows = np.arange(len(inner))
    earlier = np.where(np.flatnonzero(chosen)[None, :] < rows[:, None], inner[:, chosen], -np.inf)
    arg = earlier.argmax(axis=1)
    value = earlier[rows, arg]
    take = value > best
    return np.where(take, value, best), np.where(take, start + np.flatnonzero(chosen)[arg], where)
