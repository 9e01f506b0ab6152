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
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from curate.curation.config import DecontamConfig
from curate.rag.index import Index
from curate.rag.prompts import letter
from curate.records import SCHEMA, conform

INDEX_SOURCE = "rag_index"


@dataclass(frozen=True)
class Exclusion:
    """An index record the decontamination stage found in a benchmark."""

    id: str
    benchmark: str
    item: str
    tier: str
    field: str | None
    score: float | None


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


def check_index(index: Index, benchmarks: Mapping[str, pl.DataFrame], config: DecontamConfig | None = None,
                *, embedding_cache: Path | None = None) -> ContaminationCheck:
    """Check ``index`` against ``benchmarks`` (name -> its ingested records) with the
    decontamination stage; the index without the flagged records, and what they were."""
    from curate.curation.decontam import Decontaminate
    from curate.engine.stage import StageContext
    from curate.store import write_parquet

    config = config or DecontamConfig.model_validate({})
    if len(index) == 0 or not benchmarks:
        return ContaminationCheck(index=index, checked=len(index))
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
    excluded = [Exclusion(rid, benchmark, item, tier, matched, _score(decided, rid, tier))
                for rid, benchmark, item, tier, matched in decided.select(
                    "id", "contam_benchmark", "contam_item", "contam_tier", "contam_field").iter_rows()]
    view = index.without({e.id: f"contaminated:{e.benchmark}:{e.item}" for e in excluded})
    return ContaminationCheck(index=view, excluded=excluded, checked=len(index))


def _score(decided: pl.DataFrame, rid: str, tier: str) -> float | None:
    value = decided.filter(pl.col("id") == rid).get_column(f"{tier}_score").item()
    return None if value is None else float(value)
