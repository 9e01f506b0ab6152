"""The stage contract: typed options, score a batch (or the dataset), then decide.

A stage never deletes anything. ``score`` adds score columns; ``decide`` turns scores
into ``keep`` and ``reason`` with vectorised Polars expressions. Scores are persisted,
so changing an option listed in ``decision_fields`` re-runs ``decide`` only.

Reasons are short snake_case codes, optionally with a parameter after a colon
(``contaminated:medqa``, ``duplicate_of:<id>``). The engine splits what ``decide`` returns
(``curate.read.runs.split_reasons``) before it writes the decisions: ``reason`` keeps the
code alone (``contaminated``), ``reason_ref`` the parameter (``medqa``, a record id), and
``stage`` names the stage, so every stage's decisions query alike and stats count by code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar, cast, get_args

from curate.config import Config, validate_model
from curate.errors import ConfigError
from curate.lifecycle import Lifecycle
from curate.registry import Registry

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

    from curate.engine.executor import Executor, GroupFunction, Shard, ShardFunction

KEYS = ("source", "row", "id")


PartProgress = Callable[[str, int, int], None]
"""(part of a stage's work, units done, units in all)."""


@dataclass(frozen=True)
class StageContext:
    """What a stage may read besides its input records."""

    benchmarks: Mapping[str, list[Path]] = field(default_factory=dict)
    """Benchmark name -> its ingested record shards (for decontamination)."""
    decisions: Mapping[str, Path] = field(default_factory=dict)
    """Stage name -> the decisions (keys, scores, keep, reason) of a stage run earlier."""
    cache: Path | None = None
    """A folder for caches shared across runs (synthesis completions); None: a step
    uses its own default."""
    embedding_cache: Path | None = None
    """The folder of the sentence-embedding cache shared across runs (``runs/_cache/embeddings``);
    None: a stage uses ``curate.curation.embed.default_cache_dir()``."""
    progress: PartProgress | None = field(default=None, compare=False)
    """Where a stage reports progress inside its work (embedding batches, LSH bands,
    decontamination tiers); the engine sets it per stage when someone is watching. Use
    ``report``."""
    executor: Executor | None = field(default=None, compare=False)
    """Where the stage's row-wise work runs (``map_records``, ``partitioned``); None: here."""
    shards: Sequence[Shard] = ()
    """The record shards of the stage's input (the engine sets them per stage)."""
    dropped: pl.DataFrame | None = field(default=None, compare=False)
    """The (source, row) of the records earlier stages removed: not the stage's input."""

    def map_records(self, fn: ShardFunction, columns: Sequence[str], *, part: str | None = None,
                    total: int = 0) -> list[pa.Table]:
        """``fn`` over the stage's input records (``columns`` of them), shard by shard, where
        the executor runs work; its results in shard order. ``part`` names the work for
        progress, in records (of ``total``; 0: not known)."""
        import polars as pl

        from curate.engine.executor import LocalExecutor

        executor = self.executor or LocalExecutor()
        dropped = self.dropped if self.dropped is not None else pl.DataFrame(
            schema={"source": pl.String, "row": pl.Int64})
        reporter = self.reporter(part) if part is not None else None
        return executor.map_shards(
            fn, self.shards, dropped, columns,
            progress=None if reporter is None else (lambda done: reporter(done, total)))

    def partitioned(self, frame: pl.DataFrame, key: str | Sequence[str], fn: GroupFunction) -> pl.DataFrame:
        """``fn`` over the parts of ``frame`` partitioned by ``key`` (a group is whole in one
        part) where the executor runs work; the results concatenated (sort them if order
        matters)."""
        from curate.engine.executor import LocalExecutor

        return (self.executor or LocalExecutor()).partitioned(frame, key, fn)

    def portable(self) -> StageContext:
        """This context as a worker elsewhere gets it: no progress callback, no executor."""
        return replace(self, progress=None, executor=None)

    def report(self, part: str, done: int, total: int) -> None:
        """Say that ``done`` of ``total`` units of ``part`` (a piece of the stage's work, such
        as `embedding` or `LSH bands`) are finished; nothing when no one is watching."""
        if self.progress is not None:
            self.progress(part, done, total)

    def reporter(self, part: str) -> Callable[[int, int], None] | None:
        """``report`` for ``part``, as a (done, total) callback; None when no one is watching."""
        if self.progress is None:
            return None
        progress = self.progress
        return lambda done, total: progress(part, done, total)

    def stage_scores(self, name: str) -> pl.LazyFrame:
        """The decisions, with score columns, of the earlier stage ``name``."""
        import polars as pl

        if name not in self.decisions:
            earlier = ", ".join(self.decisions) or "none"
            raise ConfigError(f"stage `{name}` has not run before this one (earlier stages: "
                              f"{earlier}); put it before in the recipe's `stages`")
        return pl.scan_parquet(self.decisions[name])

    def benchmark_records(self, name: str) -> pl.LazyFrame:
        """The ingested records of the benchmark ``name``."""
        import polars as pl

        if name not in self.benchmarks:
            known = ", ".join(self.benchmarks) or "none"
            raise ConfigError(f"benchmark `{name}` is not part of this run (known: {known}); "
                              "add it to the recipe's `benchmarks`")
        return pl.scan_parquet(self.benchmarks[name])


C = TypeVar("C", bound=Config)


class Step(Lifecycle, ABC, Generic[C]):
    """What every pipeline step has: a versioned name, typed options, a lifecycle.

    A subclass names its options class as the type argument (``RowStage[CleanConfig]``);
    ``config_class`` is taken from it. The engine calls ``setup(context)`` once before the
    step does its work (load a model, build an index) and ``teardown`` once after it, even
    when the work failed (``curate.lifecycle.running``), so a model lives for one step run
    and its memory (GPU memory included) is freed before the next step starts. A step is
    built when a recipe is read, so it loads nothing before ``setup``; a step whose results
    are reused from the run store is never set up.
    """

    name: ClassVar[str]
    version: ClassVar[int]
    config_class: ClassVar[type[Config]]
    kind: ClassVar[str] = "step"
    """What errors call it: `stage`, `producer`."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            for argument in get_args(base):
                if isinstance(argument, type) and issubclass(argument, Config):
                    cls.config_class = argument

    def __init__(self, config: C | None = None):
        if config is None:
            config = cast(C, self.config_class())
        if not isinstance(config, self.config_class):
            raise TypeError(f"{self.name} takes a {self.config_class.__name__}")
        self.config: C = config

    @classmethod
    def from_options(cls, options: dict[str, Any], *, where: str) -> Self:
        """Build from recipe options; unknown or bad options fail naming ``where``."""
        return cls(cast(C, validate_model(cls.config_class, options,
                                          where=f"{where}: {cls.kind} `{cls.name}`")))

    @property
    def versioned_name(self) -> str:
        """``<name>_v<version>``: what stats, manifests and lineage name."""
        return f"{self.name}_v{self.version}"

    def setup(self, context: StageContext | None = None) -> None:
        """Load what the work needs (models, indexes); called once before it, with the
        context the work runs in (None outside the engine)."""


class Stage(Step[C]):
    """One curation step that tags records. Subclass ``RowStage`` or ``DatasetStage``."""

    kind = "stage"
    decision_fields: ClassVar[frozenset[str]] = frozenset()
    columns: ClassVar[tuple[str, ...]] = ()
    """Record columns ``score`` reads besides the keys (source, row, id)."""
    score_columns: ClassVar[Mapping[str, Any]] = {}
    """The score columns ``score`` adds and their Polars types. The engine adds any that
    are missing, as nulls, before ``decide``: records that were never scored (a shard
    emptied by earlier stages, an empty run) carry the keys alone."""
    rank_columns: ClassVar[frozenset[str]] = frozenset()
    """Numeric score columns that are positions, not scores (``dup_rank``): the release
    report draws no histogram of them."""
    rewrites_text: ClassVar[bool] = False
    """True when ``rewrite`` changes the turns a release writes (``clean``'s repair)."""
    setup_once: ClassVar[bool] = False
    """True when ``setup`` builds shared, read-only state (decontamination's benchmark index)
    that an executor builds once and hands to its workers; False: each worker sets the stage
    up itself (a model stage loads its model)."""

    @property
    def gpus(self) -> float:
        """GPUs one worker of this stage needs (an executor asks a cluster for them)."""
        return 0.0

    def score_options(self) -> dict[str, Any]:
        """The options that change the scores (a change re-scores)."""
        options = self.config.model_dump(mode="json")
        return {k: v for k, v in options.items() if k not in self.decision_fields}

    def decision_options(self) -> dict[str, Any]:
        """The options that change only the decision (a change re-decides)."""
        options = self.config.model_dump(mode="json")
        return {k: v for k, v in options.items() if k in self.decision_fields}

    @abstractmethod
    def decide(self, scores: pl.DataFrame) -> pl.DataFrame:
        """Return ``scores`` with a boolean ``keep`` and a string ``reason`` (null when kept).
        ``scores`` carry every column of ``score_columns`` (the engine pads missing ones)."""

    def resolved(self) -> dict[str, Any]:
        """What this stage's options resolve to on this machine where they leave a choice
        (``precision: auto`` -> ``bfloat16``), and the identity of the weights a model option
        names (a hash of their files): recorded with the stage's stats when it scores, so a
        release says what decided. Empty by default."""
        return {}

    def thresholds(self) -> dict[str, float]:
        """The score columns ``decide`` compares with a fixed value under the current
        options, and that value (the release report marks it on the column's histogram).
        A cut that depends on the data (a quantile) is not listed: the histogram's kept
        and removed bars show it."""
        return {}

    def with_score_columns(self, scores: pl.DataFrame) -> pl.DataFrame:
        """``scores`` with every column of ``score_columns``, null where it was missing."""
        import polars as pl

        return scores.with_columns(pl.lit(None, dtype).alias(name)
                                   for name, dtype in self.score_columns.items()
                                   if name not in scores.columns)

    def rewrite(self, records: pa.Table) -> pa.Table:
        """``records`` as the release writes them; unchanged unless ``rewrites_text``."""
        return records

    def reports(
        self, decisions: pl.DataFrame, records: pl.LazyFrame, context: StageContext
    ) -> dict[str, pl.DataFrame]:
        """Extra tables about the decisions (name -> table), written beside them.
        ``records`` are the stage's input records."""
        return {}


class RowStage(Stage[C]):
    """A stage whose score of a record depends on that record alone: runs shard by shard."""

    @abstractmethod
    def score(self, records: pa.Table, context: StageContext) -> pa.Table:
        """Score columns for ``records``: one row per record, in the same order."""


class DatasetStage(Stage[C]):
    """A stage that needs every record at once (grouping, clustering, selection)."""

    @abstractmethod
    def score(self, records: pl.LazyFrame, context: StageContext) -> pl.DataFrame:
        """The keys (source, row, id) of every input record, with its score columns."""


S = TypeVar("S", bound=Step[Any])


def build_steps(registry: Registry[type[S]], steps: Mapping[str, Mapping[str, Any]], *,
                where: str) -> list[S]:
    """The steps a recipe names (``stages`` or ``synth``: name -> options), in order, built
    from ``registry`` with their options validated; errors name ``where`` and the step.

    A step whose options say ``enabled: false`` is checked like the others but left out
    (a recipe shows it, with the options a user would set, without running it).
    """
    built = []
    for name, options in steps.items():
        try:
            cls = registry.load(name)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        given = dict(options)
        enabled = given.pop("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{where}: {registry.kind} `{name}`: `enabled` must be true or false")
        step = cls.from_options(given, where=where)
        if enabled:
            built.append(step)
    return built


def in_batches(records: pl.LazyFrame, *columns: str | pl.Expr, rows: int = 20_000) -> Iterator[pl.DataFrame]:
    """``columns`` of ``records`` in batches of at most ``rows`` row numbers per source, in
    (source, row) order. Each batch is its own query, filtered by source and a row range
    that Polars pushes down to the parquet scan, so memory holds one batch: a streaming
    ``collect_batches`` runs ahead of a slow consumer and buffers everything."""
    import polars as pl

    spans = (records.group_by("source").agg(lo=pl.col("row").min(), hi=pl.col("row").max())
             .sort("source").collect())
    for source, lo, hi in spans.iter_rows():
        for start in range(lo, hi + 1, rows):
            batch = records.filter((pl.col("source") == source)
                                   & pl.col("row").is_between(start, start + rows - 1))
            yield batch.sort("row").select(*columns).collect()


def select_rows(records: pl.LazyFrame, keys: pl.DataFrame, *columns: str | pl.Expr) -> pl.DataFrame:
    """``columns`` of the records whose (source, row) is in ``keys``, in (source, row)
    order, read batch by batch (see ``in_batches``)."""
    import polars as pl

    found = in_batches(records.join(keys.lazy(), on=["source", "row"], how="semi"), *columns)
    empty = records.select(*columns).clear().collect()
    return pl.concat([empty, *found])


@dataclass(frozen=True)
class Produced:
    """What a producer step made: new records, the inputs that gave none, and stats."""

    records: pa.Table
    """New records, in the record schema."""
    rejected: pa.Table
    """The input records that gave no new record: their keys and reason."""
    stats: dict[str, Any]


ProduceProgress = Callable[[int, int], None]
"""(input records settled, input records to settle)."""


class Producer(Step[C]):
    """A step that makes new records from the records every stage kept (synthesis).

    The engine gives it those records, as a release would write them (text rewrites of
    the stages applied), writes what it returns to the run as the source ``source``, and
    fingerprints, resumes and times it like a stage: a finished producer with the same
    input and options is never run again."""

    kind = "producer"
    source: ClassVar[str]
    """The run source its records are written to (their ``source`` column)."""

    @abstractmethod
    def produce(self, records: pa.Table, context: StageContext, *,
                progress: ProduceProgress | None = None) -> Produced:
        """New records from ``records`` (the record schema)."""
