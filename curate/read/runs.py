"""A run folder read back: its records, quarantine, decisions, scores and reports.

``RunReader`` answers every query over a run store with a stable schema, whatever its
stages (the engine reads a stage's input through it, the mix its candidates, a user's
notebook the decisions):

- ``decisions()``: a Polars LazyFrame of every stage's decisions, one row per record a
  stage saw, with columns ``stage, source, row, id, keep, reason, reason_ref``
  (``reason`` the code, ``contaminated``; ``reason_ref`` its parameter, a benchmark or a
  record id); ``removed()`` and ``kept()`` follow from them;
- ``scores(stage)``: one stage's decisions with its score columns;
- ``records()``: the ingested records (the synthetic ones included); ``quarantine()``;
- ``duckdb()``: a DuckDB connection with the views ``decisions``, ``records``,
  ``benchmark_records``, ``scores_<stage>`` per stage and ``contamination`` when a
  decontamination stage ran.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pyarrow.parquet as pq

from curate.errors import ConfigError
from curate.ingest.mapping import QUARANTINE_SCHEMA
from curate.records import KEYS, POSITION, empty_records
from curate.store import RunStore

if TYPE_CHECKING:
    import duckdb

DECISIONS_SCHEMA = {"stage": pl.String, "source": pl.String, "row": pl.Int64, "id": pl.String,
                    "keep": pl.Boolean, "reason": pl.String, "reason_ref": pl.String}
"""The columns every stage's decisions share (score columns differ by stage): the stage
name, the record keys, ``keep``, the reason code and its parameter (benchmark, record id)."""


def decisions_are_current(path: Path) -> bool:
    """Whether the decisions file at ``path`` has every column of ``DECISIONS_SCHEMA``
    (decisions written before ``stage`` and ``reason_ref`` existed do not)."""
    return set(DECISIONS_SCHEMA) <= set(pq.read_schema(path).names)


ITEM_REF = pl.Struct({"benchmark": pl.String, "row": pl.Int64})
"""A benchmark item named by a stage (``contam_item``, ``<tier>_item``, written
``<benchmark>:<row>``) as a structured value: the benchmark and the item's 0-based row."""


def item_ref(column: pl.Expr) -> pl.Expr:
    """``column`` (``<benchmark>:<row>`` strings) as ``ITEM_REF`` structs; null stays null."""
    parts = column.str.extract_groups(r"^(.*):(\d+)$")
    value = pl.struct(benchmark=parts.struct.field("1"), row=parts.struct.field("2").cast(pl.Int64))
    return pl.when(parts.struct.field("2").is_not_null()).then(value).cast(ITEM_REF).name.keep()


