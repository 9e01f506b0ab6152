"""`curate ingest`, `curate build-mix`, `curate inspect`: a recipe's run."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from curate.cli.commands.catalog import catalog_options
from curate.cli.console import json_option, progress_bars, show
from curate.cli.options import config_options, given, settings
from curate.cli.views import runs as view
from curate.config import EngineConfig
from curate.ingest.runner import IngestConfig
from curate.pipeline.build import BuildConfig
from curate.pipeline.run import RunFolder
from curate.read.releases import ReleasesFolder

if TYPE_CHECKING:
    from curate.pipeline.run import Run

recipe_argument = click.argument("recipe")
run_options = [
    catalog_options("catalog_dirs", "data_root", "allow_outside_data_root"),
    config_options(RunFolder, at=["run"], rename={"runs_dir": "runs"}),
    config_options(IngestConfig, at=["ingest"]),
]


def with_run_options(command: Any) -> Any:
    """RECIPE, then the catalog, run-folder and ingestion options."""
    for decorate in reversed([recipe_argument, *run_options]):
        command = decorate(command)
    return command


def open_recipe(context: click.Context) -> tuple[Run, IngestConfig]:
    """The command's recipe resolved to its run, and its ingestion options."""
    from curate.pipeline.run import open_run

    options = settings(context)
    run = open_run(given(context)["recipe"], **options.get("catalog", {}), **options.get("run", {}))
    return run, IngestConfig.model_validate(options.get("ingest", {}))


@click.command()
@with_run_options
@json_option
def ingest(as_json: bool, **_: Any) -> None:
    """Read every source of RECIPE (a YAML path or a mix name) into the run store.

    Bad rows are quarantined with their reason; an interrupted ingestion resumes.
    """
    from curate.pipeline.run import ingest_run, row_totals

    run, options = open_recipe(click.get_current_context())
    with progress_bars(totals=lambda: row_totals(run)) as progress:
        result = ingest_run(run, options=options, progress=progress)
    show(result, as_json, view.ingested)
    if result.result.failed:
        sys.exit(1)


@click.command("build-mix")
@with_run_options
@config_options(ReleasesFolder, at=["releases"], rename={"releases_dir": "releases"})
@config_options(BuildConfig, at=["build"])
@config_options(EngineConfig, at=["engine"])
@json_option
def build_mix(as_json: bool, **_: Any) -> None:
    """Build RECIPE (a YAML path or a mix name) end to end: ingest every source, run every
    stage, allocate the mix to its target shares and write the release.

    Finished work is reused: building again resumes, a changed threshold re-runs only
    that stage's decision, and an unchanged recipe leaves its release as it is.
    """
    from curate.pipeline.build import build_mix as build
    from curate.pipeline.build import plan_mix
    from curate.pipeline.run import row_totals

    context = click.get_current_context()
    run, ingest_options = open_recipe(context)
    options = settings(context)
    build_options = BuildConfig.model_validate(options.get("build", {}))
    if build_options.dry_run:
        if show(plan_mix(run), as_json, view.plan).feasible is False:
            sys.exit(1)
        return
    releases = ReleasesFolder.model_validate(options.get("releases", {}))
    with progress_bars(totals=lambda: row_totals(run)) as progress:
        result = build(run, releases_dir=releases.releases_dir, ingest=ingest_options,
                       engine=run.engine(options.get("engine")), progress=progress,
                       local_report=build_options.local_report)
    show(result, as_json, view.built)
    if result.ingest.failed:
        sys.exit(1)


@click.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@json_option
def inspect(run: str, as_json: bool) -> None:
    """Print what RUN (a folder runs/<recipe>/<run-id>) holds, as build-mix printed it:
    rows per source, quarantined rows by reason, each stage's decisions by reason, the
    contamination, the synthesis, rows per modality and the release's composition."""
    from curate.pipeline.summary import inspect_run

    show(inspect_run(run), as_json, view.run_summary)
