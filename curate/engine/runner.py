"""Run steps over the run store, resuming what is already done.

Each stage sees the records that every earlier stage kept. Its scores are persisted
per shard (row stages: one shard per ingested shard; dataset stages: one shard), then
``decide`` writes its decisions and stats (see ``curate.store`` for the layout). A
producer step (synthesis) reads the records every stage kept and writes new records
to the run as a source of its own.

Where the scoring runs is the executor's business (``curate.engine.executor``: in this
process, or on a Ray cluster; the context's ``executor``): a row stage's shards are
scored where it says, a dataset stage's row-wise work is mapped there and its global
step runs here, over compact columns. Decisions, reports and stats are made here.

Fingerprints chain: a stage's scores belong to (its input, its name and version, its
scoring options); its decisions to (its scores, its decision options); a producer's
records to (the last decisions, its name and version, its options). A finished step
with the same fingerprint is never recomputed; a stage whose decision options changed
re-decides from its stored scores. A step is set up (models loaded) only when it has
work to do, and torn down as soon as that work is done.
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

from curate.config import EngineConfig
from curate.engine.executor import Executor, LocalExecutor, Shard
from curate.engine.stage import (
    DatasetStage,
    Producer,
    RowStage,
    Stage,
    StageContext,
)
from curate.lifecycle import running
from curate.progress import Progress, Tick
from curate.read.runs import RunReader, decisions_are_current, split_reasons
from curate.records import KEYS, POSITION
from curate.store import RunStore, ShardedFolder, fingerprint, write_json, write_parquet

log = logging.getLogger(__name__)



@dataclass
class StageResult:
    """What a stage (or producer) run left: its stats and what was reused."""

    name: str
    stats: dict[str, Any]
    reused: str  # "nothing", "scores" or "decisions" (a producer: "nothing" or "records")


@dataclass(frozen=True)
class _Input:
    """What a stage reads: the ingested records of ``sources`` not in ``dropped``."""

    store: RunStore
    sources: Sequence[str]
    dropped: pl.DataFrame
    context: StageContext

    def shards(self) -> list[Shard]:
        return input_shards(self.store, self.sources)

    def records(self, path: Path | None = None) -> pl.LazyFrame:
        """All input records, or those of one shard."""
        files = [path] if path is not None else RunReader(self.store).record_files(self.sources)
        return RunReader.excluding(files, self.dropped)


def make_executor(config: EngineConfig) -> Executor:
    """The executor ``config`` names (Ray is imported only when it is asked for)."""
    if config.engine == "ray":
        from curate.engine.ray import RayExecutor

        return RayExecutor(config)
    return LocalExecutor()


def run_stages(
    stages: Sequence[Stage[Any]],
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
    results: list[StageResult] = []
    shards = input_shards(store, sources)
    for stage in stages:
        earlier = {r.name: store.stage(r.name).decisions for r in results}
        inputs = _Input(store, sources, dropped, replace(
            context, decisions=earlier, progress=_parts(stage, progress), shards=shards, dropped=dropped))
        result, decisions = _run_stage(stage, inputs, upstream, progress)
        removed = decisions.filter(~pl.col("keep")).select(POSITION)
        dropped = pl.concat([dropped, removed])
        upstream = result.stats["decision_fingerprint"]
        results.append(result)
    return results


def _parts(stage: Stage[Any], progress: Progress | None) -> Callable[[str, int, int], None] | None:
    """The stage's progress inside its work: a ``Tick`` of the stage per part."""
    if progress is None:
        return None
    return lambda part, done, total: progress(Tick(stage.name, part, done, total))


