"""The run handle: a recipe resolved against the catalogs, and the run folder it uses.

``open_run`` takes a recipe (to build it) or a run folder (to query it). A ``Run`` is a
``curate.read.runs.RunReader`` too: ``run.decisions()``, ``run.scores(stage)``,
``run.records()``, ``run.duckdb()`` query its folder with a stable schema.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field

from curate.catalog import Catalog, Recipe, Source, resolve_data_root
from curate.config import Config, EngineConfig, merged, validate_model
from curate.engine.stage import Stage
from curate.errors import ConfigError
from curate.ingest import IngestResult, ingest
from curate.ingest.runner import DEFAULT_BATCH_ROWS, IngestConfig, source_fingerprint
from curate.pipeline.summary import RunSummary, inspect_run
from curate.progress import Progress
from curate.read.runs import RunReader
from curate.store import RunStore, fingerprint
from curate.version import __version__

DEFAULT_RUNS_DIR = Path("runs")


class RunFolder(Config):
    """Where a recipe's run folder is (``open_run`` takes the same names)."""

    runs_dir: str = Field(str(DEFAULT_RUNS_DIR), description=(
        "Folder that holds run folders (<runs>/<recipe>/<run-id>)."))
    run_id: str | None = Field(None, description="Run folder name [default: the recipe's version].")


@dataclass
class Run(RunReader):
    """A recipe resolved against the catalogs, and the run folder it uses (``store``)."""

    recipe: Recipe
    recipe_file: Path | None
    catalog: Catalog
    data_root: Path

    @property
    def sources(self) -> list[Source]:
        """The catalog entries of the recipe's sources, in recipe order."""
        return [self.catalog.source(name) for name in self.recipe.sources]

    @property
    def benchmarks(self) -> list[Source]:
        """The catalog entries of the recipe's benchmarks, in recipe order."""
        return [self.catalog.benchmark(name) for name in self.recipe.benchmarks]

    def stage(self, name: str) -> Stage[Any]:
        """The recipe's stage ``name``, options validated: what its decision compares with
        (``thresholds()``) and which of its score columns are ranks (``rank_columns``)."""
        from curate.curation import build_stages

        for stage in build_stages(self.recipe.stages, where=str(self.recipe_file)):
            if stage.name == name:
                return stage
        raise ConfigError(f"the recipe has no stage `{name}` switched on "
                          f"(stages: {', '.join(self.recipe.stages) or 'none'})")

    def engine(self, given: Mapping[str, Any] | None = None) -> EngineConfig:
        """Where this run's stages run: the recipe's ``engine`` with ``given`` (the command
        line's values) on top; in this process when neither says."""
        base = self.recipe.engine.model_dump(exclude_unset=True) if self.recipe.engine else {}
        return validate_model(EngineConfig, merged(base, given or {}), where="engine options")

    def input_fingerprint(self, batch_rows: int = DEFAULT_BATCH_ROWS) -> str:
        """What every stage reads: each source's and benchmark's entry, shard size and
        file contents (hashes cached in the ingested folders' state)."""
        parts = []
        for entry, folder in [*((s, self.store.source(s.name)) for s in self.sources),
                              *((b, self.store.benchmark(b.name)) for b in self.benchmarks)]:
            known = (folder.state() or {}).get("files")
            parts.append(source_fingerprint(entry, self.data_root, batch_rows=batch_rows, known=known))
        return fingerprint(parts)


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
        return Run(store, Recipe.model_validate(info["recipe"]), given if given.is_file() else None, catalog,
                   Path(info["data_root"]) if data_root is None else resolve_data_root(data_root))
    if Path(recipe).is_dir():
        raise ConfigError(f"{recipe} is a folder but not a run folder (no run.json); a run lives in "
                          "runs/<recipe>/<run-id>, a recipe is a YAML file or a catalog name")
    resolved = catalog.recipe(recipe)
    recipe_file = path.resolve() if path.exists() else catalog.files[("mixes", resolved.name)]
    store = RunStore.for_recipe(Path(runs_dir), resolved.name, run_id or resolved.version)
    return Run(store, resolved, recipe_file, catalog, resolve_data_root(data_root))


def row_totals(run: Run) -> dict[str, int]:
    """Expected rows per source and benchmark of ``run`` with local files (for progress
    bars; see ``curate.ingest.files.estimate_source_rows``)."""
    from curate.ingest.files import estimate_source_rows

    totals = {e.name: estimate_source_rows(e, run.data_root) for e in [*run.sources, *run.benchmarks]}
    return {name: n for name, n in totals.items() if n is not None}


@dataclass
class Ingested:
    """What ``ingest_run`` did: each source's ingestion, and the run's summary after it."""

    run: Run
    result: IngestResult

    @cached_property
    def summary(self) -> RunSummary:
        """What the run folder holds now (``curate inspect``'s summary)."""
        return inspect_run(self.run.store.root)

    def to_json(self) -> dict[str, Any]:
        """``curate ingest --json``: the run's summary and the sources that failed."""
        return {**self.summary.to_json(), "failed": [s.name for s in self.result.failed]}


def ingest_run(run: Run, *, options: IngestConfig | None = None,
               progress: Progress | None = None) -> Ingested:
    """Ingest the recipe's sources into the run folder and record the run's inputs."""
    options = options or IngestConfig()
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
    return Ingested(run, ingest(sources, run.store, data_root=run.data_root, benchmarks=benchmarks,
                                batch_rows=options.batch_rows, progress=progress,
                                max_record_bytes=options.max_record_bytes))