@dataclass
class RunReader:
    """Queries over one run folder (``runs/<recipe>/<run-id>``)."""

    store: RunStore

    # -- records ---------------------------------------------------------------------------

    def record_files(self, sources: Sequence[str]) -> list[Path]:
        """The ingested record shards of ``sources``, in the given order then shard order."""
        return [path for name in sources for path in self.store.source(name).files("records")]

    def records(self, sources: Sequence[str] | None = None) -> pl.LazyFrame:
        """The ingested records of ``sources`` (default: every source of the run, the
        synthetic ones included)."""
        names = self.store.ingested_sources() if sources is None else sources
        files = self.record_files(names)
        return pl.scan_parquet(files) if files else pl.DataFrame(empty_records()).lazy()

    def shards(self, sources: Sequence[str], columns: Sequence[str] | None = None
               ) -> Iterator[tuple[str, int, pl.DataFrame]]:
        """Each ingested record shard of ``sources`` read whole, one at a time (so memory
        holds one shard): (source, shard number, records)."""
        for name in sources:
            for number, path in enumerate(self.store.source(name).files("records")):
                yield name, number, pl.read_parquet(path, columns=None if columns is None else list(columns))

    def quarantined(self, sources: Sequence[str]) -> pl.LazyFrame:
        """The rows of ``sources`` that could not become records: ``source``, ``row``,
        ``reason``, ``detail``, the raw text and its file."""
        files = [p for name in sources for p in self.store.source(name).files("quarantine")]
        return pl.scan_parquet(files) if files else pl.DataFrame(QUARANTINE_SCHEMA.empty_table()).lazy()

    def benchmark_files(self, name: str) -> list[Path]:
        """The ingested record shards of the benchmark ``name``."""
        return self.store.benchmark(name).files("records")

    # -- decisions -------------------------------------------------------------------------

    def stage_names(self) -> list[str]:
        """The stages that wrote decisions in this run, in the order they ran."""
        return [n for n in self.store.stage_names() if self.store.stage(n).decisions.exists()]

    def decisions(self, stages: Sequence[str] | None = None) -> pl.LazyFrame:
        """Every decision of ``stages`` (default: every stage that ran), in that order, in
        ``DECISIONS_SCHEMA``; a ConfigError naming the file when a stage's decisions
        predate that schema."""
        frames = []
        for name in self.stage_names() if stages is None else stages:
            path = self.store.stage(name).decisions
            if not decisions_are_current(path):
                raise ConfigError(
                    f"{path} was written by an older curate (no `stage`/`reason_ref` columns); "
                    "build the recipe again (`curate build-mix RECIPE --runs ...`): it re-decides "
                    "from the stored scores without scoring again")
            frames.append(pl.scan_parquet(path).select(list(DECISIONS_SCHEMA)))
        return pl.concat(frames) if frames else pl.LazyFrame(schema=DECISIONS_SCHEMA)

    def removed(self, stages: Sequence[str] | None = None) -> pl.DataFrame:
        """The records ``stages`` removed: keys, ``stage``, ``reason`` and ``reason_ref``."""
        return (self.decisions(stages).filter(~pl.col("keep"))
                .select(*KEYS, "stage", "reason", "reason_ref").collect())

    def kept(self, sources: Sequence[str], stages: Sequence[str] | None = None) -> pl.LazyFrame:
        """The ingested records of ``sources`` that every stage of ``stages`` (default: every
        stage that ran) kept, in shard order."""
        return self.excluding(self.record_files(sources), self.removed(stages))

    @staticmethod
    def excluding(files: Sequence[Path], dropped: pl.DataFrame) -> pl.LazyFrame:
        """The records in the shards ``files`` whose (source, row) is not in ``dropped``,
        in shard order."""
        if not files:
            return pl.DataFrame(empty_records()).lazy()
        frame = pl.scan_parquet(list(files))
        if dropped.height == 0:
            return frame
        return frame.join(dropped.select(POSITION).lazy(), on=list(POSITION), how="anti",
                          maintain_order="left")

    def scores(self, stage: str) -> pl.LazyFrame:
        """The decisions of ``stage`` with its score columns."""
        path = self.store.stage(stage).decisions
        if not path.exists():
            raise ConfigError(f"stage `{stage}` has no decisions in {self.store.root} "
                              f"(stages: {', '.join(self.stage_names()) or 'none'})")
        return pl.scan_parquet(path)

    def contamination_stage(self, stages: Sequence[str] | None = None) -> str | None:
        """The first of ``stages`` (default: every stage that ran) that checked records
        against benchmarks (it wrote a contamination report); None when none did."""
        for stage in self.stage_names() if stages is None else stages:
            if self.store.stage(stage).report("contamination").exists():
                return stage
        return None

    def contaminated(self, stages: Sequence[str] | None = None) -> pl.DataFrame:
        """Every record the decontamination stage removed for matching a benchmark item:
        keys, ``benchmark``, ``item_row`` (the item's 0-based row in its benchmark), ``tier``
        and ``field``, ordered by source, row."""
        schema = {"source": pl.String, "row": pl.Int64, "id": pl.String, "benchmark": pl.String,
                  "item_row": pl.Int64, "tier": pl.String, "field": pl.String}
        stage = self.contamination_stage(stages)
        if stage is None:
            return pl.DataFrame(schema=schema)
        item = item_ref(pl.col("contam_item"))
        return (self.scores(stage).filter(pl.col("reason") == "contaminated")
                .select(*KEYS, benchmark=item.struct.field("benchmark"), item_row=item.struct.field("row"),
                        tier="contam_tier", field="contam_field")
                .sort(*POSITION).collect().cast(schema))  # type: ignore[arg-type]

    def vouched_ids(self, stages: Sequence[str] | None = None) -> pl.Series | None:
        """The ids of the records decontamination checked and found clean (the stage saw them
        and did not mark them ``contaminated``): a record with one of these ids holds no
        benchmark item. None when no stage checked records against benchmarks."""
        stage = self.contamination_stage(stages)
        if stage is None:
            return None
        return (self.decisions([stage]).filter(pl.col("reason").fill_null("") != "contaminated")
                .select("id").unique().collect().get_column("id"))

    def report(self, name: str, stages: Sequence[str] | None = None) -> pl.DataFrame | None:
        """The report table ``name`` (``contamination``) of the first of ``stages`` (default:
        every stage that ran) that wrote one; None when none did."""
        for stage in self.stage_names() if stages is None else stages:
            path = self.store.stage(stage).report(name)
            if path.exists():
                return pl.read_parquet(path)
        return None

    # -- SQL -------------------------------------------------------------------------------

    def duckdb(self, connection: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
        """``connection`` (a new in-memory one by default) with views over the run:
        ``decisions``, ``records``, ``benchmark_records``, ``scores_<stage>``,
        ``contamination``."""
        import duckdb

        con = duckdb.connect() if connection is None else connection
        self.decisions()  # the schema check: old decisions fail here, naming the file
        stages = self.stage_names()
        columns = ", ".join(f'"{c}"' for c in DECISIONS_SCHEMA)

        def files(paths: Iterable[Path]) -> str:
            return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"

        if stages:
            decisions = files(self.store.stage(n).decisions for n in stages)
            con.execute(f"CREATE OR REPLACE VIEW decisions AS SELECT {columns} "
                        f"FROM read_parquet({decisions}, union_by_name = true)")
        else:
            con.execute("CREATE OR REPLACE VIEW decisions AS SELECT * FROM (VALUES (NULL::VARCHAR, "
                        "NULL::VARCHAR, NULL::BIGINT, NULL::VARCHAR, NULL::BOOLEAN, NULL::VARCHAR, "
                        f"NULL::VARCHAR)) t({columns}) WHERE false")
        for name in stages:
            con.execute(f'CREATE OR REPLACE VIEW "scores_{name}" AS SELECT * FROM '
                        f"read_parquet({files([self.store.stage(name).decisions])})")
        sources = self.record_files(self.store.ingested_sources())
        if sources:
            con.execute(f"CREATE OR REPLACE VIEW records AS SELECT * FROM read_parquet({files(sources)})")
        info = self.store.run_info() or {}
        marks = [p for b in info.get("benchmarks", {}) for p in self.benchmark_files(b)]
        if marks:
            con.execute("CREATE OR REPLACE VIEW benchmark_records AS SELECT * FROM "
                        f"read_parquet({files(marks)})")
        for name in stages:
            report = self.store.stage(name).report("contamination")
            if report.exists():
                con.execute("CREATE OR REPLACE VIEW contamination AS SELECT * FROM "
                            f"read_parquet({files([report])})")
        return con
