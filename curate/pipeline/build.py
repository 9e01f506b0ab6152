"""``build-mix``: a recipe end to end: ingest, stages, synthesis, allocation, release."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import polars as pl
from pydantic import Field

from curate.config import Config, EngineConfig, read_yaml
from curate.curation import build_stages
from curate.engine.runner import Rewrite, StageResult, make_executor, run_producer, run_stages, text_rewrite
from curate.engine.stage import Producer, Stage, StageContext, build_steps
from curate.ingest import IngestResult
from curate.ingest.runner import IngestConfig
from curate.mixes.allocate import InfeasibleMix, cell_budgets
from curate.mixes.assemble import ReleaseSpec, assemble_release, candidates
from curate.mixes.release import WrittenRelease
from curate.mixes.report import write_local_report
from curate.pipeline.run import Run, ingest_run
from curate.pipeline.summary import RunSummary, inspect_run
from curate.progress import Progress
from curate.read.releases import DEFAULT_RELEASES_DIR, Release
from curate.synth import PRODUCERS


class BuildConfig(Config):
    """How ``curate build-mix`` runs (besides its ingestion, run and release folders)."""

    dry_run: bool = Field(False, description=(
        "Print the resolved plan and the feasibility check (exit 1 when infeasible); build nothing."))
    local_report: bool = Field(False, description=(
        "Also write <run>/report.local.html: the release report quoting every example row, "
        "contaminated rows beside the benchmark items they match. It stays in the run folder; the "
        "release's own report never quotes a benchmark item."))


@dataclass(frozen=True)
class Reused:
    """What a build took from the run folder instead of computing it again."""

    ingest_shards: int
    stages: dict[str, str]
    """Stage -> ``decisions`` (finished, reused whole) or ``scores`` (decided again)."""
    synthetic_records: bool
    release_unchanged: bool


@dataclass
class BuildResult:
    """What ``build_mix`` did: ingestion, each stage, synthesis, the release."""

    run: Run
    ingest: IngestResult
    stages: list[StageResult]
    produced: list[StageResult] = field(default_factory=list)
    """What each producer step (the recipe's ``synth``) did, in recipe order."""
    release: WrittenRelease | None = None

    @property
    def synth(self) -> dict[str, Any] | None:
        """The stats of the last producer step (synth_cot_v1 for ``synth: {cot: ...}``)."""
        return self.produced[-1].stats if self.produced else None

    def reused(self) -> Reused:
        """What this build took from the run folder instead of computing it again."""
        return Reused(
            ingest_shards=sum(s.resumed_shards for s in self.ingest.sources + self.ingest.benchmarks),
            stages={r.name: r.reused for r in self.stages if r.reused != "nothing"},
            synthetic_records=bool(self.produced) and all(r.reused == "records" for r in self.produced),
            release_unchanged=self.release is not None and self.release.status == "unchanged",
        )

    @cached_property
    def summary(self) -> RunSummary:
        """What the run folder holds after the build (``curate inspect``'s summary)."""
        return inspect_run(self.run.store.root)

    def to_json(self) -> dict[str, Any]:
        """``curate build-mix --json``: the run's summary, what was reused, the sources that failed."""
        return {**self.summary.to_json(), "reused": asdict(self.reused()),
                "failed": [s.name for s in self.ingest.failed]}


@dataclass(frozen=True)
class Plan:
    """A recipe resolved, and whether its mix is feasible (``build-mix --dry-run``)."""

    recipe: dict[str, Any]
    """The resolved recipe, as a recipe file would give it."""
    feasibility: str
    """What the check found, in one line."""
    feasible: bool | None
    """True, False, or None when it could not be checked yet."""


def producers(run: Run) -> list[Producer[Any]]:
    """The recipe's record-producing steps (``synth``: name -> options), options validated."""
    return build_steps(PRODUCERS, run.recipe.synth, where=f"{run.recipe_file}: synth")


def mix_sources(run: Run) -> list[str]:
    """The run sources a mix draws from: the recipe's, then each producer's."""
    return [*run.recipe.sources, *(step.source for step in producers(run))]


def build_mix(
    run: Run,
    *,
    releases_dir: str | os.PathLike[str] = DEFAULT_RELEASES_DIR,
    ingest: IngestConfig | None = None,
    engine: EngineConfig | None = None,
    progress: Progress | None = None,
    local_report: bool = False,
) -> BuildResult:
    """Ingest, run every stage and producer, allocate the mix and write the release.
    Stages run only when every source ingested; finished work is reused; the release is
    immutable. ``engine`` (default: the recipe's, else in this process) says where the
    stages' work runs; every engine writes the same release. ``local_report`` also writes
    the run folder's ``report.local.html`` (``BuildConfig.local_report``)."""
    stages = build_stages(run.recipe.stages, where=str(run.recipe_file))
    steps = producers(run)
    ingest = ingest or IngestConfig()
    ingested = ingest_run(run, options=ingest, progress=progress).result
    if ingested.failed:
        return BuildResult(run, ingested, [])
    upstream = run.input_fingerprint(ingest.batch_rows)
    with make_executor(engine or run.engine()) as executor:
        context = StageContext(
            benchmarks={name: run.benchmark_files(name) for name in run.recipe.benchmarks},
            cache=run.store.cache("synth"), embedding_cache=run.store.cache("embeddings"),
            executor=executor)
        results = run_stages(stages, run.store, run.recipe.sources, input_fingerprint=upstream,
                             context=context, progress=progress)
    rewrite = text_rewrite(stages)
    kept_fp = results[-1].stats["decision_fingerprint"] if results else upstream

    def parents() -> Any:  # the kept records, as the release has them
        table = run.kept(run.recipe.sources, [r.name for r in results]).collect().to_arrow()
        return rewrite(table) if rewrite is not None and table.num_rows else table

    produced = [run_producer(step, run.store, parents, input_fingerprint=kept_fp, context=context,
                             progress=progress) for step in steps]
    try:
        spec = _release_spec(run, stages, results, rewrite, steps, produced)
        release = assemble_release(spec, releases_dir)
    except InfeasibleMix as exc:
        raise explained(exc, run, [r.name for r in results]) from None
    run.store.write_release_record(release_record(release))
    if local_report:
        write_local_report(run.store.local_report, release.manifest, run,
                           Release(release.path).removed(), [r.name for r in results], stages)
    return BuildResult(run, ingested, results, produced, release)


RECORDED = ("name", "version", "budget", "composition", "modality", "benchmarks", "contamination")
"""The manifest fields a run records of its release (``release.json``)."""


def release_record(release: WrittenRelease) -> dict[str, Any]:
    """What ``curate inspect`` shows of a run's release: where, its status, its composition."""
    return {"path": str(release.path), "status": release.status,
            **{key: release.manifest.get(key) for key in RECORDED}}


def explained(exc: InfeasibleMix, run: Run, stage_names: Sequence[str]) -> InfeasibleMix:
    """``exc`` with, for each empty category, where its sources' records went."""
    if not exc.empty:
        return exc
    removed = run.removed(stage_names)
    parts = []
    for category in exc.empty:
        names = [e.name for e in run.sources
                 if ("synthetic" if e.origin == "synthetic" else e.domain) == category]
        if not names:
            parts.append(f"`{category}`: no source of the recipe provides it")
            continue
        lost = []
        for name in names:
            mine = removed.filter(pl.col("source") == name)
            by_stage = mine.group_by("stage", maintain_order=True).len()
            if by_stage.height == 0:
                lost.append(f"{name} has no record")
                continue
            for stage, count in by_stage.iter_rows():
                reasons = (mine.filter(pl.col("stage") == stage).get_column("reason")
                           .value_counts(sort=True))
                detail = ", ".join(f"{r} {n:,}" for r, n in reasons.iter_rows())
                lost.append(f"{name}: {count:,} removed by {stage} ({detail})")
        parts.append(f"`{category}`: 0 kept rows; " + "; ".join(lost))
    return InfeasibleMix(f"{exc}. Where the records went: " + ". ".join(parts), exc.empty)


def _release_spec(run: Run, stages: Sequence[Stage[Any]], results: Sequence[StageResult],
                  rewrite: Rewrite | None, steps: Sequence[Producer[Any]],
                  produced: Sequence[StageResult]) -> ReleaseSpec:
    return ReleaseSpec(
        recipe=run.recipe, recipe_given=read_yaml(run.recipe_file) if run.recipe_file else None,
        run=run, sources=run.sources, benchmarks=run.benchmarks, data_root=run.data_root,
        stage_results=list(results), stages=list(stages), rewrite=rewrite,
        produced={step.source: made.stats for step, made in zip(steps, produced, strict=True)})


def plan_mix(run: Run) -> Plan:
    """The resolved recipe and whether its mix is feasible, without heavy work: the
    check uses what the run folder already holds (ingested sources, finished stages)."""
    build_stages(run.recipe.stages, where=str(run.recipe_file))  # options are checked here
    feasibility, feasible = _feasibility(run)
    return Plan(run.recipe.model_dump(mode="json", exclude_none=True), feasibility, feasible)


def _feasibility(run: Run) -> tuple[str, bool | None]:
    steps = producers(run)
    spec = run.recipe.mix
    missing = [n for n in run.recipe.sources if not (run.store.source(n).state() or {}).get("complete")]
    provided = {"synthetic" if e.origin == "synthetic" else e.domain for e in run.sources}
    if steps:
        provided.add("synthetic")
    unprovided = sorted(set(spec.targets) - provided) if spec else []
    if spec is None:
        return "no `mix`: every kept record goes to the release", None
    if unprovided:
        return "infeasible: " + "; ".join(
            f"no source of the recipe provides `{c}`"
            + (" (no source has origin synthetic and the recipe has no `synth`)" if c == "synthetic" else "")
            for c in unprovided), False
    if missing:
        return (f"not checked: {', '.join(missing)} not ingested in {run.store.root} "
                "yet (run `curate ingest` first, or build)"), None
    if any(not (run.store.source(s.source).state() or {}).get("complete") for s in steps):
        return ("not checked: the synthetic records are not generated yet "
                "(`curate build-mix` generates them)"), None
    off = run.recipe.switched_off
    stages = [n for n in run.recipe.stages if n not in off and run.store.stage(n).decisions.exists()]
    pool = candidates(run, mix_sources(run), run.removed(stages), spec.tokenizer, max_length=spec.max_length,
                      tokenizer_revision=spec.tokenizer_revision)
    units = pl.col("loss_tokens") if spec.unit == "loss_tokens" else pl.lit(1)
    available = pool.group_by("category", "modality").agg(units.sum().alias("units"))
    try:
        budget, _ = cell_budgets(available.sort("category", "modality"), spec)
    except InfeasibleMix as exc:
        return str(explained(exc, run, stages)), False
    return (f"feasible: budget {budget:,} {spec.unit.replace('_', ' ')} "
            f"(after {', '.join(stages) or 'ingestion only'})"), True
