"""The run handle: a recipe resolved against the catalogs, and the run folder it uses.

``open_run`` takes a recipe (to build it) or a run folder (to query it). A run answers
queries over its store with a stable schema, whatever its stages:

- ``run.decisions()``: a Polars LazyFrame of every stage's decisions, one row per record a
  stage saw, with columns ``stage, source, row, id, keep, reason, reason_ref``
  (``reason`` the code, ``contaminated``; ``reason_ref`` its parameter, a benchmark or a
  record id);
- ``run.scores(stage)``: one stage's decisions with its score columns;
- ``run.records()``: the ingested records (every source, the synthetic ones included);
- ``run.duckdb()``: a DuckDB connection with the views ``decisions`` (the same table as
  ``decisions()``), ``records``, ``benchmark_records``, ``scores_<stage>`` per stage and
  ``contamination`` when a decontamination stage ran.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from curate.catalog import Catalog, Recipe, Source, resolve_data_root
from curate.errors import ConfigError
from curate.ingest import IngestResult, ingest
from curate.ingest.runner import DEFAULT_BATCH_ROWS, DEFAULT_MAX_RECORD_BYTES, source_fingerprint
from curate.ingest.runner import Progress as IngestProgress
from curate.store import RunStore, fingerprint
from curate.version import __version__

if TYPE_CHECKING:
    import duckdb
    import polars as pl

DEFAULT_RUNS_DIR = Path("runs")


@dataclass
class Run:
    """A recipe resolved against the catalogs, and the run folder it uses."""

    recipe: Recipe
    recipe_file: Path | None
    catalog: Catalog
    data_root: Path
    store: RunStore

    @property
    def sources(self) -> list[Source]:
        """The catalog entries of the recipe's sources, in recipe order."""
        return [self.catalog.source(name) for name in self.recipe.sources]

    @property
    def benchmarks(self) -> list[Source]:
        """The catalog entries of the recipe's benchmarks, in recipe order."""
        return [self.catalog.benchmark(name) for name in self.recipe.benchmarks]

    def input_fingerprint(self, batch_rows: int = DEFAULT_BATCH_ROWS) -> str:
        """What every stage reads: each source's and benchmark's entry, shard size and
        file contents (hashes cached in the ingested folders' state)."""
        parts = []
        for entry, folder in [*((s, self.store.source(s.name)) for s in self.sources),
                              *((b, self.store.benchmark(b.name)) for b in self.benchmarks)]:
            known = (folder.state() or {}).get("files")
            parts.append(source_fingerprint(entry, self.data_root, batch_rows=batch_rows, known=known))
        return fingerprint(parts)

    def stage_names(self) -> list[str]:
        """The stages that wrote decisions in this run, in the order they ran."""
        return [n for n in self.store.stage_names() if self.store.stage(n).decisions.exists()]

    def decisions(self) -> pl.LazyFrame:
        """Every stage's decisions in one stable schema (``stage, source, row, id, keep,
        reason, reason_ref``); a ConfigError when a stage's decisions predate it."""
        from curate.engine.local import read_decisions

        return read_decisions(self.store, self.stage_names())

    def scores(self, stage: str) -> pl.LazyFrame:
        """The decisions of ``stage`` with its score columns."""
        import polars as pl

        if stage not in self.stage_names():
            raise ConfigError(f"stage `{stage}` has no decisions in {self.store.root} "
                              f"(stages: {', '.join(self.stage_names()) or 'none'})")
        return pl.scan_parquet(self.store.stage(stage).decisions)

    def records(self) -> pl.LazyFrame:
        """The ingested records of every source of the run (synthetic records included)."""
        import polars as pl

        from curate.engine.local import record_files
        from curate.records import empty_records

        files = record_files(self.store, self.store.ingested_sources())
        return pl.scan_parquet(files) if files else pl.DataFrame(empty_records()).lazy()

    def duckdb(self, connection: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
        """``connection`` (a new in-memory one by default) with views over the run:
        ``decisions``, ``records``, ``benchmark_records``, ``scores_<stage>``,
        ``contamination``."""
        import duckdb

        from curate.engine.local import DECISIONS_SCHEMA, record_files

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
        sources = record_files(self.store, self.store.ingested_sources())
        if sources:
            con.execute(f"CREATE OR REPLACE VIEW records AS SELECT * FROM read_parquet({files(sources)})")
        info = self.store.run_info() or {}
        marks = [p for b in info.get("benchmarks", {}) for p in self.store.benchmark(b).files("records")]
        if marks:
            con.execute("CREATE OR REPLACE VIEW benchmark_records AS SELECT * FROM "
                        f"read_parquet({files(marks)})")
        for name in stages:
            report = self.store.stage(name).report("contamination")
            if report.exists():
                con.execute("CREATE OR REPLACE VIEW contamination AS SELECT * FROM "
                            f"read_parquet({files([report])})")
        return con


DATA_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet", ".arrow")


def open_run(
    recipe: str | os.PathLike[str],
    *,
    catalog_dirs: Iterable[str | os.PathLike[str]] = (),
    data_root: str | os.PathLike[str] | None = None,
    runs_dir: str | os.PathLike[str] = DEFAULT_RUNS_DIR,
    run_id: str | None = None,
    allow_outside_data_root: bool = False,
) -> Run:
    """Resolve ``recipe`` (a YAML path or a catalog name) and its run folder, or open the
    run folder ``recipe`` (one with a ``run.json``) to query it.

    The run folder is ``runs_dir/<recipe name>/<run_id>``; the run id defaults to the
    recipe's version, so building the same recipe again resumes the same run.
    ``allow_outside_data_root`` lets every entry read files outside the data root.
    """
    path = Path(recipe)
    if path.suffix.lower() in DATA_SUFFIXES:
        raise ConfigError(
            f"{path} is a data file, and this command takes a recipe: a YAML file naming "
            "`sources`, `stages` and a `mix` (see catalogs/mixes/demo.yaml), or a mix name from "
            "`curate catalog ls`; for one file use `curate clean|dedup|decontaminate FILE --kept OUT`")
    catalog = Catalog.load(catalog_dirs, allow_outside_data_root=allow_outside_data_root)
    if (Path(recipe) / "run.json").is_file():
        store = RunStore(Path(recipe).resolve())
        info = store.run_info() or {}
        given = Path(info.get("recipe_file") or "")
        return Run(Recipe.model_validate(info["recipe"]), given if given.is_file() else None, catalog,
                   Path(info["data_root"]) if data_root is None else resolve_data_root(data_root), store)
    if Path(recipe).is_dir():
        raise ConfigError(f"{recipe} is a folder but not a run folder (no run.json); a run lives in "
                          "runs/<recipe>/<run-id>, a recipe is a YAML file or a catalog name")
    resolved = catalog.recipe(recipe)
    recipe_file = path.resolve() if path.exists() else catalog.files[("mixes", resolved.name)]
    store = RunStore.for_recipe(Path(runs_dir), resolved.name, run_id or resolved.version)
    return Run(resolved, recipe_file, catalog, resolve_data_root(data_root), store)


def row_totals(run: Run) -> dict[str, int]:
    """Expected rows per source and benchmark of ``run`` with local files (for progress
    bars; see ``curate.ingest.files.estimate_source_rows``)."""
    from curate.ingest.files import estimate_source_rows

    totals = {e.name: estimate_source_rows(e, run.data_root) for e in [*run.sources, *run.benchmarks]}
    return {name: n for name, n in totals.items() if n is not None}


def ingest_run(run: Run, *, batch_rows: int = DEFAULT_BATCH_ROWS,
               progress: IngestProgress | None = None,
               max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> IngestResult:
    """Ingest the recipe's sources into the run folder and record the run's inputs."""
    sources, benchmarks = run.sources, run.benchmarks
    run.store.write_run_info(
        {
            "recipe": run.recipe.model_dump(mode="json"),
            "recipe_file": str(run.recipe_file),
            "sources": {s.name: s.model_dump(mode="json") for s in sources},
            "benchmarks": {b.name: b.model_dump(mode="json") for b in benchmarks},
            "data_root": str(run.data_root),
            "stages": list(run.recipe.stages),
            "curate_version": __version__,
        }
    )
    return ingest(sources, run.store, data_root=run.data_root, benchmarks=benchmarks,
                  batch_rows=batch_rows, progress=progress, max_record_bytes=max_record_bytes)
