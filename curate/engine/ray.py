"""The Ray executor: the same work as ``LocalExecutor`` on a Ray cluster (``pip install 'curate[ray]'``).

- A row stage's shards are scored by Ray Data ``map_batches`` over the list of shards,
  one shard per batch, by an actor pool (``ActorPoolStrategy``): each actor is set up once
  (a model stage loads its model in ``setup``) and asks for GPUs when the stage does
  (``Stage.gpus``). A stage whose setup builds shared, read-only state
  (``Stage.setup_once``: decontamination's benchmark index) is set up here instead, once,
  and goes to the actors through the object store. Each actor writes the score shards it
  makes, with their markers, into the run folder, so the run folder must be on a
  filesystem every node sees (as on a Slurm cluster), and an interrupted build resumes
  shard by shard as a local one does.
- ``map_shards`` (a dataset stage's row-wise work: MinHash band keys) runs the function
  over the shards as Ray Data tasks and gives the results back in shard order.
- ``partitioned`` (LSH buckets, exact-dedup ids) cuts the compact table into hash
  partitions by key here and groups each partition in its own task, with Polars, not with
  Ray Data's own group-by (measured much slower on small data).
- Global steps (connected components, diversity selection, allocation) stay on the driver,
  over compact columns.

``ray.init`` joins ``ray_address`` (else ``$RAY_ADDRESS``, else, as Ray does, a cluster
``ray start`` runs on this machine under the same temporary folder), or starts a local
cluster of this machine's CPUs (``local`` always does); workers ask for a fraction of a
CPU each (``cpus_per_worker``): a pool of whole-CPU actors on a small node can leave no CPU
for Ray Data's own tasks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import pyarrow as pa

from curate.config import EngineConfig
from curate.engine.executor import (
    Executor,
    GroupFunction,
    ScoringStage,
    Shard,
    ShardFunction,
    hash_partitions,
    read_shard,
    score_shard,
)
from curate.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from curate.engine.stage import StageContext
    from curate.store import ShardedFolder


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray", "ray") from None
    return ray


class RayExecutor(Executor):
    """Scores shards, maps and groups on a Ray cluster (see the module docstring)."""

    name = "ray"

    def __init__(self, config: EngineConfig | None = None):
        self.config = config or EngineConfig(engine="ray")
        self._started = False

    def setup(self) -> None:
        """Join the cluster (or start a local one) unless this process is connected already."""
        ray = _ray()
        if not ray.is_initialized():
            address = self.config.ray_address or os.environ.get("RAY_ADDRESS") or None
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.WARNING)
            except OSError as error:
                if "AF_UNIX path length" not in str(error):
                    raise
                # a local cluster keeps its sockets under $RAY_TMPDIR, else $TMPDIR (Linux)
                raise ConfigError(
                    f"Ray could not start a local cluster: {error}. Its socket paths must fit in "
                    "107 bytes; set RAY_TMPDIR to a short folder (e.g. RAY_TMPDIR=/tmp) and "
                    "build again.") from error
            self._started = True
        from ray.data import DataContext

        data = DataContext.get_current()
        data.execution_options.preserve_order = True  # results in shard order
        data.enable_progress_bars = False  # curate draws its own
        data.print_on_execution_start = False

    def teardown(self) -> None:
        """Leave the cluster this executor joined (a local one stops)."""
        if self._started:
            _ray().shutdown()
            self._started = False

    @property
    def workers(self) -> int:
        """Shards worked on at once: the config's, else the cluster's CPUs."""
        if self.config.workers is not None:
            return self.config.workers
        return max(1, int(_ray().cluster_resources().get("CPU", 1)))

    def score_shards(self, stage: ScoringStage, shards: Sequence[Shard], dropped: pl.DataFrame,
                     context: StageContext, folder: ShardedFolder,
                     progress: Callable[[int], None] | None = None) -> None:
        """Score the shards with an actor pool, one shard per batch (see the module docstring)."""
        ray = _ray()
        from ray.data import ActorPoolStrategy

        portable = context.portable()
        if stage.setup_once:
            stage.setup(portable)
        try:
            items = [{"name": s.name, "path": str(s.path)} for s in shards]
            scored = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
                ShardScorer, batch_size=1,
                fn_constructor_kwargs={"stage": ray.put(stage), "dropped": ray.put(dropped),
                                       "context": portable, "folder": str(folder.path),
                                       "set_up": not stage.setup_once},
                compute=ActorPoolStrategy(size=min(self.workers, len(items))),
                num_cpus=self.config.cpus_per_worker, num_gpus=stage.gpus or None)
            for done, _ in enumerate(scored.iter_rows(), start=1):
                if progress is not None:
                    progress(done)
        finally:
            if stage.setup_once:
                stage.teardown()

    def map_shards(self, fn: ShardFunction, shards: Sequence[Shard], dropped: pl.DataFrame,
                   columns: Sequence[str], progress: Callable[[int], None] | None = None) -> list[pa.Table]:
        """``fn`` over each shard's kept records in Ray Data tasks; results in shard order."""
        ray = _ray()
        if not shards:
            return []
        items = [{"shard": i, "path": str(s.path)} for i, s in enumerate(shards)]
        mapped = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            _map_shard, batch_size=1, batch_format="pyarrow", num_cpus=self.config.cpus_per_worker,
            fn_kwargs={"fn": fn, "dropped": ray.put(dropped), "columns": list(columns)})
        tables = [ray.get(ref) for ref in mapped.to_arrow_refs()]
        found: dict[int, list[pa.Table]] = {}
        for table in tables:
            for shard in np.unique(table.column("_shard").to_numpy()) if table.num_rows else []:
                mine = table.filter(pa.compute.equal(table["_shard"], shard))
                found.setdefault(int(shard), []).append(mine)
        results = [_without_shard(found.get(i), fn, shards[i], columns) for i in range(len(shards))]
        if progress is not None:
            progress(sum(t.num_rows for t in results))
        return results

    def partitioned(self, frame: pl.DataFrame, key: str | Sequence[str], fn: GroupFunction) -> pl.DataFrame:
        """``fn`` over hash partitions of ``frame`` by ``key``, one Ray task each."""
        ray = _ray()
        parts = hash_partitions(frame, key, self.config.partitions)
        if not parts:
            return fn(frame)
        task = ray.remote(num_cpus=self.config.cpus_per_worker)(_group)
        results = ray.get([task.remote(fn, part.to_arrow()) for part in parts])
        return pl.concat([pl.DataFrame(r) for r in results], how="vertical_relaxed")


