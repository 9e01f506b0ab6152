"""`build-mix`: a recipe, end to end: ingest, stages, allocation, release."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate import __version__
from curate.catalog import Catalog, Recipe, resolve_data_root
from curate.curation import build_stages, switched_off
from curate.errors import ConfigError
from curate.engine import StageContext, StageResult, run_stages
from curate.engine.local import Progress as StageProgress
from curate.ingest import IngestResult, ingest
from curate.ingest.runner import DEFAULT_BATCH_ROWS, source_fingerprint
from curate.ingest.runner import Progress as IngestProgress
from curate.mixes.assemble import (
    _removed_keys, assemble_release, candidates, clean_config, cleaned, mix_sources,
)
from curate.mixes.release import DEFAULT_RELEASES_DIR, WrittenRelease
from curate.store import RunStore, fingerprint
from curate.synth.cot import SOURCE as SYNTH_SOURCE

DEFAULT_RUNS_DIR = Path("runs")


@dataclass
class Run:
    """A recipe resolved against the catalogs, and the run folder it uses."""

    recipe: Recipe
    recipe_file: Path | None
    catalog: Catalog
    data_root: Path
    store: RunStore


@dataclass
class BuildResult:
    run: Run
    ingest: IngestResult
    stages: list[StageResult]
    synth: dict[str, Any] | None = None
    """The stats of synth_cot_v1 when the recipe has ``synth: {cot: ...}``."""
    release: WrittenRelease | None = None


def open_run(
    recipe: str | os.PathLike[str],
    *,
    catalog_dirs: Iterable[str | os.PathLike[str]] = (),
    data_root: str | os.PathLike[str] | None = None,
    runs_dir: str | os.PathLike[str] = DEFAULT_RUNS_DIR,
    run_id: str | None = None,
) -> Run:
    """Resolve ``recipe`` (a YAML path or a catalog name) and its run folder.

    The run folder is ``runs_dir/<recipe name>/<run_id>``; the run id defaults to the
    recipe's version, so building the same recipe again resumes the same run.
    """
    catalog = Catalog.load(catalog_dirs)
    resolved = catalog.recipe(recipe)
    path = Path(recipe)
    recipe_file = path.resolve() if path.exists() else catalog.files[("mixes", resolved.name)]
    store = RunStore.for_recipe(Path(runs_dir), resolved.name, run_id or resolved.version)
    return Run(resolved, recipe_file, catalog, resolve_data_root(data_root), store)


def ingest_run(run: Run, *, batch_rows: int = DEFAULT_BATCH_ROWS,
               progress: IngestProgress | None = None) -> IngestResult:
    """Ingest the recipe's sources into the run folder and record the run's inputs."""
    sources = [run.catalog.source(name) for name in run.recipe.sources]
    benchmarks = [run.catalog.benchmark(name) for name in run.recipe.benchmarks]
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
                  batch_rows=batch_rows, progress=progress)


def build_mix(
    run: Run,
    *,
    releases_dir: str | os.PathLike[str] = DEFAULT_RELEASES_DIR,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    ingest_progress: IngestProgress | None = None,
    stage_progress: StageProgress | None = None,
) -> BuildResult:
    """Ingest, run every stage, allocate the mix and write the release. Stages run only
    when every source ingested; finished work is reused; the release is immutable."""
    stages = build_stages(run.recipe.stages, where=str(run.recipe_file))
    ingested = ingest_run(run, batch_rows=batch_rows, progress=ingest_progress)
    if ingested.failed:
        return BuildResult(run, ingested, [])
    entries = [run.catalog.source(n) for n in run.recipe.sources] + [
        run.catalog.benchmark(n) for n in run.recipe.benchmarks]
    upstream = fingerprint([source_fingerprint(e, run.data_root) for e in entries])
    context = StageContext(benchmarks={
        name: run.store.benchmark(name).files("records") for name in run.recipe.benchmarks})
    results = run_stages(stages, run.store, run.recipe.sources, input_fingerprint=upstream,
                         context=context, progress=stage_progress)
    synth = synthesize(run, results, upstream, progress=stage_progress)
    release = assemble_release(run, results, Path(releases_dir), synth)
    return BuildResult(run, ingested, results, synth, release)


def synthesize(run: Run, results: list[StageResult], input_fingerprint: str, *,
               progress: StageProgress | None = None) -> dict[str, Any] | None:
    """Chain-of-thought records from the records every stage kept (``synth: {cot: ...}``),
    written to the run as the source ``synth_cot``; their stats (None without ``synth``). A finished generation
    with the same inputs and options is reused; completions are cached under the runs
    folder, so an interrupted generation resumes without sending a request twice."""
    options = run.recipe.synth.get("cot")
    if options is None:
        return None
    from curate.catalog import validate_model
    from curate.engine.local import kept_records
    from curate.synth import SynthCotConfig, enhance

    folder = run.store.source(SYNTH_SOURCE)

    config = validate_model(SynthCotConfig, options, where=f"{run.recipe_file}: synth.cot")
    upstream = results[-1].stats["decision_fingerprint"] if results else input_fingerprint
    key = fingerprint(upstream, "synth_cot_v1", config.model_dump(mode="json"))
    if folder.is_complete(key):
        return folder.state()["stats"]  # type: ignore[index]
    folder.open(key)
    kept = kept_records(run.store, run.recipe.sources, [r.name for r in results]).collect()
    records = cleaned(kept, clean_config(results)).to_arrow()  # parents as the release has them
    on_rows = None if progress is None else (lambda done, total: progress(SYNTH_SOURCE, done, total))
    cache_dir = run.store.root.parents[1] / "_cache" / "synth"  # shared by every run
    result = enhance(records, config, cache_dir, progress=on_rows)
    folder.write_shard("00000", {"records": result.synthetic, "rejected": result.rejected}, result.stats)
    folder.mark_complete(stats=result.stats)
    return result.stats


def plan_mix(run: Run) -> dict[str, Any]:
    """The resolved recipe and whether its mix is feasible, without heavy work: the
    check uses what the run folder already holds (ingested sources, finished stages)."""
    from curate.mixes.allocate import cell_budgets

    build_stages(run.recipe.stages, where=str(run.recipe_file))  # options are checked here
    plan = {"recipe": run.recipe.model_dump(mode="json", exclude_none=True), "feasibility": ""}
    spec = run.recipe.mix
    missing = [n for n in run.recipe.sources if not run.store.source(n).state()
               or not run.store.source(n).state().get("complete")]
    provided = {"synthetic" if e.origin == "synthetic" else e.domain
                for e in (run.catalog.source(n) for n in run.recipe.sources)}
    if "cot" in run.recipe.synth:
        provided.add("synthetic")
    unprovided = sorted(set(spec.targets) - provided) if spec else []
    if spec is None:
        plan["feasibility"] = "no `mix`: every kept record goes to the release"
    elif unprovided:
        plan["feasibility"] = "[red]infeasible: " + "; ".join(
            f"no source of the recipe provides `{c}`"
            + (" (no source has origin synthetic and the recipe has no `synth`)" if c == "synthetic" else "")
            for c in unprovided) + "[/]"
    elif missing:
        plan["feasibility"] = (f"not checked: {', '.join(missing)} not ingested in {run.store.root} "
                               "yet (run `curate ingest` first, or build)")
    elif "cot" in run.recipe.synth and not (run.store.source(SYNTH_SOURCE).state() or {}).get("complete"):
        plan["feasibility"] = ("not checked: the synthetic records are not generated yet "
                               "(`curate build-mix` generates them)")
    else:
        off = switched_off(run.recipe.stages)
        stages = [n for n in run.recipe.stages
                  if n not in off and (run.store.stage(n).path / "decisions.parquet").exists()]
        pool = candidates(run.store, mix_sources(run.recipe), _removed_keys(run.store, stages),
                          spec.tokenizer)
        import polars as pl

        units = pl.col("loss_tokens") if spec.unit == "loss_tokens" else pl.lit(1)
        available = pool.group_by("category", "modality").agg(units.sum().alias("units"))
        try:
            budget, _ = cell_budgets(available.sort("category", "modality"), spec)
            plan["feasibility"] = (f"feasible: budget {budget:,} {spec.unit.replace('_', ' ')} "
                                   f"(after {', '.join(stages) or 'ingestion only'})")
        except ConfigError as exc:
            plan["feasibility"] = f"[red]{exc}[/]"
    return plan
