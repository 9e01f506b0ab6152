"""Run stages in this process over the run store, resuming what is already done.

Each stage sees the records that every earlier stage kept. Its scores are persisted
per shard under ``<stage>/_scores/`` (row stages: one shard per ingested shard; dataset
stages: one shard), then ``decide`` writes ``<stage>/decisions.parquet`` (keys, scores,
``keep``, ``reason``) and ``<stage>/stats.json``.

Fingerprints chain: a stage's scores belong to (its input, its name and version, its
scoring options); its decisions to (its scores, its decision options). A finished
stage with the same fingerprint is never recomputed; a stage whose decision options
changed re-decides from its stored scores.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from curate.engine.stage import KEYS, DatasetStage, RowStage, Stage, StageContext, reason_code
from curate.records import empty_records
from curate.store import RunStore, ShardedFolder, fingerprint, read_json, write_json, write_parquet

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (stage name, shards done, shards total)


@dataclass
class StageResult:
    name: str
    stats: dict[str, Any]
    reused: str  # "nothing", "scores" or "decisions"


def record_files(store: RunStore, sources: Sequence[str]) -> list[Path]:
    """The ingested record shards of ``sources``, in recipe order then shard order."""
    return [path for name in sources for path in store.source(name).files("records")]


@dataclass(frozen=True)
class _Input:
    """What a stage reads: the ingested records of ``sources`` not in ``dropped``."""

    store: RunStore
    sources: Sequence[str]
    dropped: pl.DataFrame
    context: StageContext

    def shards(self) -> list[tuple[str, Path]]:
        return [(name, path) for name in self.sources for path in self.store.source(name).files("records")]

    def records(self, path: Path | None = None) -> pl.LazyFrame:
        """All input records, or those of one shard."""
        files = [path] if path is not None else record_files(self.store, self.sources)
        if not files:
            return pl.from_arrow(empty_records()).lazy()
        frame = pl.scan_parquet(files)
        if self.dropped.height == 0:
            return frame
        return frame.join(self.dropped.lazy(), on=["source", "row"], how="anti", maintain_order="left")


def run_stages(
    stages: Sequence[Stage],
    store: RunStore,
    sources: Sequence[str],
    *,
    input_fingerprint: str,
    context: StageContext | None = None,
    progress: Progress | None = None,
) -> list[StageResult]:
    """Run ``stages`` in order over the ingested ``sources`` of ``store``.

    ``input_fingerprint`` identifies everything the stages read (sources and benchmarks).
    """
    context = StageContext() if context is None else context
    dropped = pl.DataFrame(schema={"source": pl.String, "row": pl.Int64})
    upstream = input_fingerprint
    results = []
    for stage in stages:
        earlier = {r.name: store.stage(r.name).path / "decisions.parquet" for r in results}
        inputs = _Input(store, sources, dropped, replace(context, decisions=earlier))
        result, decisions = _run_stage(stage, inputs, upstream, progress)
        removed = decisions.filter(~pl.col("keep")).select("source", "row")
        dropped = pl.concat([dropped, removed])
        upstream = result.stats["decision_fingerprint"]
        results.append(result)
    return results


def _run_stage(
    stage: Stage, inputs: _Input, upstream: str, progress: Progress | None
) -> tuple[StageResult, pl.DataFrame]:
    score_fp = fingerprint(upstream, stage.versioned_name, stage.score_options())
    decision_fp = fingerprint(score_fp, stage.decision_options())
    folder = inputs.store.stage(stage.name).path
    decisions_path = folder / "decisions.parquet"
    stats_path = folder / "stats.json"
    if stats_path.exists() and decisions_path.exists():
        stats = read_json(stats_path)
        if stats.get("decision_fingerprint") == decision_fp:
            return StageResult(stage.name, stats, "decisions"), pl.read_parquet(decisions_path)

    started = time.perf_counter()
    scores_folder = ShardedFolder(folder / "_scores")
    reused = "scores" if scores_folder.is_complete(score_fp) else "nothing"
    if reused == "nothing":
        scores_folder.open(score_fp)
        if isinstance(stage, RowStage):
            _score_rows(stage, inputs, scores_folder, progress)
        elif isinstance(stage, DatasetStage):
            _score_dataset(stage, inputs, scores_folder, progress)
        scores_folder.mark_complete()
    # A shard that earlier stages emptied has keys only: concatenate by column name.
    files = scores_folder.files("scores")
    scores = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed") if files else None
    if scores is None or scores.height == 0:
        scores = pl.DataFrame(schema={"source": pl.String, "row": pl.Int64, "id": pl.String})
    decisions = stage.decide(scores)
    write_parquet(decisions.to_arrow(), decisions_path)
    for name, table in stage.reports(decisions, inputs.records(), inputs.context).items():
        write_parquet(table.to_arrow(), folder / "reports" / f"{name}.parquet")
    reasons = Counter(
        reason_code(r) for r in decisions.get_column("reason").drop_nulls().to_list()
    )
    stats = {
        "stage": stage.versioned_name,
        "options": stage.config.model_dump(mode="json"),
        "rows": decisions.height,
        "kept": int(decisions.get_column("keep").sum()),
        "dropped": int((~decisions.get_column("keep")).sum()),
        "reasons": dict(sorted(reasons.items())),
        "seconds": round(time.perf_counter() - started, 3),
        "score_fingerprint": score_fp,
        "decision_fingerprint": decision_fp,
    }
    write_json(stats_path, stats)
    log.info("%s: %d rows, %d dropped", stage.versioned_name, stats["rows"], stats["dropped"])
    return StageResult(stage.name, stats, reused), decisions


def _score_rows(stage: RowStage, inputs: _Input, folder: ShardedFolder,
                progress: Progress | None) -> None:
    shards = inputs.shards()
    done = folder.done()
    columns = list(dict.fromkeys([*KEYS, *stage.columns]))
    for i, (source, path) in enumerate(shards):
        shard = f"{source}-{path.stem.split('-')[-1]}"
        if shard not in done:
            arrow = inputs.records(path).select(columns).collect().to_arrow()
            scored = stage.score(arrow, inputs.context) if arrow.num_rows else pa.table({})
            keys = arrow.select(list(KEYS))
            for name in scored.column_names:
                keys = keys.append_column(name, scored.column(name))
            folder.write_shard(shard, {"scores": keys}, {"rows": arrow.num_rows})
        if progress is not None:
            progress(stage.name, i + 1, len(shards))


def _score_dataset(stage: DatasetStage, inputs: _Input, folder: ShardedFolder,
                   progress: Progress | None) -> None:
    columns = list(dict.fromkeys([*KEYS, *stage.columns]))
    scores = stage.score(inputs.records().select(columns), inputs.context).sort("source", "row")
    folder.write_shard("all", {"scores": scores.to_arrow()}, {"rows": scores.height})
    if progress is not None:
        progress(stage.name, 1, 1)


def kept_records(store: RunStore, sources: Sequence[str], stage_names: Sequence[str]) -> pl.LazyFrame:
    """The ingested records of ``sources`` that every stage in ``stage_names`` kept."""
    files = record_files(store, sources)
    if not files:
        return pl.from_arrow(empty_records()).lazy()
    frame = pl.scan_parquet(files)
    for name in stage_names:
        path = store.stage(name).path / "decisions.parquet"
        removed = pl.scan_parquet(path).filter(~pl.col("keep")).select("source", "row")
        frame = frame.join(removed, on=["source", "row"], how="anti", maintain_order="left")
    return frame
