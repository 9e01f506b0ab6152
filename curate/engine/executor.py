"""Where a step's work runs: the executor interface, and the in-process executor.

The engine (``curate.engine.runner``) decides what to compute, resumes and records; an
executor does the computing. Three kinds of work cover every stage:

- ``score_shards``: a row stage's ``score`` over each input shard, each result written
  as a score shard with its completion marker (so an interrupted run resumes shard by
  shard whichever executor wrote the shards);
- ``map_shards``: a function over the input records, shard by shard, its results in shard
  order (the row-wise part of a dataset stage: MinHash band keys, text lengths);
- ``partitioned``: a function over the groups of a compact table partitioned by key
  (LSH buckets, exact-dedup ids), the results in partition order: each group is whole in
  one partition, so grouping within partitions gives what grouping the whole table gives.

``LocalExecutor`` runs all of it in this process, one shard at a time (memory holds one
shard); ``curate.engine.ray.RayExecutor`` runs it on a Ray cluster. Stages never import
an executor: they call ``StageContext.map_records`` and ``StageContext.partitioned``.
"""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import polars as pl
import pyarrow as pa

from curate.lifecycle import Lifecycle
from curate.records import KEYS

if TYPE_CHECKING:
    from curate.store import ShardedFolder

ShardFunction = Callable[[pa.Table], pa.Table]
"""The kept records of one shard (the columns asked for) -> a table of results."""
GroupFunction = Callable[[pl.DataFrame], pl.DataFrame]
"""The rows of one partition -> a table of results."""

log = logging.getLogger(__name__)


class ScoringStage(Protocol):
    """What an executor needs of a row stage (``curate.engine.stage.RowStage``)."""

    name: ClassVar[str]
    columns: ClassVar[tuple[str, ...]]
    setup_once: ClassVar[bool]

    @property
    def gpus(self) -> float: ...  # noqa: D102 (see RowStage)

    def setup(self, context: Any = None) -> None: ...  # noqa: D102

    def teardown(self) -> None: ...  # noqa: D102

    def score(self, records: pa.Table, context: Any) -> pa.Table: ...  # noqa: D102


@dataclass(frozen=True)
class Shard:
    """One ingested record shard a step reads: ``<source>-<number>`` and its file."""

    name: str
    path: Path


def read_shard(path: Path, dropped: pl.DataFrame, columns: Sequence[str]) -> pa.Table:
    """The records of the shard at ``path`` whose (source, row) is not in ``dropped``:
    ``columns`` of them, in row order."""
    from curate.read.runs import RunReader

    return RunReader.excluding([path], dropped).select(list(columns)).collect().to_arrow()


def score_shard(stage: ScoringStage, shard: Shard, dropped: pl.DataFrame, context: Any,
                folder: ShardedFolder) -> int:
    """Score one shard's kept records with ``stage`` (set up already) and write the score
    shard (keys, then score columns) with its marker; the rows scored."""
    columns = list(dict.fromkeys([*KEYS, *stage.columns]))
    records = read_shard(shard.path, dropped, columns)
    scored = stage.score(records, context) if records.num_rows else pa.table({})
    keys = records.select(list(KEYS))
    for name in scored.column_names:
        keys = keys.append_column(name, scored.column(name))
    folder.write_shard(shard.name, {"scores": keys}, {"rows": records.num_rows})
    return records.num_rows


def hash_partitions(frame: pl.DataFrame, key: str | Sequence[str], partitions: int) -> list[pl.DataFrame]:
    """``frame`` cut into ``partitions`` parts by a hash of ``key``: rows with the same key
    go to the same part (empty parts left out), in part order."""
    keys = [key] if isinstance(key, str) else list(key)
    value = pl.struct(keys) if len(keys) > 1 else pl.col(keys[0])
    part = value.hash(seed=0) % partitions
    tagged = frame.with_columns(_part=part)
    return [p.drop("_part") for p in tagged.partition_by("_part", maintain_order=True, as_dict=False)
            if p.height] if frame.height else []


class Executor(Lifecycle):
    """Runs a step's work: score shards, map over shards, group partitions."""

    name: ClassVar[str]

    @abstractmethod
    def score_shards(self, stage: ScoringStage, shards: Sequence[Shard], dropped: pl.DataFrame,
                     context: Any, folder: ShardedFolder,
                     progress: Callable[[int], None] | None = None) -> None:
        """Score every shard of ``shards`` with ``stage`` and write each score shard to
        ``folder``; ``progress(shards done)`` as they finish. The stage is set up by the
        executor where it scores (``setup(context)``) and torn down after."""

    @abstractmethod
    def map_shards(self, fn: ShardFunction, shards: Sequence[Shard], dropped: pl.DataFrame,
                   columns: Sequence[str], progress: Callable[[int], None] | None = None) -> list[pa.Table]:
        """``fn`` over the kept records of each shard (``columns`` of them); the results in
        shard order; ``progress(records done)`` as shards finish."""

    @abstractmethod
    def partitioned(self, frame: pl.DataFrame, key: str | Sequence[str], fn: GroupFunction) -> pl.DataFrame:
        """``fn`` over the parts of ``frame`` partitioned by ``key`` (a group is whole in one
        part), the results concatenated in part order (sort them if order matters)."""


class LocalExecutor(Executor):
    """Everything in this process, one shard (or the whole compact table) at a time."""

    name = "local"

    def score_shards(self, stage: ScoringStage, shards: Sequence[Shard], dropped: pl.DataFrame,
                     context: Any, folder: ShardedFolder,
                     progress: Callable[[int], None] | None = None) -> None:
        """Set ``stage`` up here, score the shards one after the other, tear it down (also
        when the scoring failed)."""
        stage.setup(context)
        try:
            for done, shard in enumerate(shards, start=1):
                started = time.perf_counter()
                score_shard(stage, shard, dropped, context, folder)
                log.debug("%s: scored shard %s in %.2f s", stage.name, shard.name,
                          time.perf_counter() - started)
                if progress is not None:
                    progress(done)
        finally:
            stage.teardown()

    def map_shards(self, fn: ShardFunction, shards: Sequence[Shard], dropped: pl.DataFrame,
                   columns: Sequence[str], progress: Callable[[int], None] | None = None) -> list[pa.Table]:
        """``fn`` over one shard after the other."""
        results, done = [], 0
        for shard in shards:
            records = read_shard(shard.path, dropped, columns)
            results.append(fn(records))
            done += records.num_rows
            if progress is not None:
                progress(done)
        return results

    def partitioned(self, frame: pl.DataFrame, key: str | Sequence[str], fn: GroupFunction) -> pl.DataFrame:
        """``fn`` over the whole table: one partition."""
        return fn(frame)
