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
- ``fate(release)``: every ingested row once, with the stage that removed it first
  (``ingest`` for a quarantined row, ``mix`` for one the release did not select), the
  reason, what the reason points at (the kept twin's id, the benchmark item) and whether
  the row is in the release;
- ``contamination_pairs()``: each training row beside the benchmark item it matched;
- ``duckdb()``: a DuckDB connection with the views ``decisions``, ``records``,
  ``benchmark_records``, ``scores_<stage>`` per stage, ``fate``, and ``contamination`` and
  ``contamination_pairs`` when a decontamination stage ran.

A benchmark item a stage names (``contam_item``, ``<tier>_item``) is stored as the string
``<benchmark>:<row>`` and read back, here and in DuckDB, as a struct ``{benchmark, row}``.
"""

from __future__ import annotations

import os
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


def split_reasons(decisions: pl.DataFrame) -> pl.DataFrame:
    """``decisions`` with ``reason`` cut at its first colon: the code stays in ``reason``,
    the parameter (a benchmark, a record id, a field; null when none) goes to a new
    ``reason_ref`` column after it. Decisions already split are returned as they are."""
    if "reason_ref" in decisions.columns:
        return decisions
    parts = pl.col("reason").cast(pl.String).str.splitn(":", 2)
    return decisions.with_columns(reason=parts.struct.field("field_0"),
                                  reason_ref=parts.struct.field("field_1"))


ITEM_REF = pl.Struct({"benchmark": pl.String, "row": pl.Int64})
"""A benchmark item named by a stage (``contam_item``, ``<tier>_item``, written
``<benchmark>:<row>``) as a structured value: the benchmark and the item's 0-based row."""


ITEM_PATTERN = r"^(.*):(\d+)$"
"""``<benchmark>:<row>``: the benchmark is all before the last colon."""


def item_ref(column: pl.Expr) -> pl.Expr:
    """``column`` (``<benchmark>:<row>`` strings) as ``ITEM_REF`` structs; null stays null."""
    parts = column.str.extract_groups(ITEM_PATTERN)
    value = pl.struct(benchmark=parts.struct.field("1"), row=parts.struct.field("2").cast(pl.Int64))
    return pl.when(parts.struct.field("2").is_not_null()).then(value).cast(ITEM_REF).name.keep()


def item_ref_sql(column: str) -> str:
    """The DuckDB twin of ``item_ref``: ``column`` as a ``STRUCT(benchmark, "row")``."""
    pattern = ITEM_PATTERN.replace("'", "''")
    return (f"CASE WHEN regexp_matches(\"{column}\", '{pattern}') THEN struct_pack("
            f"benchmark := regexp_extract(\"{column}\", '{pattern}', 1), "
            f"\"row\" := CAST(regexp_extract(\"{column}\", '{pattern}', 2) AS BIGINT)) END")


def item_columns(schema: pl.Schema | dict[str, pl.DataType]) -> list[str]:
    """The columns of a stage's scores that name a benchmark item (string-typed, as stored)."""
    return [name for name, dtype in schema.items()
            if (name == "contam_item" or name.endswith("_item")) and dtype == pl.String]


def turns_text() -> pl.Expr:
    """A record's turns as ``role: content`` lines, named ``text``."""
    return pl.col("messages").list.eval(
        pl.concat_str(pl.element().struct.field("role"), pl.lit(": "),
                      pl.element().struct.field("content"))).list.join("\n").alias("text")


FATE_SCHEMA = pl.Schema({
    "source": pl.String(), "row": pl.Int64(), "id": pl.String(), "stage": pl.String(), "reason": pl.String(),
    "reason_ref": pl.String(), "twin_id": pl.String(), "item": ITEM_REF, "item_text": pl.String(),
    "in_release": pl.Boolean()})
"""``RunReader.fate``'s columns: the row's keys; the first stage that removed it (``ingest``
for a quarantined row, ``mix`` for a row the release did not select; null for a row in the
release, or kept by every stage when no release is given); the reason code and its
parameter; ``twin_id``, the id of the record a duplicate (or a too-similar record) was
removed in favour of; ``item`` and ``item_text``, the benchmark item a contaminated row
matched and its text (local: a run folder is not published); ``in_release``."""

PAIRS_SCHEMA = pl.Schema({
    "source": pl.String(), "row": pl.Int64(), "id": pl.String(), "item": ITEM_REF, "tier": pl.String(),
    "field": pl.String(), "text": pl.String(), "item_text": pl.String()})
"""``RunReader.contamination_pairs``' columns: the training row, the item it matched, the
tier and field that matched, and both texts."""


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
        # a producer's source (synth_cot) has records and rejected parents, no quarantine
        files = [p for name in sources for p in self.store.source(name).files("quarantine") if p.exists()]
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
        """The decisions of ``stage`` with its score columns; a benchmark item it names
        (``contam_item``, ``<tier>_item``) as an ``ITEM_REF`` struct."""
        path = self.store.stage(stage).decisions
        if not path.exists():
            ran = ", ".join(self.stage_names()) or "none"
            raise ConfigError(f"stage `{stage}` has no decisions in {self.store.root}: "
                              f"{self._why_not_run(stage)} (stages that ran: {ran})")
        frame = pl.scan_parquet(path)
        items = item_columns(frame.collect_schema())
        return frame.with_columns(item_ref(pl.col(c)) for c in items) if items else frame

    def _why_not_run(self, stage: str) -> str:
        """Why ``stage`` has no decisions: switched off, not in the recipe, or not run yet."""
        stages = ((self.store.run_info() or {}).get("recipe") or {}).get("stages") or {}
        if stage not in stages:
            return "the recipe has no such stage"
        if (stages[stage] or {}).get("enabled") is False:
            return ("the recipe switches it off (`enabled: false`); switch it on where its models "
                    "are and build again: its scores are then kept for every record it saw")
        return "it has not run yet (build the recipe)"

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
        item = pl.col("contam_item").struct
        return (self.scores(stage).filter(pl.col("reason") == "contaminated")
                .select(*KEYS, benchmark=item.field("benchmark"), item_row=item.field("row"),
                        tier="contam_tier", field="contam_field")
                .sort(*POSITION).collect().cast(schema))  # type: ignore[arg-type]

    def contamination_pairs(self, stages: Sequence[str] | None = None) -> pl.DataFrame:
        """Each training row that matched a benchmark item, beside it (``PAIRS_SCHEMA``):
        which item, the tier and field that matched, the row's text and the item's. The
        item's text is for local analysis: a release never holds it."""
        matched = self.contaminated(stages)
        if matched.height == 0:
            return pl.DataFrame(schema=PAIRS_SCHEMA)
        texts = (self.records(matched.get_column("source").unique().sort().to_list())
                 .join(matched.lazy().select(POSITION), on=list(POSITION), how="semi")
                 .select(*POSITION, turns_text()).collect())
        return (matched.join(texts, on=list(POSITION), how="left")
                .with_columns(item=pl.struct(benchmark="benchmark", row="item_row").cast(ITEM_REF))
                .join(self.item_texts(matched.select("benchmark", "item_row")), on=["benchmark", "item_row"],
                      how="left")
                .select(list(PAIRS_SCHEMA)).sort(*POSITION).cast(PAIRS_SCHEMA))

    def item_texts(self, items: pl.DataFrame) -> pl.DataFrame:
        """The text of each benchmark item in ``items`` (``benchmark``, ``item_row``): its
        turns as ``role: content`` lines, in a column ``item_text``."""
        frames = [pl.DataFrame(schema={"benchmark": pl.String, "item_row": pl.Int64, "item_text": pl.String})]
        wanted = items.drop_nulls().unique()
        for (name,), rows in wanted.group_by("benchmark"):
            files = self.benchmark_files(str(name))
            if files:
                frames.append(pl.scan_parquet(files).filter(pl.col("row").is_in(rows.get_column("item_row").implode()))
                              .select(benchmark=pl.lit(str(name)), item_row="row", item_text=turns_text())
                              .collect())
        return pl.concat(frames)

    def fate(self, release: str | os.PathLike[str] | None = None) -> pl.DataFrame:
        """Every ingested row once (``FATE_SCHEMA``), ordered by source and row: the first
        stage that removed it and why, the twin or benchmark item the reason points at, and
        whether it is in ``release`` (a release folder built from this run; default: the
        release the run last wrote, if any). Rows every stage kept and the release did not
        select are removed by ``mix``, reason ``not_selected``."""
        from curate.read.releases import Release

        sources = self.store.ingested_sources()
        stages = self.stage_names()
        order = {name: n for n, name in enumerate(stages)}
        removed = self.removed(stages)
        first = (removed.sort(pl.col("stage").replace_strict(order, default=len(order)), *POSITION)
                 .unique(list(POSITION), keep="first")
                 .select(*POSITION, "stage", "reason", "reason_ref"))
        keys = self.records(sources).select(KEYS).collect()
        rows = keys.join(first, on=list(POSITION), how="left")
        quarantined = split_reasons(self.quarantined(sources).select(
            *POSITION, id=pl.lit(None, pl.String), stage=pl.lit("ingest"), reason="reason").collect())
        if release is None:
            record = self.store.release_record() or {}
            given = Path(record.get("path") or "")
            release = given if record.get("path") and (given / "manifest.json").is_file() else None
        if release is not None:
            in_mix = Release.open(release).ids().get_column("id")
            stayed = pl.col("stage").is_null()
            chosen = pl.col("id").is_in(in_mix.implode())
            rows = rows.with_columns(
                in_release=stayed & chosen,
                stage=pl.when(stayed & ~chosen).then(pl.lit("mix")).otherwise("stage"),
                reason=pl.when(stayed & ~chosen).then(pl.lit("not_selected")).otherwise("reason"))
            quarantined = quarantined.with_columns(in_release=pl.lit(False))
        else:
            rows = rows.with_columns(in_release=pl.lit(None, pl.Boolean))
            quarantined = quarantined.with_columns(in_release=pl.lit(None, pl.Boolean))
        ids = keys.get_column("id").unique().implode()
        contaminated = self.contaminated(stages)
        matched = contaminated.select(*POSITION, "benchmark", "item_row")
        rows = (rows.join(matched, on=list(POSITION), how="left")
                .join(self.item_texts(contaminated.select("benchmark", "item_row")),
                      on=["benchmark", "item_row"], how="left")
                .with_columns(
                    twin_id=pl.when(pl.col("reason_ref").is_in(ids)).then("reason_ref"),
                    item=pl.when(pl.col("benchmark").is_not_null())
                    .then(pl.struct(benchmark="benchmark", row="item_row")).cast(ITEM_REF)))
        return (pl.concat([rows.select(list(FATE_SCHEMA)).cast(FATE_SCHEMA),
                           quarantined.with_columns(twin_id=pl.lit(None, pl.String),
                                                    item=pl.lit(None, ITEM_REF),
                                                    item_text=pl.lit(None, pl.String))
                           .select(list(FATE_SCHEMA)).cast(FATE_SCHEMA)])
                .sort(*POSITION))

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

    def duckdb(self, connection: duckdb.DuckDBPyConnection | None = None, *,
               release: str | os.PathLike[str] | None = None) -> duckdb.DuckDBPyConnection:
        """``connection`` (a new in-memory one by default) with views over the run:
        ``decisions``, ``records``, ``benchmark_records``, ``scores_<stage>`` (benchmark
        items as structs), ``fate`` (``fate(release)``), and ``contamination`` and
        ``contamination_pairs`` when a decontamination stage ran."""
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
            path = self.store.stage(name).decisions
            items = item_columns(pl.read_parquet_schema(path))
            replace = (" REPLACE (" + ", ".join(f'{item_ref_sql(c)} AS "{c}"' for c in items) + ")"
                       if items else "")
            con.execute(f'CREATE OR REPLACE VIEW "scores_{name}" AS SELECT *{replace} FROM '
                        f"read_parquet({files([path])})")
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
                con.register("contamination_pairs", self.contamination_pairs(stages).to_arrow())
        con.register("fate", self.fate(release).to_arrow())
        return con
