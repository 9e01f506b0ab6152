"""Contamination exclusion: an index is checked against a benchmark before it serves it.

``check_index(index, benchmarks, config)`` runs the decontamination stage itself
(``curate.curation.decontam.Decontaminate``, decontam_v3: its tiers, thresholds and
boilerplate rules, nothing re-implemented here) over the index's records, as a run
checks a source: each record becomes the record a release would hold (a user turn with
the question and lettered options, an assistant turn with its chain of thought or its
answer). Every record the stage flags is excluded from the returned view of the index
and counted per benchmark and tier, so a test question can never retrieve itself or a
near copy. (The stage's whole-source rule, ``reject_source_above``, does not apply: the
index drops the flagged records, not all of them.)

Then the **similarity guard** (``GuardConfig.max_similarity``): the benchmark items'
questions are embedded with the index's own embedder and every record whose question has
a cosine at or above the threshold with one of them is excluded too (tier
``similarity``): reworded copies (paraphrased, words replaced) that share too few word
sequences for the lexical tiers. The view returned also carries the threshold, so its
``search`` drops a retrieved record that close to the query and counts it.

One ``GuardConfig`` drives every path: ``curate rag check``, ``curate rag search
--benchmark``, ``curate eval mcqa --retrieval`` and ``curate.rag.open_index``.
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from curate.rag.config import GuardConfig
from curate.rag.index import Index
from curate.rag.prompts import letter
from curate.records import SCHEMA, conform

INDEX_SOURCE = "rag_index"
SIMILARITY_TIER = "similarity"


@dataclass(frozen=True)
class Exclusion:
    """An index record the decontamination stage found in a benchmark."""

    id: str
    benchmark: str
    item: str
    tier: str
    field: str | None
    score: float | None
    question: str | None = None
    """The index record's question."""


@dataclass
class ContaminationCheck:
    """The outcome: the clean view of the index and what was excluded."""

    index: Index
    excluded: list[Exclusion] = field(default_factory=list)
    checked: int = 0

    @property
    def by_benchmark(self) -> dict[str, int]:
        """Excluded records per benchmark."""
        return dict(sorted(Counter(e.benchmark for e in self.excluded).items()))

    @property
    def by_tier(self) -> dict[str, int]:
        """Excluded records per tier that found them."""
        return dict(sorted(Counter(e.tier for e in self.excluded).items()))

    def summary(self) -> dict[str, Any]:
        """Counts for results files: checked, excluded, per benchmark and per tier, and the pairs."""
        return {
            "checked": self.checked, "excluded": len(self.excluded), "kept": len(self.index),
            "by_benchmark": self.by_benchmark, "by_tier": self.by_tier,
            "records": [asdict(e) for e in self.excluded],
        }

    def to_json(self) -> dict[str, Any]:
        """``curate rag check --json``."""
        return self.summary()

    def write(self, path: str | Path) -> Path:
        """Write the summary with every exclusion (``curate rag check --out``) as JSON."""
        from curate.store import write_json

        target = Path(path)
        write_json(target, self.summary())
        return target


def as_records(index: Index) -> pa.Table:
    """The index's records in the record schema (what the decontamination stage reads)."""
    rows = []
    for position, r in enumerate(index.records.to_dicts()):
        options = list(r["options"] or [])
        listing = "\n".join(f"{letter(i)}. {o}" for i, o in enumerate(options))
        gold = r["answer"]
        answered = gold is not None and gold < len(options)
        reply = r["cot"] or (f"{letter(gold)}. {options[gold]}" if answered else "")
        rows.append({
            "id": r["id"], "source": INDEX_SOURCE, "source_version": "1", "row": position, "kind": "mcqa",
            "messages": [{"role": "user", "content": f"{r['question']}\n{listing}"},
                         {"role": "assistant", "content": reply}],
            "mcqa": {"question": r["question"], "options": options, "answer": gold},
        })
    return conform(pa.Table.from_pylist(rows, schema=SCHEMA) if rows else SCHEMA.empty_table())


def check_index(index: Index, benchmarks: Mapping[str, pl.DataFrame], guard: GuardConfig | None = None,
                *, embedding_cache: Path | None = None,
                similar_to: Mapping[str, tuple[str, Sequence[str]]] | None = None) -> ContaminationCheck:
    """Check ``index`` against ``benchmarks`` (name -> its ingested records) with the
    decontamination stage and the similarity guard; the index without the flagged records
    (searching with the guard's threshold), and what they were. ``similar_to`` (item id ->
    question and options): the items the similarity tier compares with [default: every item
    of ``benchmarks``]; an evaluation passes the items it evaluates, its only queries."""
    guard = guard or GuardConfig.model_validate({})
    if len(index) == 0 or not benchmarks:
        return ContaminationCheck(index=index.guarded(guard.max_similarity), checked=len(index))
    excluded = _decontam_tiers(index, benchmarks, guard, embedding_cache)
    view = index.without({e.id: f"contaminated:{e.benchmark}:{e.item}" for e in excluded})
    if guard.max_similarity is not None and len(view):
        similar = _similarity_tier(view, similar_to if similar_to is not None else _items(benchmarks), guard,
                                   embedding_cache)
        excluded += similar
        view = view.without({e.id: f"similar:{e.benchmark}:{e.item}" for e in similar})
    questions = dict(index.records.select("id", "question").iter_rows())
    excluded = [Exclusion(e.id, e.benchmark, e.item, e.tier, e.field, e.score, questions.get(e.id))
                for e in excluded]
    return ContaminationCheck(index=view.guarded(guard.max_similarity), excluded=excluded, checked=len(index))