class ShardScorer:
    """An actor of the pool: the stage, set up once, scoring one shard per batch."""

    def __init__(self, stage: ScoringStage, dropped: pl.DataFrame, context: StageContext, folder: str,
                 set_up: bool):
        from curate.store import ShardedFolder

        stage, dropped = resolved(stage), resolved(dropped)
        self.stage = stage
        self.dropped = dropped
        self.context = context
        self.folder = ShardedFolder(Path(folder))
        if set_up:
            stage.setup(context)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Score the batch's shards (one) and write their score shards; the rows of each."""
        rows = [score_shard(self.stage, Shard(str(name), Path(str(path))), self.dropped, self.context,
                            self.folder) for name, path in zip(batch["name"], batch["path"], strict=True)]
        return {"name": batch["name"], "rows": np.asarray(rows, np.int64)}


def _map_shard(batch: pa.Table, *, fn: ShardFunction, dropped: pl.DataFrame, columns: list[str]) -> pa.Table:
    """``fn`` over the one shard of ``batch``, its result tagged with the shard's number."""
    (shard,) = batch.column("shard").to_pylist()
    (path,) = batch.column("path").to_pylist()
    result = fn(read_shard(Path(path), resolved(dropped), columns))
    return result.append_column("_shard", pa.array(np.full(result.num_rows, shard, np.int64)))


def resolved(value: Any) -> Any:
    """``value``, fetched from the object store when it is a reference to it (Ray Data hands
    a map function's arguments over as they were given)."""
    ray = _ray()
    return ray.get(value) if isinstance(value, ray.ObjectRef) else value


def _without_shard(parts: list[pa.Table] | None, fn: ShardFunction, shard: Shard,
                   columns: Sequence[str]) -> pa.Table:
    """A shard's result without its tag; an empty result keeps ``fn``'s columns (from a call
    on no records: Ray Data drops empty blocks)."""
    if not parts:
        import pyarrow.parquet as pq

        return fn(pq.read_schema(shard.path).empty_table().select(list(columns)))
    return pa.concat_tables(parts).drop(["_shard"])


def _group(fn: GroupFunction, part: pa.Table) -> pa.Table:
    """``fn`` over one partition, as Arrow (what crosses the object store)."""
    return fn(pl.DataFrame(part)).to_arrow()
