"""How `curate ingest`, `curate build-mix` and `curate inspect` print a run."""

from __future__ import annotations

import click

from curate.cli.console import console
from curate.cli.views.releases import composition_table, contamination_tables
from curate.ingest import IngestResult
from curate.pipeline.build import BuildResult, Plan, Reused
from curate.pipeline.run import Ingested
from curate.pipeline.summary import RunSummary
from curate.read.views import CotStats


def ingested(result: Ingested) -> None:
    """What ``curate ingest`` did: notes, then the run's summary."""
    ingest_notes(result.result)
    run_tables(result.summary)


def built(result: BuildResult) -> None:
    """What ``curate build-mix`` did: notes, the run, what it reused."""
    ingest_notes(result.ingest)
    run_summary(result.summary, reused=result.reused())
    if result.ingest.failed:
        console().print("[red]stages did not run: a source failed to ingest[/]")


def ingest_notes(result: IngestResult) -> None:
    """One line per source that started over or read no rows (to stderr)."""
    for source in [*result.sources, *result.benchmarks]:
        if source.restarted:
            click.echo(f"note: source {source.name} starts over: {source.restarted}", err=True)
        if source.warning:
            click.echo(f"warning: source {source.name}: {source.warning}", err=True)


def run_summary(summary: RunSummary, reused: Reused | None = None) -> None:
    """What a run holds, as `build-mix` and `inspect` both print it: sources, quarantine,
    stages, contamination, modality, then synthesis and the release; after a build, what
    it reused."""
    run_tables(summary)
    if summary.cot is not None:
        synth_stats(summary.cot, reused=bool(reused and reused.synthetic_records))
    release = summary.release
    if release is not None:
        if not release.contamination and release.benchmarks:
            console().print("Contamination: no training row matched an item of "
                            f"{', '.join(release.benchmarks)}")
        composition_table(release.composition, f"release {release.path} ({release.status})")
    if reused is not None:
        console().print(reused_line(reused))


def reused_line(reused: Reused) -> str:
    """One line naming what a build took from the run instead of computing it again."""
    parts = []
    if reused.ingest_shards:
        parts.append(f"{reused.ingest_shards:,} ingested shards")
    finished = [name for name, what in reused.stages.items() if what == "decisions"]
    redecided = [name for name, what in reused.stages.items() if what == "scores"]
    if finished:
        parts.append(f"finished stages {', '.join(finished)}")
    if redecided:
        parts.append(f"the scores of {', '.join(redecided)} (decisions made again)")
    if reused.synthetic_records:
        parts.append("the synthetic records (no request sent)")
    if reused.release_unchanged:
        parts.append("the release (unchanged)")
    return f"reused from the run: {', '.join(parts)}" if parts else "reused nothing: all computed now"


def run_tables(summary: RunSummary) -> None:
    """Rows per source, quarantine by reason, each stage's decisions, contamination, modality."""
    from rich.table import Table

    out = console()
    out.print(f"[bold]run[/] {summary.run_dir}  (recipe {summary.recipe})")
    sources = Table("source", "role", "status", "rows", "records", "quarantined", "shards",
                    title="Rows per source", title_justify="left")
    for s in summary.sources:
        status = s.status if s.status != "failed" else "[red]failed[/]"
        sources.add_row(s.source, s.role, status, f"{s.rows:,}", f"{s.records:,}", f"{s.quarantined:,}",
                        str(s.shards))
    out.print(sources)
    for s in summary.sources:
        if s.error:
            out.print(f"[red]source `{s.source}` failed:[/] {s.error}")
    if summary.quarantine:
        table = Table("source", "reason", "rows", title="Quarantined by reason", title_justify="left")
        for q in summary.quarantine:
            table.add_row(q.source, q.reason, f"{q.rows:,}")
        out.print(table)
    for stage in summary.stages:
        title = f"{stage.stage}: {stage.rows:,} in, {stage.kept:,} kept, {stage.dropped:,} dropped"
        if not stage.reasons:
            out.print(title)
            continue
        table = Table("reason", "rows", title=title, title_justify="left")
        for reason, count in stage.reasons.items():
            table.add_row(reason, f"{count:,}")
        out.print(table)
    if summary.contamination:
        contamination_tables(summary.contamination)
    if summary.modalities:
        table = Table("modality", "rows", "kept", "kept loss tokens", "removed by stage",
                      title="Rows and loss tokens per modality", title_justify="left")
        for m in summary.modalities:
            removed = ", ".join(f"{s}: {n:,}" for s, n in m.removed_by_stage.items()) or "-"
            table.add_row(m.modality, f"{m.rows:,}", f"{m.kept:,}", f"{m.kept_loss_tokens:,}", removed)
        out.print(table)


def synth_stats(stats: CotStats, *, reused: bool = False) -> None:
    """What synth_cot_v1 made and rejected, and the requests it sent."""
    out = console()
    out.print(f"synth_cot: {stats.synthetic:,} synthetic of {stats.rows:,} rows; generator {stats.generator}")
    if stats.offline_backend:
        out.print("[bold]offline backend: template text for tests and demos, not training data[/]")
    out.print(f"rejected {stats.rejected}; attempts {stats.attempts}; "
              f"requests sent {stats.requests_sent:,}, cached {stats.requests_cached:,}; "
              f"{stats.completion_tokens_per_row:.1f} completion tokens per row"
              + ("; reused from the run: no request sent now" if reused else ""))


def plan(result: Plan) -> None:
    """The resolved recipe, as YAML, then the feasibility check."""
    import yaml

    out = console()
    out.print(yaml.safe_dump(result.recipe, sort_keys=False).rstrip())
    colour = "red" if result.feasible is False else "default"
    out.print(f"[bold]feasibility:[/] [{colour}]{result.feasibility}[/]")
