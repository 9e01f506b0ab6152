"""Benchmark decontamination in four tiers, each covering the others' blind spots.

Every benchmark item is split into **fields**: its question, its context (PubMedQA's
abstract: a benchmark whose every stem holds a blank line has a context before the last
one), its options and its gold answer. Tiers match fields apart and together, and each
match says which field it was (``question``, ``context``, ``whole``, ``answer``).

1. **ngram** (GPT-3 / lm-eval style): a record shares a ``ngram``-token sequence (13 by
   default, after the MinHash normalisation) with an item's question or its context.
   N-grams found in ``boilerplate_items`` or more items, or in ``stop_phrases``, never
   count, so exam phrases alone do not make a match. Catches items embedded in long text;
   misses short items and copies whose every 13-gram was broken by edits.
2. **containment**: every record's text (all turns: user, assistant, later turns, chosen
   and rejected) is cut into overlapping windows of ``window_words`` words (and of
   ``short_window_words`` for items whose copy spans at most half that: a short item's
   few words spread over a long passage on its topic are not a copy); a window matches
   an item's question (or whole stem) plus its options, or its context alone, when the
   geometric mean of the two parts' shares reaches ``min_containment``. A part's share is
   the share of its words and word pairs the window holds, weighted by inverse document
   frequency over the benchmark items (so "the", "patient" or "following" weigh little).
   Both parts must be there, but an edit that wiped a short question's rare words is
   carried by the options. Candidates come from an inverted index of the items' rare
   tokens (found in at most ``anchor_max_items`` items), so an item inside a long answer
   is found as surely as a copied user turn. Option order, labels, case and punctuation
   do not matter.
3. **stem**: the question alone (no options), or the question with its gold answer,
   counts when the window holds ``min_stem_containment`` of it and the question is
   *specific*: its IDF mass (the sum of its distinct word pairs' IDF) reaches
   ``min_stem_specificity``, and no other item has the same question with other options
   (MMLU-medical repeats 79 generic stems such as "Which of the following statements is
   false"). A question that is not specific counts only with its gold answer, when the
   two together are specific.
4. **embedding** (optional): cosine similarity of sentence embeddings (MiniLM by
   default) between each turn and each item's question (and, for an item with a context,
   its whole stem), for paraphrases. A threshold below about 0.9 flags topic, not
   contamination, on medical text. Vectors are cached across runs (``StageContext``'s
   ``embedding_cache``), so benchmark items are embedded once per model.

Each record gets, per tier, its best benchmark item, field and score; ``decide`` applies
the thresholds, gives ``contaminated:<benchmark>``, and rejects a whole source whose
contaminated share exceeds ``reject_source_above`` (``source_rejected:contamination``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from typing_extensions import override

from curate.curation.config import DecontamConfig
from curate.curation.embed import default_cache_dir, embed, embedder_resolved, nearest
from curate.curation.minhash import plain, shingle_novelty, shingle_table, text_buffers, word_characters
from curate.curation.text import all_text, user_text
from curate.engine.stage import PartProgress, RowStage, StageContext, select_rows

TIERS = ("ngram", "containment", "stem", "embedding")
FIELDS = ("question", "context", "whole", "answer")
EXAMPLES_PER_PAIR = 3
_CONTEXT_SEPARATOR = "\n\n"
_BATCH = 20_000
"""Records ``BenchmarkIndex.match`` looks up at once: what it holds besides the benchmark
side (the normalised texts, their n-gram hits and window candidates) grows with this, not
with the records it is given."""


class Decontaminate(RowStage[DecontamConfig]):
    """Flag records that contain benchmark items; reject heavily contaminated sources."""

    name = "decontam"
    version = 3
    decision_fields = frozenset({"ngram_min_matches", "min_containment", "min_stem_containment",
                                 "embedding_threshold", "reject_source_above"})
    columns = ("messages", "chosen", "rejected")
    score_columns = {f"{tier}_{part}": dtype for tier in TIERS
                     for part, dtype in (("score", pl.Float64), ("benchmark", pl.String),
                                         ("item", pl.String), ("field", pl.String))}

    setup_once = True  # the benchmark index: built once, read by every worker

    @override
    def thresholds(self) -> dict[str, float]:
        """Each tier's score at its threshold or above is a match."""
        o = self.config
        return {"ngram_score": float(o.ngram_min_matches), "containment_score": o.min_containment,
                "stem_score": o.min_stem_containment, "embedding_score": o.embedding_threshold}

    @override
    def resolved(self) -> dict[str, Any]:
        """Tier 4's precision and embedder weights, when the tier is on."""
        c = self.config
        return embedder_resolved(c.embedding_model, c.embedding_precision, c.embedding_backend,
                                 prefix="embedding_")

    def __init__(self, config: DecontamConfig | None = None):
        super().__init__(config)
        self._index: tuple[Any, BenchmarkIndex] | None = None

    @override
    def setup(self, context: StageContext | None = None) -> None:
        """Build the benchmark index, every tier's side of it, before any shard is scored."""
        if context is not None:
            self.index(context).prepare()

    @override
    def teardown(self) -> None:
        """Drop the benchmark index (its embeddings); ``reports`` builds it again if needed."""
        self._index = None

    def index(self, context: StageContext) -> BenchmarkIndex:
        """The benchmark side, built once per set of benchmark files (so once per run, also
        on a worker that received the stage with its index)."""
        names = self.config.benchmarks or list(context.benchmarks)
        cache = context.embedding_cache
        if cache is None and self.config.embedding_cache:
            cache = default_cache_dir()
        cache = cache if self.config.embedding_cache else None
        key = (tuple(names), tuple(tuple(map(str, context.benchmarks.get(n, ()))) for n in names), str(cache))
        if self._index is None or self._index[0] != key:
            self._index = (key, BenchmarkIndex(load_items(context, names), self.config, cache=cache))
        return self._index[1]

    # -- scoring ----------------------------------------------------------------------------

    @override
    def score(self, records: pa.Table, context: StageContext) -> pa.Table:
        """Per record and tier: the best item, its benchmark, the field matched and the score."""
        index = self.index(context)
        index.progress = context.progress
        table = pl.from_arrow(records)
        assert isinstance(table, pl.DataFrame)
        frame = table.select(text=all_text(), turns=turn_texts(self.config.embedding_roles))
        found = index.match(frame.get_column("text"), frame.get_column("turns"))
        columns: dict[str, Any] = {}
        for tier in TIERS:
            item, value, field = found[tier]
            columns[f"{tier}_score"] = pa.array(value, pa.float64(), mask=np.isnan(value))
            columns[f"{tier}_benchmark"] = index.benchmark_of(item)
            columns[f"{tier}_item"] = index.item_of(item)
            columns[f"{tier}_field"] = pa.array(field, pa.string())
        return pa.table(columns)

    @override
    def decide(self, scores: pl.DataFrame) -> pl.DataFrame:
        """The first tier that reaches its threshold names the match; then the 0.5% rule."""
        o = self.config
        fired = {
            "ngram": pl.col("ngram_score") >= o.ngram_min_matches,
            "containment": pl.col("containment_score") >= o.min_containment,
            "stem": pl.col("stem_score") >= o.min_stem_containment,
            "embedding": pl.col("embedding_score") >= o.embedding_threshold,
        }

        def first(part: str) -> pl.Expr:
            return pl.coalesce([pl.when(fired[t].fill_null(False)).then(
                pl.lit(t) if part == "tier" else pl.col(f"{t}_{part}")) for t in TIERS])

        decided = scores.with_columns(contam_tier=first("tier"), contam_benchmark=first("benchmark"),
                                      contam_item=first("item"), contam_field=first("field"))
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
        """The contamination report (per source x benchmark, with examples)."""
        return {"contamination": contamination_report(decisions, records, self.index(context))}