def _items(benchmarks: Mapping[str, pl.DataFrame]) -> dict[str, tuple[str, list[str]]]:
    """Item id (``<benchmark>:<row>``) -> question and options, for every item of ``benchmarks``."""
    from curate.curation.text import user_text

    out: dict[str, tuple[str, list[str]]] = {}
    for name, frame in benchmarks.items():
        if frame.height == 0:
            continue
        mcqa = pl.col("mcqa")
        texts = frame.select("row", text=pl.coalesce(mcqa.struct.field("question"), user_text()),
                             options=mcqa.struct.field("options"))
        out.update({f"{name}:{row}": (text, list(options or [])) for row, text, options in texts.iter_rows()
                    if text})
    return out


def _fold(option: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", option.lower()).split())


def _similarity_tier(index: Index, items: Mapping[str, tuple[str, Sequence[str]]], guard: GuardConfig,
                     cache: Path | None) -> list[Exclusion]:
    """Records of ``index`` whose question's cosine with an item's question is at least
    ``max_similarity`` (field ``question``), or at least ``min_options_similarity`` while
    they offer all of the item's options but one, or more (field ``question+options``: a
    copy whose question was reworded beyond recognition keeps its options)."""
    from curate.curation.embed import default_cache_dir, nearest

    threshold = guard.max_similarity
    if not items or threshold is None:
        return []
    ids = list(items)
    vectors = index.embed([items[i][0] for i in ids], cache=cache or default_cache_dir())
    best, score = nearest(index.vectors, vectors)
    out = {}
    for position in np.flatnonzero(score >= threshold - 1e-6).tolist():
        item = ids[int(best[position])]
        out[position] = Exclusion(index.ids[position], item.rpartition(":")[0], item, SIMILARITY_TIER,
                                  "question", float(score[position]))
    by_option: dict[str, list[int]] = {}
    for n, i in enumerate(ids):
        for option in {_fold(o) for o in items[i][1] if len(_fold(o)) > 1}:
            by_option.setdefault(option, []).append(n)
    wanted = [len({_fold(o) for o in items[i][1] if len(_fold(o)) > 1}) for i in ids]
    for position, options in enumerate(index.records.get_column("options").to_list()):
        if position in out:
            continue
        shared: dict[int, int] = {}
        for option in {_fold(o) for o in options or [] if len(_fold(o)) > 1}:
            for n in by_option.get(option, ()):
                shared[n] = shared.get(n, 0) + 1
        for n, count in shared.items():
            if count < max(2, wanted[n] - 1):
                continue
            cosine = float(index.vectors[position] @ vectors[n])
            if cosine >= guard.min_options_similarity:
                out[position] = Exclusion(index.ids[position], ids[n].rpartition(":")[0], ids[n],
                                          SIMILARITY_TIER, "question+options", cosine)
                break
    return [out[p] for p in sorted(out)]


def _decontam_tiers(index: Index, benchmarks: Mapping[str, pl.DataFrame], guard: GuardConfig,
                    embedding_cache: Path | None) -> list[Exclusion]:
    from curate.curation.decontam import Decontaminate
    from curate.engine.stage import StageContext
    from curate.store import write_parquet

    config = guard.decontam
    records = as_records(index)
    with tempfile.TemporaryDirectory(prefix="curate-rag-check-") as tmp:
        files = {}
        for name, frame in benchmarks.items():
            path = Path(tmp) / f"{name}.parquet"
            write_parquet(frame.to_arrow().cast(SCHEMA), path)
            files[name] = [path]
        stage = Decontaminate(config.model_copy(update={"benchmarks": list(benchmarks)}))
        context = StageContext(benchmarks=files, embedding_cache=embedding_cache)
        try:
            stage.setup(context)
            scores = pl.from_arrow(stage.score(records, context))
        finally:
            stage.teardown()
    assert isinstance(scores, pl.DataFrame)
    keyed = pl.from_arrow(records.select(["source", "row", "id"]))
    assert isinstance(keyed, pl.DataFrame)
    decided = stage.decide(keyed.hstack(scores)).filter(pl.col("contam_tier").is_not_null()).sort("row")
    return [Exclusion(rid, benchmark, item, tier, matched, _score(decided, rid, tier))
            for rid, benchmark, item, tier, matched in decided.select(
                "id", "contam_benchmark", "contam_item", "contam_tier", "contam_field").iter_rows()]


def _score(decided: pl.DataFrame, rid: str, tier: str) -> float | None:
    value = decided.filter(pl.col("id") == rid).get_column(f"{tier}_score").item()
    return None if value is None else float(value)