def _run_stage(
    stage: Stage[Any], inputs: _Input, upstream: str, progress: Progress | None
) -> tuple[StageResult, pl.DataFrame]:
    score_fp = fingerprint(upstream, stage.versioned_name, stage.score_options())
    decision_fp = fingerprint(score_fp, stage.decision_options())
    folder = inputs.store.stage(stage.name)
    stats = folder.read_stats() if folder.decisions.exists() else None
    if (stats is not None and stats.get("decision_fingerprint") == decision_fp
            and decisions_are_current(folder.decisions)):
        log.debug("%s: decisions reused (decision fingerprint %s)", stage.versioned_name, decision_fp[:12])
        return StageResult(stage.name, stats, "decisions"), pl.read_parquet(folder.decisions)

    started = time.perf_counter()
    scores_folder = folder.scores
    reused = "scores" if scores_folder.is_complete(score_fp) else "nothing"
    before = folder.read_stats() or {}
    resolved = (before.get("resolved") if reused == "scores" and before.get("score_fingerprint") == score_fp
                else None)
    if resolved is None:  # what the scores are made with: recorded when they are made
        resolved = stage.resolved()
    log.debug("%s: %s (score fingerprint %s, options %s, resolved %s)", stage.versioned_name,
              "scores reused, deciding again" if reused == "scores" else "scoring", score_fp[:12],
              stage.score_options(), resolved)
    if reused == "nothing":
        scores_folder.open(score_fp)
        if isinstance(stage, RowStage):
            _score_rows(stage, inputs, scores_folder, progress)  # the executor sets it up where it scores
        elif isinstance(stage, DatasetStage):
            with running(stage, inputs.context):
                _score_dataset(stage, inputs, scores_folder, progress)
        scores_folder.mark_complete()
    # A shard that earlier stages emptied has keys only: concatenate by column name.
    files = scores_folder.files("scores")
    scores = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed") if files else None
    if scores is None or scores.height == 0:
        scores = pl.DataFrame(schema={"source": pl.String, "row": pl.Int64, "id": pl.String})
    decided = split_reasons(stage.decide(stage.with_score_columns(scores)))
    decisions = decided.select(pl.lit(stage.name).alias("stage"), pl.exclude("stage"))
    write_parquet(decisions.to_arrow(), folder.decisions)
    for name, table in stage.reports(decisions, inputs.records(), inputs.context).items():
        write_parquet(table.to_arrow(), folder.report(name))
    reasons = Counter(decisions.get_column("reason").drop_nulls().to_list())
    stats = {
        "stage": stage.versioned_name,
        "options": stage.config.model_dump(mode="json"),
        "resolved": resolved,
        "rows": decisions.height,
        "kept": int(decisions.get_column("keep").sum()),
        "dropped": int((~decisions.get_column("keep")).sum()),
        "reasons": dict(sorted(reasons.items())),
        "seconds": round(time.perf_counter() - started, 3),
        "score_fingerprint": score_fp,
        "decision_fingerprint": decision_fp,
    }
    write_json(folder.stats, stats)
    log.info("%s: %d rows, %d dropped", stage.versioned_name, stats["rows"], stats["dropped"])
    return StageResult(stage.name, stats, reused), decisions


def input_shards(store: RunStore, sources: Sequence[str]) -> list[Shard]:
    """The ingested record shards of ``sources``, named ``<source>-<number>``, in order."""
    run = RunReader(store)
    return [Shard(f"{name}-{path.stem.split('-')[-1]}", path) for name in sources
            for path in run.record_files([name])]


def _score_rows(stage: RowStage[Any], inputs: _Input, folder: ShardedFolder,
                progress: Progress | None) -> None:
    """Score the shards without a marker yet, where the context's executor runs work."""
    shards = inputs.shards()
    done = folder.done()
    todo = [shard for shard in shards if shard.name not in done]
    total, finished = len(shards), len(shards) - len(todo)

    def tick(count: int) -> None:
        if progress is not None:
            progress(Tick(stage.name, None, finished + count, total))

    tick(0)
    if todo:
        executor = inputs.context.executor or LocalExecutor()
        executor.score_shards(stage, todo, inputs.dropped, inputs.context, folder, progress=tick)


def _score_dataset(stage: DatasetStage[Any], inputs: _Input, folder: ShardedFolder,
                   progress: Progress | None) -> None:
    columns = list(dict.fromkeys([*KEYS, *stage.columns]))
    if progress is not None:
        progress(Tick(stage.name, None, 0, 1))
    scores = stage.score(inputs.records().select(columns), inputs.context).sort("source", "row")
    folder.write_shard("all", {"scores": scores.to_arrow()}, {"rows": scores.height})
    if progress is not None:
        progress(Tick(stage.name, None, 1, 1))


Rewrite = Callable[[pa.Table], pa.Table]
"""Records -> the records as a release writes them (the stages' text rewrites)."""


def text_rewrite(stages: Sequence[Stage[Any]]) -> Rewrite | None:
    """The stages' text rewrites, applied in order; None when no stage rewrites text."""
    rewriting = [stage for stage in stages if stage.rewrites_text]
    if not rewriting:
        return None

    def rewrite(records: pa.Table) -> pa.Table:
        for stage in rewriting:
            records = stage.rewrite(records)
        return records

    return rewrite


def run_producer(
    step: Producer[Any],
    store: RunStore,
    records: Callable[[], pa.Table],
    *,
    input_fingerprint: str,
    context: StageContext | None = None,
    progress: Progress | None = None,
) -> StageResult:
    """Run ``step`` over ``records()`` (called only when the step has work to do) and
    write what it makes to ``store`` as the source ``step.source``; its stats."""
    context = StageContext() if context is None else context
    folder = store.source(step.source)
    key = fingerprint(input_fingerprint, step.versioned_name, step.config.model_dump(mode="json"))
    if folder.is_complete(key):
        return StageResult(step.name, (folder.state() or {})["stats"], "records")
    folder.open(key)
    started = time.perf_counter()
    on_rows = None if progress is None else (lambda done, total: progress(Tick(step.name, None, done, total)))
    if progress is not None:
        progress(Tick(step.name, None, 0))  # the total is known once the step has read its input
    with running(step, context):
        produced = step.produce(records(), context, progress=on_rows)
    folder.write_shard("00000", {"records": produced.records, "rejected": produced.rejected},
                       produced.stats)
    folder.mark_complete(stats=produced.stats)
    log.info("%s: %d records in %.1f s", step.versioned_name, produced.records.num_rows,
             time.perf_counter() - started)
    return StageResult(step.name, produced.stats, "nothing")