def turn_texts(roles: Sequence[str]) -> pl.Expr:
    """The texts of a record's turns in ``roles`` (messages, then the chosen and rejected
    answers, which are assistant turns), as a list."""
    def contents(column: str) -> pl.Expr:
        turn = pl.element().struct
        return (pl.col(column).list.eval(turn.field("content").filter(turn.field("role").is_in(roles)))
                .fill_null([]))

    return pl.concat_list([contents("messages"), contents("chosen"), contents("rejected")])


def load_items(context: StageContext, names: list[str]) -> pl.DataFrame:
    """Benchmark items, one row per item: ``question``, ``context`` (empty unless every
    stem of the benchmark holds a blank line: then the text before the last one),
    ``options`` (one per line) and ``answer`` (the gold option's text, or empty)."""
    schema = {"benchmark": pl.String, "item": pl.String, "question": pl.String,
              "context": pl.String, "options": pl.String, "answer": pl.String}
    frames = []
    for name in names:
        mcqa = pl.col("mcqa").struct
        frame = context.benchmark_records(name).select(
            benchmark=pl.lit(name),
            item=pl.format("{}:{}", pl.lit(name), pl.col("row")),
            stem=pl.coalesce(mcqa.field("question"), user_text()),
            options=mcqa.field("options").list.join("\n").fill_null(""),
            answer=mcqa.field("options").list.get(mcqa.field("answer"), null_on_oob=True).fill_null(""),
        ).collect()
        has_context = frame.height > 0 and bool(frame.get_column("stem").str.contains(
            _CONTEXT_SEPARATOR, literal=True).all())
        if has_context:
            parts = pl.col("stem").str.split(_CONTEXT_SEPARATOR)
            frame = frame.with_columns(
                question=parts.list.last(),
                context=parts.list.slice(0, parts.list.len() - 1).list.join(_CONTEXT_SEPARATOR))
        else:
            frame = frame.with_columns(question=pl.col("stem"), context=pl.lit(""))
        frames.append(frame.select(list(schema)))
    if not frames:
        return pl.DataFrame(schema=schema)
    return pl.concat(frames)


def folded(column: str) -> pl.Expr:
    """``column`` lower-cased, with punctuation and spaces folded to one space: how items
    compare when case and punctuation must not matter."""
    return pl.col(column).str.to_lowercase().str.replace_all(r"[\W_]+", " ").str.strip_chars()


def windows(texts: pl.Series, widths: Sequence[int]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Texts cut into windows of each width in ``widths`` (ascending; words, overlapping by
    half), the text each window belongs to, and the first and last position in ``widths``
    each window serves. Any span of ``width // 2`` words lies wholly inside one window of
    that width. A text of up to ``width`` words is one window, which serves that width and
    every larger one."""
    out: list[str] = []
    owner: list[int] = []
    serves: list[tuple[int, int]] = []
    for i, text in enumerate(texts.to_list()):
        words = (text or "").split()
        for w, width in enumerate(widths):
            if len(words) <= width:
                out.append(" ".join(words))
                owner.append(i)
                serves.append((w, len(widths) - 1))
                break
            step = max(1, width // 2)
            for start in range(0, len(words) - step, step):
                out.append(" ".join(words[start:start + width]))
                owner.append(i)
                serves.append((w, w))
    return out, np.asarray(owner, np.int64), np.asarray(serves, np.int64).reshape(-1, 2)


@cache
def whitespace_characters() -> np.ndarray:
    """For every code point, whether ``str.split()`` separates words at it."""
    return np.fromiter((chr(c).isspace() for c in range(0x110000)), np.bool_, 0x110000)


def words_survive_normalizing(texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Whether each text's words are the words of its normalised text (``normalize``), one
    for one: true unless the text holds a character that normalising turns into a space
    and more (NFKC: "´" becomes a space and a combining accent). Where it is true, a window
    of the text's words, normalised, is the same run of words of the normalised text."""
    import pyarrow.compute as pc

    from curate.curation._decontam_kernel import code_points, holds_any

    texts = plain(texts)
    stable = np.ones(len(texts), np.bool_)
    others = np.flatnonzero(~pc.string_is_ascii(texts).to_numpy(zero_copy_only=False))
    if len(others) == 0:
        return stable
    offsets, data = text_buffers(texts.take(pa.array(others)), normalized=False)
    seen = np.zeros(0x110000, np.bool_)
    code_points(offsets, data, seen)
    points = np.flatnonzero(seen)
    normalized = pc.utf8_lower(pc.utf8_normalize(pa.array([chr(p) for p in points], pa.large_string()),
                                                 "NFKC")).to_pylist()
    split = [p for p, n in zip(points.tolist(), normalized, strict=True)
             if not chr(p).isspace() and any(ch.isspace() for ch in n)]
    if split:
        marked = np.zeros(0x110000, np.bool_)
        marked[split] = True
        stable[others] = ~holds_any(offsets, data, marked)
    return stable


@dataclass(frozen=True)
class _Anchors:
    """The items' rare shingles as the compiled look-up reads them (``BenchmarkIndex.anchors``)."""

    table: np.ndarray
    """Their hashes' slots and filter (``hash_slots``)."""
    bits: np.ndarray
    key_start: np.ndarray
    """Rare shingle ``a``'s keys of width ``w`` are ``key_of[key_start[a, w]:key_start[a, w + 1]]``."""
    key_of: np.ndarray
    need: np.ndarray
    """Per key id: how many of its rare shingles a window must hold."""


@dataclass(frozen=True)
class Lookup:
    """What one compiled pass over texts found for tiers 1-3 (``BenchmarkIndex.look_up``)."""

    ngram_hits: pl.DataFrame
    """(doc, hash): each n-gram of a text found among the items' (repeats kept)."""
    candidates: pl.DataFrame
    """(unit, key): the windows (units) that hold at least ``min_anchor_share`` of a key's
    rare shingles, each with each such key of the width it serves."""
    unit_doc: np.ndarray
    """The text each unit is a window of."""
    unit_text: pa.Array
    """Each unit's text: its words joined by single spaces."""


class BenchmarkIndex:
    """The benchmark side of every tier, built once and queried per shard of records."""

    def __init__(self, items: pl.DataFrame, config: DecontamConfig, *, cache: Path | None = None):
        self.items = items
        self.config = config
        self.cache = cache
        self.progress: PartProgress | None = None
        """Where matching reports its tiers and embedding batches (the stage's context)."""
        self._benchmarks = np.array(items.get_column("benchmark").to_list() + [None], dtype=object)
        self._ids = np.array(items.get_column("item").to_list() + [None], dtype=object)

    def prepare(self) -> BenchmarkIndex:
        """Build every tier's side now (n-grams, keys, anchors, item embeddings), so that a
        copy of the index sent to a worker carries them (nothing to build without items); the index."""
        if len(self.items):
            _ = self.ngrams, self.anchors
            if self.config.embedding_model is not None:
                _ = self.embedding_keys
        return self

    def benchmark_of(self, item: np.ndarray) -> pa.Array:
        """The benchmark of each item index (-1: null)."""
        return pa.array(self._benchmarks[item], pa.string())

    def item_of(self, item: np.ndarray) -> pa.Array:
        """The ``benchmark:row`` id of each item index (-1: null)."""
        return pa.array(self._ids[item], pa.string())

    def match(self, texts: pl.Series, turns: pl.Series) -> dict[str, tuple[np.ndarray, np.ndarray, list]]:
        """Per tier: for each record, the best item (or -1), its score and matched field.
        ``texts`` are the records' whole texts, ``turns`` their turns (lists of texts).
        Records are looked up ``_BATCH`` at a time; each record's result is its own."""
        parts: list[dict[str, tuple[np.ndarray, np.ndarray, list]]] = []
        batches = max(1, -(-len(texts) // _BATCH))
        for b in range(batches):
            batch = slice(b * _BATCH, (b + 1) * _BATCH)
            self._report("tiers of this shard", 3 * b, 3 * batches)
            lookup = self.look_up(texts[batch])
            found = {"ngram": self.ngram_matches(texts[batch], lookup)}
            self._report("tiers of this shard", 3 * b + 1, 3 * batches)
            found.update(self.containment(texts[batch], lookup))
            self._report("tiers of this shard", 3 * b + 2, 3 * batches)
            found["embedding"] = self.similarity(turns[batch])
            parts.append(found)
        self._report("tiers of this shard", 3 * batches, 3 * batches)
        if len(parts) == 1:
            return parts[0]
        return {tier: (np.concatenate([p[tier][0] for p in parts]),
                       np.concatenate([p[tier][1] for p in parts]),
                       [f for p in parts for f in p[tier][2]]) for tier in TIERS}

    def look_up(self, texts: pl.Series, *, windowed: bool = True) -> Lookup:
        """Tiers 1-3's look-up, in one compiled pass over each text (normalised and tokenised
        once): its n-grams found among the items', and (``windowed``) its windows that hold
        enough of a key's rare shingles to be compared with it."""
        arrow = plain(texts.to_arrow())
        n = len(arrow)
        # a text whose words normalising changes is cut into windows in Python (below)
        stable = words_survive_normalizing(arrow) if windowed else np.ones(n, np.bool_)
        offsets, data = text_buffers(arrow)
        none = np.zeros((n, 2), np.int64) + [1, 0]  # the texts cut into windows serve no width
        ngram_doc, ngram_hash, doc, ordinal, first, last, key = self._scan(
            offsets, data, ngram=self.config.ngram, windowed=stable, serves=none, anchors=windowed)
        words = {d: (arrow[d].as_py() or "").split() for d in np.unique(doc).tolist()}
        cut = [" ".join(words[d][a:b])
               for d, a, b in zip(doc.tolist(), first.tolist(), last.tolist(), strict=True)]
        found = pl.DataFrame({"doc": doc, "ordinal": ordinal, "key": key.astype(np.int64),
                              "text": pl.Series(cut, dtype=pl.String)})
        if not stable.all():
            found = pl.concat([found, self._cut_apart(arrow, np.flatnonzero(~stable))])
        units = (found.select("doc", "ordinal", "text").unique(["doc", "ordinal"]).sort("doc", "ordinal")
                 .with_columns(unit=pl.int_range(pl.len(), dtype=pl.Int64)))
        return Lookup(
            ngram_hits=pl.DataFrame({"doc": ngram_doc, "hash": ngram_hash}),
            candidates=found.join(units, on=["doc", "ordinal"]).select("unit", "key").sort("unit", "key"),
            unit_doc=units.get_column("doc").to_numpy(),
            unit_text=units.get_column("text").to_arrow().cast(pa.large_string()),
        )

    def _scan(self, offsets: np.ndarray, data: np.ndarray, *, ngram: int, windowed: np.ndarray,
              serves: np.ndarray, anchors: bool) -> tuple[np.ndarray, ...]:
        """The compiled look-up (``scan_texts``) over texts as ``text_buffers`` gives them:
        tier 1 with ``ngram``-token n-grams (0: none), windows cut where ``windowed`` (else
        the text is one window serving widths ``serves``), against the anchors or none."""
        import numba

        from curate.curation._decontam_kernel import scan_texts

        c = self.config
        rare = self._anchor_slots if anchors else self._no_anchors
        chunk = max(16, -(-len(windowed) // (8 * numba.get_num_threads())))
        ngrams, ngram_bits = self._ngram_slots
        return scan_texts(offsets, data, word_characters(), whitespace_characters(),
                          ngram if self.ngrams.height else 0, ngrams, ngram_bits, windowed,
                          np.ascontiguousarray(serves[:, 0]), np.ascontiguousarray(serves[:, 1]),
                          np.array([c.short_window_words, c.window_words], np.int64),
                          rare.table, rare.bits, rare.key_start, rare.key_of, rare.need, chunk)

    def _cut_apart(self, texts: pa.Array, which: np.ndarray) -> pl.DataFrame:
        """(doc, ordinal, key, text) of the candidate windows of texts ``which``, cut into
        windows in Python (``windows``), each window looked up as a text of its own."""
        c = self.config
        units, owner, serves = windows(pl.Series(texts.take(pa.array(which))), (c.short_window_words,
                                                                              c.window_words))
        offsets, data = text_buffers(units)
        _, _, unit, _, _, _, key = self._scan(offsets, data, ngram=0, windowed=np.zeros(len(units), np.bool_),
                                              serves=serves, anchors=True)
        return pl.DataFrame({"doc": which[owner[unit]], "ordinal": unit - np.searchsorted(owner, owner[unit]),
                             "key": key.astype(np.int64), "text": pl.Series([units[u] for u in unit.tolist()],
                                                                            dtype=pl.String)})

    def _report(self, part: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(part, done, total)

    @cached_property
    def whole_stems(self) -> pl.Series:
        """Each item's stem as the benchmark gives it: context, blank line, question."""
        return self.items.select(pl.when(pl.col("context") != "")
                                 .then(pl.concat_str(["context", "question"], separator=_CONTEXT_SEPARATOR))
                                 .otherwise(pl.col("question"))).to_series()

    # tier 1 ---------------------------------------------------------------------------------

    @cached_property
    def ngram_texts(self) -> pl.DataFrame:
        """(item, field, text): each item's question, and its context when it has one."""
        base = self.items.with_row_index("idx").select(pl.col("idx").cast(pl.Int64), "question", "context")
        return pl.concat([
            base.select(item="idx", field=pl.lit("question"), text="question"),
            base.filter(pl.col("context") != "").select(item="idx", field=pl.lit("context"), text="context"),
        ])

    @cached_property
    def ngrams(self) -> pl.DataFrame:
        """(hash, item, field) for every n-gram of the items' questions and contexts that
        is not boilerplate: found in ``boilerplate_items`` or more items, or with fewer
        than ``min_novel_tokens`` tokens outside boilerplate phrases (so "the" + a stock
        exam phrase is not a match)."""
        c = self.config
        width = c.boilerplate_width
        texts = self.ngram_texts.get_column("text").to_arrow()
        owner = self.ngram_texts.get_column("item").to_numpy()
        fields = self.ngram_texts.get_column("field").to_numpy()
        phrases, starts, _ = shingle_novelty(texts, width, width=width, common=np.zeros(0, np.uint64))
        common = _in_many_items(pl.DataFrame({"hash": phrases, "item": owner[_owners(starts)]}),
                                c.boilerplate_items).to_numpy()
        if c.stop_phrases:
            common = np.concatenate([common, shingle_table(c.stop_phrases, width)[0]])
        flat, starts, novel = shingle_novelty(texts, c.ngram, width=width, common=common)
        rows = _owners(starts)
        table = pl.DataFrame({"hash": flat, "item": owner[rows], "field": fields[rows], "novel": novel})
        shared = _in_many_items(table, c.boilerplate_items).to_frame()
        return (table.filter(pl.col("novel") >= c.min_novel_tokens)
                .join(shared, on="hash", how="anti").select("hash", "item", "field").unique()
                .sort("item", "field", "hash"))

    @cached_property
    def _ngram_slots(self) -> tuple[np.ndarray, np.ndarray]:
        """The items' n-gram hashes as the compiled look-up's table."""
        from curate.curation._decontam_kernel import hash_slots

        return hash_slots(np.unique(self.ngrams.get_column("hash").to_numpy()))

    def ngram_matches(self, texts: pl.Series,
                      lookup: Lookup | None = None) -> tuple[np.ndarray, np.ndarray, list]:
        """Per text: the item (and field) sharing the most n-grams (or -1), and how many
        (``lookup``: the texts' look-up, when it was made already)."""
        lookup = self.look_up(texts, windowed=False) if lookup is None else lookup
        hits = (
            lookup.ngram_hits.unique()
            .join(self.ngrams, on="hash")
            .group_by("doc", "item", "field").agg(pl.len().cast(pl.Float64).alias("score"))
        )
        return _best(hits, len(texts))

    # tiers 2 and 3 --------------------------------------------------------------------------

    @cached_property
    def keys(self) -> pl.DataFrame:
        """What tiers 2 and 3 compare windows with: (key, item, tier, field, a, b), where a
        window must hold part ``a`` (text) and part ``b`` (a list of options: all of them,
        the gold one, or none) of the item."""
        c = self.config
        base = self.items.drop("item").with_row_index("item").with_columns(
            pl.col("item").cast(pl.Int64), whole=self.whole_stems,
            options=pl.col("options").str.split("\n").list.filter(pl.element() != ""),
            gold=pl.when(pl.col("answer") != "").then(pl.concat_list("answer"))
            .otherwise(pl.lit([], pl.List(pl.String))))
        none = pl.lit([], pl.List(pl.String))
        has_context = pl.col("context") != ""
        parts = [
            base.select("item", tier=pl.lit("containment"), field=pl.lit("whole"), a="whole", b="options"),
            base.filter(has_context).select("item", tier=pl.lit("containment"), field=pl.lit("question"),
                                            a="question", b="options"),
            base.filter(has_context).select("item", tier=pl.lit("containment"), field=pl.lit("context"),
                                            a="context", b=none),
            base.select("item", tier=pl.lit("stem"), field=pl.lit("question"), a="question", b=none),
            base.filter(pl.col("answer") != "").select("item", tier=pl.lit("stem"), field=pl.lit("answer"),
                                                       a="question", b="gold"),
        ]
        keys = pl.concat(parts).sort("item", "tier", "field").with_row_index("key").with_columns(
            pl.col("key").cast(pl.Int64))
        # which stem keys are specific enough: the question alone (not shared by another item
        # with other options), else the question with its gold answer
        mass = self._raw_key_tokens(keys).join(self.idf, on="hash").group_by("key").agg(
            mass=pl.col("idf").sum())
        keys = keys.join(mass, on="key", how="left").with_columns(pl.col("mass").fill_null(0.0))
        repeated = pl.Series("repeated", self._repeated_questions().to_list())
        repeated_of = base.select("item").with_columns(repeated)
        keys = keys.join(repeated_of, on="item", how="left")
        stem_ok = keys.filter((pl.col("field") == "question") & (pl.col("tier") == "stem")
                              & (pl.col("mass") >= c.min_stem_specificity) & ~pl.col("repeated")
                              ).select("item", has_stem=pl.lit(True))
        keys = keys.join(stem_ok, on="item", how="left").with_columns(pl.col("has_stem").fill_null(False))
        keep = (pl.col("tier") == "containment") | (
            (pl.col("field") == "question") & pl.col("has_stem")) | (
            (pl.col("field") == "answer") & ~pl.col("has_stem") & (pl.col("mass") >= c.min_stem_specificity))
        # the words a copy of the key spans (an option's label counts): a key that fits in half
        # a short window is compared with short windows (width 0), others with long ones (1)
        span = (pl.col("a").str.count_matches(r"\S+") + pl.col("b").list.eval(
            pl.element().str.count_matches(r"\S+") + 1).list.sum().fill_null(0))
        width = pl.when(span <= c.short_window_words // 2).then(0).otherwise(1)
        return (keys.filter(keep).with_columns(width=width)
                .select("key", "item", "tier", "field", "a", "b", "mass", "width").sort("key"))

    def _raw_key_tokens(self, keys: pl.DataFrame) -> pl.DataFrame:
        """(key, part, hash): the distinct shingles of part ``a`` (word pairs; a one-word
        text is its word) and of each option of part ``b``."""
        n = self.config.containment_ngram
        flat, starts = shingle_table(keys.get_column("a").to_arrow(), n)
        a = pl.DataFrame({"key": keys.get_column("key").to_numpy()[_owners(starts)], "hash": flat,
                          "part": "a"})
        options = keys.select("key", "b").explode("b").drop_nulls("b")
        flat, starts = shingle_table(options.get_column("b").to_arrow(), n)
        b = pl.DataFrame({"key": options.get_column("key").to_numpy()[_owners(starts)], "hash": flat,
                          "part": "b"})
        return pl.concat([a, b]).unique()

    @cached_property
    def idf(self) -> pl.DataFrame:
        """(hash, df, idf) of every shingle of the items (question, context, each option):
        ``df`` items hold it; ``idf`` = ln((items + 1) / (df + 1))."""
        base = self.items.select(
            item=pl.int_range(pl.len(), dtype=pl.Int64),
            texts=pl.concat_list(pl.col("question"), pl.col("context"),
                                 pl.col("options").str.split("\n"))).explode("texts")
        flat, starts = shingle_table(base.get_column("texts").to_arrow(), self.config.containment_ngram)
        n = max(len(self.items), 1)
        table = pl.DataFrame({"hash": flat, "item": base.get_column("item").to_numpy()[_owners(starts)]})
        return (table.unique().group_by("hash").agg(df=pl.len())
                .with_columns(idf=(math.log(n + 1) - (pl.col("df") + 1).log()).clip(0.01)))

    def _repeated_questions(self) -> pl.Series:
        """Whether another item has the same question (case and punctuation aside) with
        other options: such a question says nothing on its own."""
        norm = self.items.select(q=folded("question"), o=folded("options"))
        return norm.select(pl.col("o").n_unique().over("q") > 1).to_series()

    @cached_property
    def key_tokens(self) -> pl.DataFrame:
        """(key, part, hash, idf, df): the distinct shingles of each kept key's parts, in
        that order (so a part's IDF adds up in one order, run after run)."""
        return self._raw_key_tokens(self.keys).join(self.idf, on="hash", how="left").with_columns(
            pl.col("idf").fill_null(math.log(len(self.items) + 1)), pl.col("df").fill_null(1)).sort(
            "key", "part", "hash")

    @cached_property
    def word_tokens(self) -> pl.DataFrame:
        """(key, part, hash, idf): the distinct words of each kept key's parts, weighted by
        their IDF over the items, in that order."""
        keys = self.keys
        frames = []
        flat, starts = shingle_table(keys.get_column("a").to_arrow(), 1)
        frames.append(pl.DataFrame({"key": keys.get_column("key").to_numpy()[_owners(starts)],
                                    "hash": flat, "part": "a"}))
        options = keys.select("key", "b").explode("b").drop_nulls("b")
        flat, starts = shingle_table(options.get_column("b").to_arrow(), 1)
        frames.append(pl.DataFrame({"key": options.get_column("key").to_numpy()[_owners(starts)],
                                    "hash": flat, "part": "b"}))
        texts = self.items.select(pl.concat_str(["context", "question", "options"],
                                                separator="\n")).to_series()
        flat, starts = shingle_table(texts.to_arrow(), 1)
        n = max(len(self.items), 1)
        idf = (pl.DataFrame({"hash": flat, "item": _owners(starts)}).group_by("hash").agg(df=pl.len())
               .with_columns(idf=(math.log(n + 1) - (pl.col("df") + 1).log()).clip(0.01)))
        return pl.concat(frames).unique().join(idf, on="hash", how="left").with_columns(
            pl.col("idf").fill_null(math.log(n + 1))).sort("key", "part", "hash")

    @cached_property
    def anchors(self) -> pl.DataFrame:
        """(hash, key, anchors) for the rare shingles of each key (found in at most
        ``anchor_max_items`` items) and how many the key has; containment keys with fewer
        than ``min_item_shingles`` distinct words are left to the other tiers (a stem key
        is kept by its specificity instead)."""
        containment = self.keys.filter(pl.col("tier") == "containment").select("key")
        small = self.word_tokens.join(containment, on="key").group_by("key").agg(tokens=pl.len()).filter(
            pl.col("tokens") < self.config.min_item_shingles).select("key")
        rare = (self.key_tokens.filter(pl.col("df") <= self.config.anchor_max_items)
                .join(small, on="key", how="anti").select("hash", "key").unique())
        return (rare.join(rare.group_by("key").agg(anchors=pl.len()), on="key")
                .join(self.keys.select("key", "width"), on="key").sort("hash", "key"))

    @cached_property
    def _anchor_slots(self) -> _Anchors:
        """``anchors`` as the compiled look-up reads them: each key's need is
        ``min_anchor_share`` of its rare shingles, rounded up."""
        from curate.curation._decontam_kernel import hash_slots

        anchors = self.anchors.sort("hash", "width", "key")
        widths = 2  # short and long windows
        hashes, first = np.unique(anchors.get_column("hash").to_numpy(), return_index=True)
        rare = np.repeat(np.arange(len(hashes)), np.diff(np.append(first, anchors.height)))
        code = rare * widths + anchors.get_column("width").to_numpy()
        wanted = np.arange(len(hashes))[:, None] * widths + np.arange(widths + 1)[None, :]
        key_start = np.searchsorted(code, wanted.ravel()).reshape(len(hashes), widths + 1).astype(np.int64)
        per_key = anchors.unique("key")
        ids = per_key.get_column("key").to_numpy()
        need = np.zeros(int(ids.max()) + 1 if len(ids) else 0, np.int32)
        need[ids] = np.ceil(per_key.get_column("anchors").to_numpy().astype(np.float64)
                            * self.config.min_anchor_share)
        table, bits = hash_slots(hashes)
        return _Anchors(table, bits, key_start, anchors.get_column("key").to_numpy().astype(np.int32), need)

    @cached_property
    def _no_anchors(self) -> _Anchors:
        """No rare shingles: a look-up without windows."""
        from curate.curation._decontam_kernel import hash_slots

        none = np.zeros(0, np.int32)
        table, bits = hash_slots(np.zeros(0, np.uint64))
        return _Anchors(table, bits, np.zeros((0, 3), np.int64), none, none)

    def part_shares(self, texts: pl.Series, lookup: Lookup | None = None) -> pl.DataFrame:
        """(unit, doc, key, part, share) for every window (``unit``) of a text (``doc``) and
        key compared: the IDF-weighted share of the part's words, and of its word pairs, that
        the window holds (the mean of the two: an edit breaks two pairs but one word; a
        passage on the same topic shares words, not pairs). A window is compared with the
        keys of its width whose rare shingles it holds (``look_up``): a short item with short
        windows, so that its few words scattered over a long passage on its topic do not add
        up."""
        c = self.config
        n = c.containment_ngram
        schema = {"unit": pl.Int64, "doc": pl.Int64, "key": pl.Int64, "part": pl.String, "share": pl.Float64}
        lookup = self.look_up(texts) if lookup is None else lookup
        candidates = lookup.candidates
        if candidates.height == 0:
            return pl.DataFrame(schema=schema)
        wanted = np.arange(len(lookup.unit_text), dtype=np.int64)
        unit_tokens = {}
        for k in sorted({1, n}):
            flat, starts = shingle_table(lookup.unit_text, k)
            unit_tokens[k] = pl.DataFrame({"unit": wanted[_owners(starts)], "hash": flat,
                                           "present": np.ones(len(flat), np.bool_)})
        # a one-word option is a one-word shingle: the pairs' side looks for words too
        present = {1: unit_tokens[1], n: pl.concat(list(unit_tokens.values())).unique(["unit", "hash"])}
        by_size = []
        for k, tokens in ((1, self.word_tokens), (n, self.key_tokens)):
            # in the tokens' order: a sum of floats depends on its order
            by_size.append(
                candidates.join(tokens.select("key", "part", "hash", "idf"), on="key",
                                maintain_order="left_right")
                .join(present[k], on=["unit", "hash"], how="left", maintain_order="left")
                .group_by("unit", "key", "part")
                .agg(share=(pl.col("idf") * pl.col("present").fill_null(False)).sum() / pl.col("idf").sum()))
        shares = pl.concat(by_size).group_by("unit", "key", "part").agg(share=pl.col("share").mean())
        doc = lookup.unit_doc[shares.get_column("unit").to_numpy()]
        return shares.with_columns(doc=pl.Series(doc)).select(list(schema))

    def containment(self, texts: pl.Series,
                    lookup: Lookup | None = None) -> dict[str, tuple[np.ndarray, np.ndarray, list]]:
        """Tiers 2 and 3: per text, the best key of each tier over the text's windows. A
        key's score in a window is the geometric mean of its parts' shares (question or
        stem, and the options): both parts must be there, but a short question whose rare
        words an edit replaced is carried by its options, and the other way round."""
        shares = (
            self.part_shares(texts, lookup)
            .group_by("unit", "doc", "key").agg(score=pl.col("share").log().mean().exp())
            .join(self.keys.select("key", "item", "tier", "field"), on="key")
        )
        return {tier: _best(shares.filter(pl.col("tier") == tier).select("doc", "item", "field", "score"),
                            len(texts)) for tier in ("containment", "stem")}

    # tier 4 ---------------------------------------------------------------------------------

    def _embed(self, texts: list[str], what: str) -> np.ndarray:
        c = self.config
        assert c.embedding_model is not None
        progress = self.progress
        return embed(texts, c.embedding_model, max_tokens=c.embedding_max_tokens,
                     backend=c.embedding_backend, precision=c.embedding_precision, cache=self.cache,
                     cache_bytes=c.embedding_cache_mb * 2**20,
                     progress=None if progress is None else (lambda d, t: progress(what, d, t)))

    @cached_property
    def embedding_key_texts(self) -> pl.DataFrame:
        """(item, field, text): each item's question, and whole stem when it has a context."""
        base = self.items.drop("item").with_row_index("item").with_columns(pl.col("item").cast(pl.Int64),
                                                               whole=self.whole_stems)
        return pl.concat([
            base.select("item", field=pl.lit("question"), text="question"),
            base.filter(pl.col("context") != "").select("item", field=pl.lit("whole"), text="whole"),
        ])

    @cached_property
    def embedding_keys(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(item, field, vectors) of ``embedding_key_texts``."""
        table = self.embedding_key_texts
        vectors = self._embed(table.get_column("text").to_list(), "embedding benchmark items")
        return table.get_column("item").to_numpy(), table.get_column("field").to_numpy(), vectors

    def similarity(self, turns: pl.Series) -> tuple[np.ndarray, np.ndarray, list]:
        """Per record: the item most similar in meaning to one of its turns, and the cosine."""
        n = len(turns)
        if self.config.embedding_model is None or len(self.items) == 0:
            return np.full(n, -1), np.full(n, np.nan), [None] * n
        flat = turns.explode()
        owner = np.repeat(np.arange(n), turns.list.len().fill_null(0).to_numpy())
        words = flat.fill_null("").str.count_matches(r"\S+").to_numpy()
        present = words >= self.config.embedding_min_words
        texts = flat.filter(pl.Series(present)).to_list()
        owner = owner[present] if len(owner) == len(present) else owner
        items, fields, keys = self.embedding_keys
        key, cosine = nearest(self._embed(texts, "embedding turns"), keys)
        hits = pl.DataFrame({"doc": owner, "item": items[key] if len(key) else np.zeros(0, np.int64),
                             "field": fields[key] if len(key) else np.zeros(0, str),
                             "score": cosine.astype(np.float64)}, schema={
            "doc": pl.Int64, "item": pl.Int64, "field": pl.String, "score": pl.Float64})
        return _best(hits, n)


def _owners(starts: np.ndarray) -> np.ndarray:
    """For a flat table with ``starts``, the text each entry belongs to."""
    return np.repeat(np.arange(len(starts) - 1), np.diff(starts))


def _in_many_items(table: pl.DataFrame, items: int) -> pl.Series:
    """The hashes of ``table`` (hash, item, ...) found in ``items`` or more items."""
    return (table.select("hash", "item").unique().group_by("hash").agg(pl.len().alias("items"))
            .filter(pl.col("items") >= items).get_column("hash").sort())


def _best(hits: pl.DataFrame, n: int) -> tuple[np.ndarray, np.ndarray, list]:
    """Per document: the (item, field) with the highest ``score`` (ties: lowest item, then
    field), or -1 / NaN / None."""
    item = np.full(n, -1, np.int64)
    score = np.full(n, np.nan)
    field: list[str | None] = [None] * n
    if hits.height:
        best = hits.sort(["doc", "score", "item", "field"], descending=[False, True, False, False]).unique(
            "doc", keep="first")
        docs = best.get_column("doc").to_numpy()
        item[docs] = best.get_column("item").to_numpy()
        score[docs] = best.get_column("score").to_numpy()
        for d, f in zip(docs.tolist(), best.get_column("field").to_list(), strict=True):
            field[d] = f
    return item, score, field


def contamination_report(
    decisions: pl.DataFrame, records: pl.LazyFrame, index: BenchmarkIndex
) -> pl.DataFrame:
    """Per source x benchmark: rows, contaminated rows and share, rows per tier and per
    matched field, whether the source was rejected, and up to three examples (record text
    beside the item, the tier and the field that matched)."""
    totals = decisions.group_by("source").agg(
        pl.len().alias("source_rows"),
        (pl.col("reason") == "source_rejected").any().alias("source_rejected"),
    )
    hit = decisions.filter(pl.col("contam_tier").is_not_null())
    counted = {**{t: pl.UInt32 for t in TIERS}, **{f"field_{f}": pl.UInt32 for f in FIELDS}}
    if hit.height == 0:
        return pl.DataFrame(schema={
            "source": pl.String, "benchmark": pl.String, "source_rows": pl.UInt32,
            "contaminated": pl.UInt32, "share": pl.Float64, **counted,
            "source_rejected": pl.Boolean, "examples": pl.List(pl.Struct({
                "record": pl.String, "record_text": pl.String, "item": pl.String,
                "item_text": pl.String, "tier": pl.String, "field": pl.String})),
        })
    # the texts of the examples only: the first rows of each pair
    shown = hit.sort("source", "row").group_by("source", "contam_benchmark", maintain_order=True).head(
        EXAMPLES_PER_PAIR)
    texts = select_rows(records, shown.select("source", "row"), "source", "row", "id",
                        all_text().alias("record_text"))
    item_text = index.items.select(
        "item", item_text=pl.concat_str([index.whole_stems, pl.col("options")], separator="\n"))
    examples = (
        shown.join(texts, on=["source", "row", "id"])
        .join(item_text, left_on="contam_item", right_on="item")
        .sort("source", "row")
        .group_by("source", "contam_benchmark", maintain_order=True)
        .agg(examples=pl.struct(
            record=pl.format("{}:{}", "source", "row"),
            record_text=pl.col("record_text").str.slice(0, 600),
            item=pl.col("contam_item"),
            item_text=pl.col("item_text").str.slice(0, 600),
            tier=pl.col("contam_tier"),
            field=pl.col("contam_field"),
        ))
    )
    counts = hit.group_by("source", "contam_benchmark").agg(
        pl.len().alias("contaminated"),
        *[(pl.col("contam_tier") == t).sum().alias(t) for t in TIERS],
        *[(pl.col("contam_field") == f).sum().alias(f"field_{f}") for f in FIELDS],
    )
    return (
        counts.join(totals, on="source")
        .join(examples, on=["source", "contam_benchmark"], how="left")
        .with_columns(share=pl.col("contaminated") / pl.col("source_rows"))
        .rename({"contam_benchmark": "benchmark"})
        .select("source", "benchmark", "source_rows", "contaminated", "share", *counted,
                "source_rejected", "examples")
        .sort("source", "benchmark")
    )
