"""The `curate` command: a thin shell over the library, one call per verb.

User errors (bad catalogs, recipes, options) print one line and exit 2; a run in
which a source failed prints its summary and exits 1. Heavy libraries load inside
the commands, so `curate --help` answers at once.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from curate.curation.config import (
    AnswersConfig,
    BoxConfig,
    CleanConfig,
    DecontamConfig,
    DiversityConfig,
    ExactDedupConfig,
    ImageConfig,
    MinHashConfig,
    NearDedupConfig,
    QualityConfig,
    RelevanceConfig,
)
from curate.errors import CurateError
from curate.evaluate.config import AuditConfig, McqaConfig
from curate.evaluate.safety import SafetyEvalConfig
from curate.options import config_options, union_options
from curate.rag.config import CotIndexConfig, IndexConfig
from curate.synth.config import GENERATORS, SynthCotConfig
from curate.synth.safety_pairs import SafetyPairsConfig

if TYPE_CHECKING:
    from rich.console import Console

    from curate.ingest import IngestResult
    from curate.pipeline.build import BuildResult
    from curate.pipeline.run import Run


def _console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    # Off a terminal (a pipe, a log file), tables get room instead of 80 columns.
    stream = sys.stderr if stderr else sys.stdout
    return Console(highlight=False, soft_wrap=True, stderr=stderr,
                   width=None if stream.isatty() else 160)


class _Group(click.Group):
    """Turns curate's own errors into one line on stderr and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CurateError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


catalog_option = click.option(
    "--catalog", "catalog_dirs", multiple=True, type=click.Path(file_okay=False),
    help="A catalog folder to add to the shipped catalogs/ (repeatable).",
)
data_root_option = click.option(
    "--data-root", type=click.Path(file_okay=False), default=None,
    help="Folder relative data paths start from [default: $CURATE_DATA_ROOT, else ../shared/data].",
)
runs_option = click.option(
    "--runs", "runs_dir", type=click.Path(file_okay=False), default="runs", show_default=True,
    help="Folder that holds run folders (<runs>/<recipe>/<run-id>).",
)
run_id_option = click.option(
    "--run-id", default=None, help="Run folder name [default: the recipe's version]."
)
json_option = click.option(
    "--json", "as_json", is_flag=True,
    help="Print one JSON document on stdout (stable keys) and nothing else.",
)


def _emit_json(value: Any) -> None:
    import json

    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


batch_option = click.option(
    "--batch-rows", type=click.IntRange(min=1), default=20_000, show_default=True,
    help="Source rows per ingested shard (bounds memory).",
)
outside_option = click.option(
    "--allow-outside-data-root", is_flag=True,
    help="Let catalog paths (and image paths in rows) lie outside the data root.",
)
record_size_option = click.option(
    "--max-record-bytes", type=click.IntRange(min=1), default=16 << 20, show_default=True,
    help="Largest raw row read; a larger one is quarantined as record_too_large.",
)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(package_name="curate")
def main(verbose: int) -> None:
    """curate: data sources in, audited post-training dataset releases out."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


# -- catalog ------------------------------------------------------------------------------


@main.group(cls=_Group)
def catalog() -> None:
    """List and check catalog entries (sources, benchmarks, mixes)."""


@catalog.command("ls")
@catalog_option
def catalog_ls(catalog_dirs: tuple[str, ...]) -> None:
    """List every source, benchmark and mix recipe of the catalogs."""
    from rich.table import Table

    from curate.catalog import Catalog

    cat = Catalog.load(catalog_dirs)
    table = Table("section", "name", "kind", "domain", "license", "location")
    for section, entries in (("source", cat.sources), ("benchmark", cat.benchmarks)):
        for name, entry in entries.items():
            loc = entry.location
            where = loc.path if loc.path else f"hf:{loc.hf.repo}" if loc.hf else ""
            table.add_row(section, name, entry.mapping.kind, entry.domain, entry.license, where)
    for name, recipe in cat.mixes.items():
        table.add_row("mix", name, "recipe", "", "", f"{len(recipe.sources)} sources")
    _console().print(table)


@catalog.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@catalog_option
@data_root_option
@json_option
def catalog_validate(paths: tuple[str, ...], catalog_dirs: tuple[str, ...],
                     data_root: str | None, as_json: bool) -> None:
    """Check catalog entries: the schema (unknown keys are errors), that the licence is
    set, that local files exist, and that every mapped column exists in the first rows.

    PATHS are entry YAML files to check; with none, every entry of the catalogs is checked.
    Hub entries are checked for schema and pinned revision only (no download).
    """
    from curate.catalog import Catalog, Recipe, Source, resolve_data_root
    from curate.config import load_model, read_yaml
    from curate.ingest.check import check_source

    root = resolve_data_root(data_root)
    cat = Catalog.load(catalog_dirs)
    entries: list[tuple[Source | Recipe, Path]] = []
    if paths:
        for path in map(Path, paths):
            data = read_yaml(path)
            model = Recipe if isinstance(data, dict) and "sources" in data else Source
            entries.append((load_model(model, path), path))  # type: ignore[arg-type]
    else:
        entries += [(e, cat.files[("sources", n)]) for n, e in cat.sources.items()]
        entries += [(e, cat.files[("benchmarks", n)]) for n, e in cat.benchmarks.items()]
        entries += [(e, cat.files[("mixes", n)]) for n, e in cat.mixes.items()]
    console = _console()
    failures = 0
    checked = []
    for entry, path in entries:
        if isinstance(entry, Recipe):
            try:
                cat.recipe(path)
                ok, message = True, f"recipe: {len(entry.sources)} sources, stages {list(entry.stages)}"
            except CurateError as exc:
                ok, message = False, str(exc)
        else:
            check = check_source(entry, path, root)
            ok, message = check.ok, check.message
        failures += not ok
        checked.append({"name": entry.name, "kind": "mix" if isinstance(entry, Recipe) else "source",
                        "path": str(path), "ok": ok, "message": message})
        if not as_json:
            mark = "[green]ok[/]  " if ok else "[red]FAIL[/]"
            console.print(f"{mark} {entry.name:<24} {message}")
    if as_json:
        _emit_json({"entries": checked, "valid": len(entries) - failures, "total": len(entries)})
    else:
        console.print(f"{len(entries) - failures} of {len(entries)} entries valid")
    if failures:
        sys.exit(1)


# -- runs -----------------------------------------------------------------------------------


@contextmanager
def _progress(enabled: bool, *, input_rows: int | None = None,
              totals: Callable[[], dict[str, int]] | None = None) -> Iterator[
        tuple[Callable[[str, int], None] | None, Callable[[str, int, int], None] | None]]:
    """Rich progress bars, drawn on stderr (``enabled``: stderr is a terminal), as callbacks
    for ingestion (rows read; ``input_rows``: the expected total of a one-file command's
    INPUT; ``totals()``: expected rows per source) and for steps: a stage's shards, the
    parts of its work reported as `<stage>: <part>` (embedding batches, LSH bands,
    decontamination tiers), a producer's rows. A total of 0 means not known yet."""
    if not enabled:
        yield None, None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    expected = totals() if totals is not None else {}
    with Progress(TextColumn("{task.description:<36}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=True, console=_console(stderr=True)) as bar:
        tasks: dict[str, Any] = {}

        def ingest(source: str, rows: int) -> None:
            if source not in tasks:
                total = expected.get(source, input_rows)
                tasks[source] = bar.add_task(f"ingest {source}", total=total)
            bar.advance(tasks[source], rows)
            task = bar.tasks[tasks[source]]
            if task.total is not None and task.completed > task.total:  # the total was an estimate
                bar.update(tasks[source], total=task.completed)

        def step(name: str, done: int, total: int) -> None:
            if name not in tasks:
                stage, _, part = name.partition(": ")
                tasks[name] = bar.add_task(f"  {part}" if part else f"stage {stage}", total=None)
            bar.update(tasks[name], completed=done, total=total or None)

        yield ingest, step


def _open(recipe: str, catalog_dirs: tuple[str, ...], data_root: str | None, runs_dir: str,
          run_id: str | None, allow_outside: bool = False) -> Run:
    from curate.pipeline.run import open_run

    return open_run(recipe, catalog_dirs=catalog_dirs, data_root=data_root, runs_dir=runs_dir,
                    run_id=run_id, allow_outside_data_root=allow_outside)


@main.command()
@click.argument("recipe")
@catalog_option
@data_root_option
@runs_option
@run_id_option
@batch_option
@outside_option
@record_size_option
def ingest(recipe: str, catalog_dirs: tuple[str, ...], data_root: str | None, runs_dir: str,
           run_id: str | None, batch_rows: int, allow_outside_data_root: bool,
           max_record_bytes: int) -> None:
    """Read every source of RECIPE (a YAML path or a mix name) into the run store.

    Bad rows are quarantined with their reason; an interrupted ingestion resumes.
    """
    from curate.pipeline.run import ingest_run, row_totals
    from curate.pipeline.summary import inspect_run

    run = _open(recipe, catalog_dirs, data_root, runs_dir, run_id, allow_outside_data_root)
    with _progress(sys.stderr.isatty(), totals=lambda: row_totals(run)) as (on_rows, _):
        result = ingest_run(run, batch_rows=batch_rows, progress=on_rows,
                            max_record_bytes=max_record_bytes)
    _print_ingest_notes(result)
    _print_summary(inspect_run(run.store.root))
    if result.failed:
        sys.exit(1)


@main.command("build-mix")
@click.argument("recipe")
@click.option("--out", "releases_dir", type=click.Path(file_okay=False), default="releases",
              show_default=True, help="Folder of releases (<out>/<recipe>/<version>).")
@click.option("--dry-run", is_flag=True,
              help="Print the resolved plan and the feasibility check (exit 1 when infeasible); "
                   "build nothing.")
@catalog_option
@data_root_option
@runs_option
@run_id_option
@batch_option
@json_option
@outside_option
@record_size_option
def build_mix(recipe: str, releases_dir: str, dry_run: bool, catalog_dirs: tuple[str, ...],
              data_root: str | None, runs_dir: str, run_id: str | None, batch_rows: int,
              as_json: bool, allow_outside_data_root: bool, max_record_bytes: int) -> None:
    """Build RECIPE (a YAML path or a mix name) end to end: ingest every source, run every
    stage, allocate the mix to its target shares and write the release.

    Finished work is reused: building again resumes, a changed threshold re-runs only
    that stage's decision, and an unchanged recipe leaves its release as it is.
    """
    from curate.pipeline.build import build_mix as build
    from curate.pipeline.build import plan_mix
    from curate.pipeline.run import row_totals

    run = _open(recipe, catalog_dirs, data_root, runs_dir, run_id, allow_outside_data_root)
    if dry_run:
        plan = plan_mix(run)
        if as_json:
            _emit_json(plan)
        else:
            _print_plan(plan)
        if plan["feasible"] is False:
            sys.exit(1)
        return
    with _progress(sys.stderr.isatty(), totals=lambda: row_totals(run)) as (on_rows, on_stage):
        result = build(run, releases_dir=releases_dir, batch_rows=batch_rows,
                       ingest_progress=on_rows, stage_progress=on_stage,
                       max_record_bytes=max_record_bytes)
    if as_json:
        from curate.pipeline.summary import inspect_run

        _emit_json({**inspect_run(run.store.root).to_json(), "reused": result.reused(),
                    "failed": [s.name for s in result.ingest.failed]})
    else:
        _report_build(result)
    if result.ingest.failed:
        sys.exit(1)


def _print_ingest_notes(result: IngestResult) -> None:
    """One line per source that started over or read no rows (to stderr)."""
    for source in [*result.sources, *result.benchmarks]:
        if source.restarted:
            click.echo(f"note: source {source.name} starts over: {source.restarted}", err=True)
        if source.warning:
            click.echo(f"warning: source {source.name}: {source.warning}", err=True)


def _report_build(result: BuildResult) -> None:
    from curate.pipeline.summary import inspect_run

    _print_ingest_notes(result.ingest)
    _print_run(inspect_run(result.run.store.root), reused=result.reused())
    if result.ingest.failed:
        _console().print("[red]stages did not run: a source failed to ingest[/]")


def _print_run(summary: Any, reused: dict[str, Any] | None = None) -> None:
    """What a run holds, as `build-mix` and `inspect` both print it: sources, quarantine,
    stages, contamination, modality (``_print_summary``), then synthesis and the release;
    after a build, what it reused."""
    _print_summary(summary)
    if summary.synth is not None:
        _print_synth_stats(summary.synth, reused=bool(reused and reused["synthetic_records"]))
    release = summary.release
    if release is not None:
        if not release["contamination"] and release["benchmarks"]:
            _console().print(f"Contamination: no training row matched an item of "
                             f"{', '.join(release['benchmarks'])}")
        _print_release(release, f"release {release['path']} ({release['status']})")
    if reused:
        parts = []
        if reused["ingest_shards"]:
            parts.append(f"{reused['ingest_shards']:,} ingested shards")
        finished = [name for name, what in reused["stages"].items() if what == "decisions"]
        redecided = [name for name, what in reused["stages"].items() if what == "scores"]
        if finished:
            parts.append(f"finished stages {', '.join(finished)}")
        if redecided:
            parts.append(f"the scores of {', '.join(redecided)} (decisions made again)")
        if reused["synthetic_records"]:
            parts.append("the synthetic records (no request sent)")
        if reused["release_unchanged"]:
            parts.append("the release (unchanged)")
        _console().print(f"reused from the run: {', '.join(parts)}" if parts
                         else "reused nothing: all computed now")


def _print_release(manifest: dict[str, Any], title: str) -> None:
    from rich.table import Table

    console = _console()
    budget = manifest["budget"]
    table = Table("category", "target", "realised", "loss tokens", "rows", title=title,
                  title_justify="left",
                  caption=f"budget {budget['amount']:,} {budget['unit'].replace('_', ' ')}; "
                  f"loss tokens by {budget['counting']}")
    for c in manifest["composition"]:
        target = "-" if c["target"] is None else f"{c['target']:.1%}"
        table.add_row(c["category"], target, f"{c['realised']:.2%}", f"{c['loss_tokens']:,}",
                      f"{c['rows']:,}")
    # The release holds whole records: its total (what `release ls` lists) is near the budget.
    table.add_row("total", "", "", f"{sum(c['loss_tokens'] for c in manifest['composition']):,}",
                  f"{sum(c['rows'] for c in manifest['composition']):,}", style="bold")
    console.print(table)
    modality = ", ".join(f"{m} {v['loss_tokens_share']:.1%} of loss tokens ({v['rows']:,} rows)"
                         for m, v in manifest["modality"].items())
    console.print(f"modality: {modality}")


def _print_plan(plan: dict[str, Any]) -> None:
    import yaml

    console = _console()
    console.print(yaml.safe_dump(plan["recipe"], sort_keys=False).rstrip())
    colour = "red" if plan["feasible"] is False else "default"
    console.print(f"[bold]feasibility:[/] [{colour}]{plan['feasibility']}[/]")


# -- releases ----------------------------------------------------------------------------------


@main.group(cls=_Group)
def release() -> None:
    """List, show, compare, export and publish releases."""


@release.command("ls")
@click.option("--root", type=click.Path(file_okay=False), default="releases", show_default=True,
              help="Folder of releases.")
@json_option
def release_ls(root: str, as_json: bool) -> None:
    """List the releases under ROOT (name, version, rows, loss tokens)."""
    from rich.table import Table

    from curate.read.releases import list_releases

    found = list_releases(root)
    if as_json:
        _emit_json([{"path": str(r.path), "name": r.name, "version": r.version, "rows": r.rows,
                     "loss_tokens": r.loss_tokens} for r in found])
        return
    table = Table("name", "version", "rows", "loss tokens", "path")
    for r in found:
        table.add_row(r.name, r.version, f"{r.rows:,}", f"{r.loss_tokens:,}", str(r.path))
    _console().print(table)


@release.command("show")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@json_option
def release_show(path: str, as_json: bool) -> None:
    """Print a release's composition, curation counts and contamination."""
    from curate.read.releases import Release

    manifest = Release.open(path).manifest
    if as_json:
        _emit_json({"path": path, **{k: manifest.get(k) for k in (
            "name", "version", "budget", "composition", "modality", "stages", "contamination")}})
        return
    _print_release(manifest, f"{manifest['name']} {manifest['version']}")
    for stage in manifest["stages"]:
        reasons = ", ".join(f"{r} {n:,}" for r, n in stage["reasons"].items()) or "nothing removed"
        _console().print(f"{stage['stage']}: {stage['rows']:,} in, {stage['kept']:,} kept ({reasons})")
    if manifest["contamination"]:
        _print_contamination(manifest["contamination"])


@release.command("diff")
@click.argument("a", type=click.Path(exists=True, file_okay=False))
@click.argument("b", type=click.Path(exists=True, file_okay=False))
@json_option
def release_diff(a: str, b: str, as_json: bool) -> None:
    """What changed from release A to release B: rows added and removed by source (with
    B's reason for each removal) and the composition side by side."""
    from rich.table import Table

    from curate.mixes.publish import diff_releases

    diff = diff_releases(a, b)
    if as_json:
        _emit_json({"a": a, "b": b, **diff})
        return
    console = _console()
    added = Table("source", "rows added", title="Added in B", title_justify="left")
    for row in diff["added"]:
        added.add_row(row["source"], f"{row['len']:,}")
    console.print(added)
    removed = Table("source", "stage", "reason", "rows", title="Removed in B", title_justify="left")
    for row in diff["removed"]:
        removed.add_row(row["source"], row["stage"] or "-", row["reason"], f"{row['len']:,}")
    console.print(removed)
    shares = Table("category", "A", "B", "A rows", "B rows", title="Composition", title_justify="left")
    for c in diff["composition"]:
        shares.add_row(c["category"], "-" if c["a"] is None else f"{c['a']:.2%}", f"{c['b']:.2%}",
                       "-" if c["a_rows"] is None else f"{c['a_rows']:,}", f"{c['b_rows']:,}")
    console.print(shares)
    console.print(f"recipe changed: {'yes' if diff['recipe_changed'] else 'no'}; "
                  f"seeds {diff['seed'][0]} -> {diff['seed'][1]}")


@release.command("export")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
def release_export(path: str, out: str) -> None:
    """Save the release with `datasets` `save_to_disk` into OUT (for `load_from_disk`)."""
    from curate.mixes.publish import export_release

    _console().print(f"saved {export_release(path, out)}")


@release.command("push")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("--repo", required=True, help="Hugging Face dataset repository (owner/name).")
@click.option("--private/--public", default=True, show_default=True,
              help="Visibility of the repository when it is created (an existing one keeps its own).")
@click.option("--token", default=None,
              help="Hugging Face token with write access [default: the login's, or $HF_TOKEN].")
@click.option("--revision", default=None, help="Branch to upload to (created when missing) [default: main].")
@click.option("--create-pr", is_flag=True,
              help="Open a pull request with the release instead of committing (no tag is made).")
@click.option("--dry-run", is_flag=True,
              help="Check the release and list what would be uploaded; send nothing.")
def release_push(path: str, repo: str, private: bool, token: str | None, revision: str | None,
                 create_pr: bool, dry_run: bool) -> None:
    """Upload the release to a Hugging Face dataset repo and tag it v<version>.

    The release must verify against its manifest and carry a valid Hub dataset card
    (with `dataset_info`). Offline (HF_HUB_OFFLINE=1) it stops at a dry run listing what
    would be uploaded; an unreachable Hub or a missing login is a one-line error.
    """
    from curate.mixes.publish import push_release

    result = push_release(path, repo, private=private, token=token, revision=revision,
                          create_pr=create_pr, dry_run=dry_run)
    console = _console()
    if not result["uploaded"]:
        console.print(f"{result['reason']}: would upload {len(result['files'])} files to "
                      f"datasets/{repo} ({'private' if private else 'public'} when created)"
                      + ("" if create_pr else f" and tag {result['tag']}"))
        for name in result["files"]:
            console.print(f"  {name}")
    elif result["pr_url"]:
        console.print(f"opened pull request {result['pr_url']} on {result['url']} "
                      f"({len(result['files'])} files); tag {result['tag']} after merging")
    else:
        console.print(f"uploaded {len(result['files'])} files to {result['url']} at {result['commit']}, "
                      f"tagged {result['tag']}")


input_argument = click.argument("input_path", metavar="INPUT",
                                type=click.Path(exists=True, dir_okay=False))
out_option = click.option(
    "--out", default=None, type=click.Path(),
    help="Every row's decision: a .parquet file, or a folder (decisions.parquet inside); "
         "reports go beside it.",
)
kept_option = click.option(
    "--kept", default=None, type=click.Path(dir_okay=False),
    help="Write the kept rows here, in INPUT's format and columns, with repaired text.",
)
removed_option = click.option(
    "--removed", default=None, type=click.Path(dir_okay=False),
    help="Write the removed rows here, in INPUT's format and columns, plus `reason`.",
)
source_option = click.option(
    "--source", default=None,
    help="Read INPUT with this catalog entry's mapping [default: INPUT has a `messages` column].",
)


def one_file_command(name: str) -> Callable[[Callable[..., None]], click.Command]:
    """A command that runs stages over one file: INPUT, --kept, --removed, --out, --source,
    --catalog, --data-root, then the stages' options (generated from their configs below it)."""
    def decorate(function: Callable[..., None]) -> click.Command:
        for decorator in reversed((input_argument, kept_option, removed_option, out_option,
                                   source_option, catalog_option, data_root_option)):
            function = decorator(function)
        return main.command(name)(function)

    return decorate


def _run_on_file(*names: str) -> None:
    """The body of every one-file command: its stages (``names``, in order) with their
    options, gathered from the generated options, over INPUT; then what it wrote and removed."""
    from click.core import ParameterSource

    from curate.ingest.files import estimate_rows
    from curate.options import given, settings
    from curate.pipeline.adhoc import run_on_file

    context = click.get_current_context()
    options = settings(context)
    stages = {name: options.get(name, {}) for name in names}
    if "decontam" in stages and context.get_parameter_source("reject_source_above") in (
            ParameterSource.DEFAULT, None):  # one file is judged row by row unless asked
        stages["decontam"].pop("reject_source_above", None)
    rest = given(context)
    benchmarks = stages.get("decontam", {}).get("benchmarks", ())
    input_path = rest.pop("input_path")
    with _progress(sys.stderr.isatty(), input_rows=estimate_rows(Path(input_path))) as (on_rows, on_step):
        result = run_on_file(input_path, rest.pop("out"), stages, benchmarks=benchmarks,
                             source_rejection=False, ingest_progress=on_rows, stage_progress=on_step,
                             **rest)
    _print_file_result(result)


@one_file_command("dedup")
@config_options(ExactDedupConfig, at=["exact_dedup"])
@config_options(MinHashConfig, at=["near_dedup", "minhash"], skip=["min_recall"])
@config_options(NearDedupConfig, at=["near_dedup"], skip=["minhash"])
def dedup(**options: Any) -> None:
    """Exact and near-duplicate dedup of one file (MinHash LSH, verified by exact Jaccard).

    OUT holds every row of INPUT with `row`, `id`, `keep`, `reason` (`duplicate_of`,
    `near_duplicate_of`), `reason_ref` (the kept record's id) and the score columns.
    """
    _run_on_file("exact_dedup", "near_dedup")


@one_file_command("decontaminate")
@config_options(DecontamConfig, at=["decontam"], rename={"benchmarks": "benchmark"},
                required=["benchmarks"])
def decontaminate(**options: Any) -> None:
    """Find benchmark items inside one file: n-gram, MinHash and (optionally) embedding tiers.

    Give `--benchmark` once per benchmark catalog entry. OUT holds every row of INPUT with
    `row`, `id`, `keep`, `reason` (`contaminated`, `source_rejected`), `reason_ref` (the
    benchmark; `contamination`) and each tier's best benchmark item and score; the
    contamination report goes beside it.
    """
    _run_on_file("decontam")


@one_file_command("clean")
@config_options(CleanConfig, at=["clean"])
def clean(**options: Any) -> None:
    """Repair text (ftfy, whitespace) and flag weak records in one file (clean_v1).

    OUT holds every row of INPUT with `row`, `id`, `keep`, `reason` (`empty_answer`,
    `short_answer`, `answer_equals_question`, `refusal`, `repetitive`, `non_text`) and
    the score columns; `clean_changed` says whether repair changed the text (a release
    built with the stage carries the repaired turns).
    """
    _run_on_file("clean")


@one_file_command("score")
@config_options(QualityConfig, at=["quality"])
def score(**options: Any) -> None:
    """Score one file with DEITA's complexity and quality scorers (quality_v1).

    OUT holds every row of INPUT with `row`, `id`, `keep`, `reason` (`low_quality`) and
    `complexity`, `quality`, `deita_score` (sum over turns of complexity x quality) and
    the per-turn scores. A scorer whose scores collapse to a constant fails with the
    spread it measured.
    """
    _run_on_file("quality")


@one_file_command("diversify")
@config_options(DiversityConfig, at=["diversity"])
def diversify(**options: Any) -> None:
    """Diversity-aware selection over one file (diversity_v1, DEITA's filter).

    Records are embedded and visited in order; one is kept only if its cosine to every
    kept record is at most TAU. OUT holds every row of INPUT with `row`, `id`, `keep`,
    `reason` (`too_similar_to`, `over_budget`), `reason_ref` (the similar record's id) and
    `diversity_max_sim`, `diversity_nearest`, `diversity_rank`.
    """
    _run_on_file("diversity")


def _print_file_result(result: Any) -> None:
    import polars as pl
    from rich.table import Table

    console = _console()
    if result.out is not None:
        console.print(f"wrote {result.out}: {result.rows:,} rows, {result.kept:,} kept")
    else:
        console.print(f"{result.rows:,} rows, {result.kept:,} kept")
    if result.kept_path is not None:
        repaired = result.written["repaired"]
        console.print(f"kept rows -> {result.kept_path} ({result.written['kept']:,} rows"
                      + (f", {repaired:,} with repaired text)" if repaired else ")"))
    if result.removed_path is not None:
        console.print(f"removed rows -> {result.removed_path} ({result.written['removed']:,} rows, "
                      "with `reason`)")
    if result.contamination is not None:
        c = result.contamination
        rule = (f"rows judged one by one, no source rejection (a recipe's {c['recipe_rule']:.1%} rule "
                + ("would have rejected the whole file; --reject-source-above applies it)"
                   if c["recipe_would_reject"] else "would have kept the file)")
                if c["reject_source_above"] is None else
                f"--reject-source-above {c['reject_source_above']:g}")
        console.print(f"contaminated: {c['contaminated']:,} of {c['rows']:,} rows ({c['share']:.2%}); {rule}")
    if result.reasons:
        table = Table("reason", "rows", title="Removed by reason", title_justify="left")
        for reason, count in result.reasons.items():
            table.add_row(reason, f"{count:,}")
        console.print(table)
    for name, path in result.reports.items():
        report = pl.read_parquet(path)
        console.print(f"{name} report: {path} ({report.height} rows)")
        if name == "contamination" and report.height:
            _print_contamination(report.drop("examples").to_dicts())


# -- synth --------------------------------------------------------------------------------


@main.group(cls=_Group)
def synth() -> None:
    """Generate synthetic training data with a pluggable backend."""


@synth.command("cot")
@input_argument
@click.option("--out", required=True, type=click.Path(),
              help="A .parquet file (rejected and stats beside it), or a folder.")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), default=None,
              help="Completion cache [default: $CURATE_CACHE_DIR/synth or ~/.cache/curate/synth].")
@source_option
@catalog_option
@data_root_option
@union_options(GENERATORS, discriminator="backend", at=["generator"],
               rename={"batch_size": "generator_batch_size"})
@config_options(SynthCotConfig, skip=["generator", "sources"])
def synth_cot(**_: Any) -> None:
    """Rewrite QA and multiple-choice records into verified chains of thought (synth_cot_v1).

    OUT holds the synthetic records (origin `synthetic`, lineage in `meta`); the rejected
    parents with their reasons (`wrong_answer`, `no_answer`, `copies_question`,
    `leaks_gold_hint`) and the stats go beside it. Finished generations are cached:
    a rerun resumes and sends no request twice.
    """
    from curate.config import validate_model
    from curate.options import given, settings
    from curate.synth.cot import enhance_file

    context = click.get_current_context()
    config = validate_model(SynthCotConfig, settings(context), where="options")
    rest = given(context)
    with _progress(sys.stderr.isatty()) as (_ingest, on_step):
        rows = None if on_step is None else (lambda done, total: on_step("synth cot", done, total))
        result = enhance_file(rest.pop("input_path"), rest.pop("out"), config=config, progress=rows,
                              **rest)
    console = _console()
    console.print(f"wrote {result.synthetic}; rejected parents -> {result.rejected}")
    _print_synth_stats(result.stats)


def _print_synth_stats(stats: dict[str, Any], *, reused: bool = False) -> None:
    console = _console()
    generator = stats["generator"]
    console.print(f"synth_cot: {stats['synthetic']:,} synthetic of {stats['rows']:,} rows; "
                  f"generator {generator['backend']}:{generator['model']}")
    if stats["offline_backend"]:
        console.print("[bold]offline backend: template text for tests and demos, not training data[/]")
    console.print(f"rejected {dict(stats['rejected'])}; attempts {stats['attempts']}; "
                  f"requests sent {stats['requests']['sent']:,}, cached {stats['requests']['cached']:,}; "
                  f"{stats['completion_tokens_per_row']:.1f} completion tokens per row"
                  + ("; reused from the run: no request sent now" if reused else ""))


@main.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@json_option
def inspect(run: str, as_json: bool) -> None:
    """Print what RUN (a folder runs/<recipe>/<run-id>) holds, as build-mix printed it:
    rows per source, quarantined rows by reason, each stage's decisions by reason, the
    contamination, the synthesis, rows per modality and the release's composition."""
    from curate.pipeline.summary import inspect_run

    summary = inspect_run(run)
    if as_json:
        _emit_json(summary.to_json())
    else:
        _print_run(summary)


def _print_summary(summary: Any) -> None:
    from rich.table import Table

    console = _console()
    console.print(f"[bold]run[/] {summary.run_dir}  (recipe {summary.recipe})")
    sources = Table("source", "role", "status", "rows", "records", "quarantined", "shards",
                    title="Rows per source", title_justify="left")
    for s in summary.sources:
        status = s["status"] if s["status"] != "failed" else "[red]failed[/]"
        sources.add_row(s["source"], s["role"], status, f"{s['rows']:,}", f"{s['records']:,}",
                        f"{s['quarantined']:,}", str(s["shards"]))
    console.print(sources)
    for s in summary.sources:
        if s["error"]:
            console.print(f"[red]source `{s['source']}` failed:[/] {s['error']}")
    if summary.quarantine:
        table = Table("source", "reason", "rows", title="Quarantined by reason", title_justify="left")
        for q in summary.quarantine:
            table.add_row(q["source"], q["reason"], f"{q['rows']:,}")
        console.print(table)
    for stage in summary.stages:
        title = (f"{stage['stage']}: {stage['rows']:,} in, {stage['kept']:,} kept, "
                 f"{stage['dropped']:,} dropped")
        if not stage["reasons"]:
            console.print(title)
            continue
        table = Table("reason", "rows", title=title, title_justify="left")
        for reason, count in stage["reasons"].items():
            table.add_row(reason, f"{count:,}")
        console.print(table)
    if summary.contamination:
        _print_contamination(summary.contamination)
    if summary.modalities:
        table = Table("modality", "rows", "kept", "kept loss tokens", "removed by stage",
                      title="Rows and loss tokens per modality", title_justify="left")
        for m in summary.modalities:
            removed = ", ".join(f"{s}: {n:,}" for s, n in m["removed_by_stage"].items()) or "-"
            table.add_row(m["modality"], f"{m['rows']:,}", f"{m['kept']:,}",
                          f"{m['kept_loss_tokens']:,}", removed)
        console.print(table)


def _print_contamination(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    tiers = [t for t in ("ngram", "containment", "stem", "embedding", "minhash") if rows and t in rows[0]]
    table = Table("source", "benchmark", "contaminated", "share", *tiers,
                  "source rejected", title="Contamination", title_justify="left")
    for c in rows:
        table.add_row(c["source"], c["benchmark"], f"{c['contaminated']:,}", f"{c['share']:.2%}",
                      *(f"{c[t]:,}" for t in tiers),
                      "yes" if c["source_rejected"] else "no")
    _console().print(table)
    examples = Table("record", "record text", "benchmark item", "tier / field",
                     title="Contamination examples (record beside the item it matched)",
                     title_justify="left", show_lines=True)
    for c in rows:
        for e in (c.get("examples") or [])[:2]:
            examples.add_row(e["record"], e["record_text"][:300], f"{e['item']}\n{e['item_text'][:300]}",
                             " / ".join(x for x in (e.get("tier"), e.get("field")) if x))
    if examples.row_count:
        _console().print(examples)


# -- safety ---------------------------------------------------------------------------------


@main.group(cls=_Group)
def safety() -> None:
    """Red-teaming safety data: preference pairs for DPO from adversarial prompts."""


@safety.command("pairs")
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="YAML file of the options: `target`, `reference` and `judge` backends at least.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for train.parquet, test.parquet, candidates.parquet, stats.json, catalog/.")
@catalog_option
@data_root_option
@config_options(SafetyPairsConfig, rename={"sources": "source", "styles": "style",
                                           "test_topics": "test_topic", "test_styles": "test_style"})
def safety_pairs(**_: Any) -> None:
    """Build safety preference pairs: adversarial prompts from catalogs (AdvBench, HarmBench)
    tagged by topic, attacked in jailbreak styles, answered by a target and a reference
    model, judged in the Llama Guard 3 format; a pair is kept when the reference answer is
    judged safe and the target answer unsafe. Whole topics and styles are held out for
    the test split. Options given here override the --config file.
    """
    from curate.catalog import Catalog
    from curate.options import given, settings
    from curate.synth.safety_pairs import build_pairs, read_pairs_config

    context = click.get_current_context()
    rest = given(context)
    config = read_pairs_config(rest["config_path"], settings(context))
    result = build_pairs(config, rest["out"], catalog=Catalog.load(rest["catalog_dirs"]),
                         data_root=rest["data_root"])
    console = _console()
    for split in ("train", "test"):
        info = result.stats["splits"][split]
        console.print(f"{split}: {info['pairs']:,} pairs of {info['candidates']:,} candidates "
                      f"{info['reasons']}; topics {', '.join(info['topics'])}; "
                      f"styles {', '.join(info['styles'])}")
    prompts = result.stats["prompts"]
    console.print(f"prompts: {prompts['read']:,} read, "
                  f"{prompts['near_duplicates_removed']:,} near-duplicates removed; "
                  f"judge verdicts {result.stats['judge']['verdicts']}")
    if result.stats["offline_or_test_double"]:
        console.print("[bold]offline or test-double backends: not training data[/]")
    console.print(f"wrote {result.train}, {result.test}; mix them with --catalog {result.catalog}")


# -- evaluate -------------------------------------------------------------------------------


@main.group(cls=_Group, name="eval")
def eval_() -> None:
    """Evaluate models: MCQA benchmarks, safety."""


@eval_.command("safety")
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="YAML file of the options: the `model` and `judge` backends at least.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for results.json, report.md, predictions.parquet and the ASR plots.")
@catalog_option
@data_root_option
@config_options(SafetyEvalConfig, rename={"sources": "source", "styles": "style"})
def eval_safety(**_: Any) -> None:
    """Measure a model's safety: attack success rate (judged in the Llama Guard 3 format)
    overall, per topic and per attack style with Wilson intervals; over-refusal on XSTest's
    safe prompts; the judge's agreement with XSTest's human labels (Cohen's kappa).
    Options given here override the --config file.
    """
    from curate.catalog import Catalog
    from curate.evaluate.safety import evaluate_safety, read_eval_config
    from curate.options import given, settings

    context = click.get_current_context()
    rest = given(context)
    config = read_eval_config(rest["config_path"], settings(context))
    report = evaluate_safety(config, rest["out"], catalog=Catalog.load(rest["catalog_dirs"]),
                             data_root=rest["data_root"])
    click.echo(report.files["report"].read_text(encoding="utf-8"))
    click.echo(f"wrote {', '.join(str(p) for p in report.files.values())}")


@eval_.command("mcqa")
@click.argument("benchmarks", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for results.json, predictions.parquet, report.md and the plots.")
@click.option("--baseline", type=click.Path(exists=True, file_okay=False), default=None,
              help="The --out folder of an earlier run: compare with it, paired, on the same items.")
@catalog_option
@data_root_option
@union_options(GENERATORS, discriminator="backend", at=["model"],
               rename={"batch_size": "model_batch_size"})
@config_options(McqaConfig, skip=["model"])
def eval_mcqa(**_: Any) -> None:
    """Evaluate a model on MCQA BENCHMARKS (catalog names): accuracy with bootstrap
    intervals, parse failures, position bias, per-subject accuracy.

    `--mode loglik` (backends transformers, vllm) scores the option letters in one forward
    pass; `--mode generate` (any backend, `openai` for OpenAI-compatible endpoints) extracts
    the answer from a chain of thought. With `--baseline`, the paired difference of the two
    models and its interval.
    """
    from curate.config import validate_model
    from curate.evaluate.mcqa import evaluate_mcqa
    from curate.options import given, settings

    context = click.get_current_context()
    config = validate_model(McqaConfig, settings(context), where="options")
    rest = given(context)
    result = evaluate_mcqa(rest.pop("benchmarks"), config, **rest)
    _print_mcqa(result.results)
    _console().print(f"wrote {result.out}: results.json, predictions.parquet, {result.report.name}")


def _print_mcqa(results: dict[str, Any]) -> None:
    from rich.table import Table

    from curate.evaluate.report import mcqa_table

    console = _console()
    if results.get("offline_backend"):
        console.print("[bold]offline backend: template text for tests and demos; these numbers "
                      "measure no model[/]")
    level = int(round(100 * results["options"]["confidence"]))
    table = Table("benchmark", "items", "accuracy", f"{level}% interval", "parse failures",
                  "position bias (TV)", title=f"{results['model']} ({results['backend']}, "
                  f"{results['mode']}, template {results['template']['hash']})", title_justify="left")
    for row in mcqa_table(results):
        table.add_row(row["benchmark"], f"{row['items']:,}", f"{row['accuracy']:.1%}",
                      f"{row['low']:.1%} to {row['high']:.1%}", f"{row['parse_failure_rate']:.1%}",
                      f"{row['position_bias_tv']:.3f}")
    console.print(table)
    retrieval = results.get("retrieval")
    if retrieval:
        check = retrieval["contamination"]
        console.print(f"retrieval (k {retrieval['k']}, {retrieval['shuffles']} shuffles): "
                      f"{check['excluded']} of {check['checked']} index records excluded as contaminated")
        for name, c in retrieval["versus_zero_shot"].items():
            d = c["difference"]
            console.print(f"{name}: retrieval {c['accuracy_a']:.1%} vs zero-shot {c['accuracy_b']:.1%}, "
                          f"difference {d['value']:+.1%} ({d['low']:+.1%} to {d['high']:+.1%}), "
                          f"McNemar p {c['mcnemar_p']:.3g}")
    for name, c in results.get("comparison", {}).get("benchmarks", {}).items():
        d = c["difference"]
        console.print(f"{name}: {c['accuracy_a']:.1%} vs baseline {c['accuracy_b']:.1%}, difference "
                      f"{d['value']:+.1%} ({d['low']:+.1%} to {d['high']:+.1%}), "
                      f"McNemar p {c['mcnemar_p']:.3g}")


@eval_.command("export-lm-eval")
@click.argument("benchmark")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder the task folder goes in (pass it to lm_eval as --include_path).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Export only the first LIMIT items (as `curate eval mcqa --limit`).")
@catalog_option
@data_root_option
def eval_export_lm_eval(benchmark: str, out: str, limit: int | None, catalog_dirs: tuple[str, ...],
                        data_root: str | None) -> None:
    """Export BENCHMARK as an lm-evaluation-harness task (YAML and data file) with the items
    and prompts of `curate eval mcqa`, for `lm_eval --include_path OUT --tasks curate_NAME`."""
    from curate.evaluate.lm_eval_export import export_lm_eval

    task = export_lm_eval(benchmark, out, limit=limit, catalog_dirs=catalog_dirs, data_root=data_root)
    _console().print(f"wrote task `{task.name}` ({task.items:,} items): {task.config}")
    _console().print(f"run: lm_eval --model hf --model_args pretrained=MODEL --include_path {out} "
                     f"--tasks {task.name}")


@main.command("audit")
@click.argument("benchmarks", nargs=-1, required=True)
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for audit.json, audit.md and audit.png [default: print only].")
@catalog_option
@data_root_option
@config_options(AuditConfig, skip=["decontam"])
def audit_benchmarks(**_: Any) -> None:
    """Audit BENCHMARKS (catalog names) as evaluation sets: answers not among the options,
    empty or truncated options, unreadable images, conflicting and duplicate items,
    repeated stems, items shared between the benchmarks (decontamination tiers). A
    benchmark with more than `--unfit-above` flawed items is marked unfit."""
    from rich.table import Table

    from curate.config import validate_model
    from curate.evaluate.audit import COUNTED, audit
    from curate.options import given, settings

    context = click.get_current_context()
    config = validate_model(AuditConfig, settings(context), where="options")
    rest = given(context)
    result = audit(rest.pop("benchmarks"), config, **rest)
    table = Table("benchmark", "rows", "flawed", "share", "fit", *COUNTED, "repeated stem",
                  "shared", title="Benchmark audit", title_justify="left")
    for name, b in result.benchmarks.items():
        table.add_row(name, f"{b['rows']:,}", f"{b['flawed']:,}", f"{b['share']:.2%}",
                      "yes" if b["fit"] else "[red]unfit[/]",
                      *(f"{len(b['flaws'][f]):,}" for f in COUNTED),
                      f"{len(b['notes']['repeated_stem']):,}", f"{b['shared_items']:,}")
    _console().print(table)
    if result.out is not None:
        _console().print(f"wrote {result.out}: audit.json, audit.md")


# -- multimodal ---------------------------------------------------------------------------


@one_file_command("check-images")
@config_options(ImageConfig, at=["image"])
def check_images(**options: Any) -> None:
    """Check the images of one file (image_v1): decodable, size, aspect, duplicates.

    OUT holds every row of INPUT with `row`, `id`, `keep`, `reason` (`unreadable_image`,
    `image_too_small`, `bad_aspect_ratio`, `duplicate_image:<id>`) and the image scores
    (size, format, mode, perceptual hash, whether a release would normalise it).
    """
    _run_on_file("image")


@one_file_command("check-answers")
@config_options(AnswersConfig, at=["answers"])
def check_answers(**options: Any) -> None:
    """Check the answers of one image-text file (answers_v1).

    OUT holds every row of INPUT with `row`, `id`, `keep`, `reason` (`pasted_answer`,
    `answer_wrong_type`, `answer_unrelated`) and the question and answer forms, the
    images a long answer is found with, and the question-answer cosine.
    """
    _run_on_file("answers")


@one_file_command("check-relevance")
@config_options(RelevanceConfig, at=["relevance"])
def check_relevance(**options: Any) -> None:
    """Score image-text relevance of one file with CLIP (relevance_v1).

    OUT holds every row of INPUT with `row`, `id`, `keep`, `reason` (`image_irrelevant`)
    and `relevance_clip`, the image-text cosine; the threshold is the model's.
    """
    _run_on_file("relevance")


@one_file_command("check-boxes")
@config_options(BoxConfig, at=["boxes"])
def check_boxes(**options: Any) -> None:
    """Check the bounding boxes in one image-text file against its images (boxes_v1).

    OUT holds every row of INPUT with `row`, `id`, `keep`, `reason`
    (`box_out_of_bounds`, `box_degenerate`), the number of boxes and the image size.
    """
    _run_on_file("boxes")


# -- train ---------------------------------------------------------------------------------


@main.group(cls=_Group)
def train() -> None:
    """Thin training over TRL (SFT, DPO) and mergekit (merging), from releases."""


def _training_command(task: str) -> Callable[[Callable[..., None]], click.Command]:
    """The shared arguments of `train sft` and `train dpo`; TRL's options go through
    --config (a YAML file of the config class's fields) and --set key=value."""
    config = "SFTConfig" if task == "sft" else "DPOConfig"

    def wrap(function: Callable[..., None]) -> click.Command:
        for option in reversed([
            click.argument("data", type=click.Path(exists=True)),
            click.option("--model", "model_name", required=True,
                         help="Model to train: a hub name (pin --revision) or a local folder."),
            click.option("--revision", default=None, help="Hub revision (commit, tag or branch) of --model."),
            click.option("--trust-remote-code", is_flag=True, help="Let the model run its own code."),
            click.option("--out", "output_dir", required=True, type=click.Path(file_okay=False),
                         help="Folder for the trained model, its tokenizer and curate-train.json."),
            click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
                         default=None,
                         help=f"YAML file of TRL {config} fields (e.g. learning_rate: 2.0e-5)."),
            click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                         help=f"Set one TRL {config} field, over --config (repeatable), e.g. "
                              "--set max_steps=100 --set packing=true."),
            click.option("--release-config", default=None,
                         help="For a release: which part to train on (text, image_text, preference) "
                              f"[default: {'text' if task == 'sft' else 'preference'}]."),
        ]):
            function = option(function)
        return train.command(task)(function)
    return wrap


def _run_training(method: str, *, data: str, model_name: str, revision: str | None, trust_remote_code: bool,
                  output_dir: str, config_file: str | None, overrides: tuple[str, ...],
                  release_config: str | None) -> None:
    from curate.config import ModelSpec
    from curate.train.run import Options
    from curate.train.run import train as run

    model = ModelSpec(model=model_name, revision=revision, trust_remote_code=trust_remote_code)
    _print_training(run(method, data, model=model, output_dir=output_dir,
                        options=Options(config_file=config_file, overrides=overrides),
                        release_config=release_config))


def _print_training(result: Any) -> None:
    record = result.record
    release = record["data"]["release"]
    data = (f"release {release['name']} {release['version']} ({release['config']}, manifest "
            f"{release['manifest_sha256'][:12]})" if release else record["data"]["path"])
    done = record["result"]
    _console().print(f"[bold]{record['method']}[/] on {data}: {done['global_step']:,} steps, "
                     f"training loss {done['training_loss']:.4f}; model and curate-train.json in "
                     f"{result.output_dir}")


@_training_command("sft")
def train_sft(**given: Any) -> None:
    """Supervised fine-tuning of --model on DATA (a release folder, or a dataset file or
    folder with `messages`, `prompt`/`completion` or `text`) with TRL's SFTTrainer.
    Conversational data trains on the assistant tokens when the chat template marks them;
    image_text data takes a vision-language model with a processor."""
    _run_training("sft", **given)


@_training_command("dpo")
def train_dpo(**given: Any) -> None:
    """Direct preference optimisation of --model on DATA (a release folder, or a dataset
    with `prompt`, `chosen` and `rejected`) with TRL's DPOTrainer; the reference model is
    a frozen copy of --model."""
    _run_training("dpo", **given)


@train.command("merge")
@click.option("--method", type=click.Choice(["linear", "task_arithmetic", "ties", "dare_ties"]),
              default="dare_ties", show_default=True, help="mergekit merge method.")
@click.option("--base", "base_model", default=None,
              help="Base model the task vectors are taken against (task_arithmetic, ties, dare_ties).")
@click.option("--model", "models", multiple=True, required=True,
              help="A model to merge: hub name or local folder (repeatable).")
@click.option("--weight", "weights", multiple=True, type=float, required=True,
              help="Weight of each --model, in the same order (repeatable).")
@click.option("--density", "densities", multiple=True, type=click.FloatRange(0, 1, min_open=True),
              help="Share of each --model's task vector kept (ties, dare_ties), in --model order.")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default="float32",
              show_default=True, help="dtype mergekit computes and writes in.")
@click.option("--seed", type=int, default=None, help="Seed of DARE's random drop.")
@click.option("--out", "output_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for mergekit.yaml and the merged model.")
@click.option("--config-only", is_flag=True,
              help="Write mergekit.yaml (checked by mergekit) without merging.")
def train_merge(method: str, base_model: str | None, models: tuple[str, ...], weights: tuple[float, ...],
                densities: tuple[float, ...], dtype: str, seed: int | None, output_dir: str,
                config_only: bool) -> None:
    """Merge fine-tuned models with mergekit (DARE-TIES by default, e.g. a domain SFT
    model with the instruct model over their base): writes OUT/mergekit.yaml, then runs
    mergekit on the CPU (pip install 'curate[merge]')."""
    from curate.config import validate_model
    from curate.train.merge import MergeConfig, run_merge, write_merge_config

    config = validate_model(MergeConfig, {
        "method": method, "base_model": base_model, "models": list(models), "weights": list(weights),
        "densities": list(densities) or None, "dtype": dtype, "seed": seed}, where="options")
    if config_only:
        _console().print(f"mergekit config written to {write_merge_config(config, output_dir)}")
        return
    _console().print(f"[bold]merged[/] {len(models)} models ({method}) into {run_merge(config, output_dir)}")



# -- rag -----------------------------------------------------------------------------------


@main.group(cls=_Group, name="rag")
def rag_() -> None:
    """Retrieval: a contamination-safe index of solved examples for MedPrompt-style few-shot
    prompts (`curate eval mcqa --retrieval INDEX`)."""


_rag_input = click.argument("input_spec", metavar="RELEASE_OR_SOURCE")
_rag_out = click.option("--out", required=True, type=click.Path(file_okay=False),
                        help="The index folder: created, or appended to (records it holds are not "
                             "embedded again).")
_rag_source = click.option("--source", default=None,
                           help="A file INPUT: read it with this catalog entry's mapping.")


@rag_.command("index")
@_rag_input
@_rag_out
@_rag_source
@catalog_option
@data_root_option
@config_options(IndexConfig, at=["index"])
def rag_index(**_: Any) -> None:
    """Index the multiple-choice records of RELEASE_OR_SOURCE (a release folder, a file, or a
    catalog source or benchmark name) as they are: a release's synthetic chains of thought
    are kept with their records. Questions are embedded (MiniLM by default)."""
    from curate.config import validate_model
    from curate.options import given, settings
    from curate.rag.build import index_input

    context = click.get_current_context()
    config = validate_model(IndexConfig, settings(context).get("index", {}), where="options")
    rest = given(context)
    result = index_input(rest.pop("input_spec"), rest.pop("out"), config, **rest)
    _print_rag_build(result)


@rag_.command("cot")
@_rag_input
@_rag_out
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), default=None,
              help="Completion cache [default: $CURATE_CACHE_DIR/synth or ~/.cache/curate/synth].")
@_rag_source
@catalog_option
@data_root_option
@union_options(GENERATORS, discriminator="backend", at=["cot", "generator"],
               rename={"batch_size": "generator_batch_size"})
@config_options(CotIndexConfig, at=["cot"], skip=["generator", "sources"])
@config_options(IndexConfig, at=["index"])
def rag_cot(**_: Any) -> None:
    """Build the example database MedPrompt's way: each multiple-choice record of
    RELEASE_OR_SOURCE gets a chain of thought from synth_cot_v1 (gold answer withheld by
    default), and only those whose answer matches the gold are indexed."""
    from curate.config import validate_model
    from curate.options import given, settings
    from curate.rag.build import index_input

    context = click.get_current_context()
    options = settings(context)
    cot = validate_model(CotIndexConfig, options.get("cot", {}), where="options")
    config = validate_model(IndexConfig, options.get("index", {}), where="options")
    rest = given(context)
    result = index_input(rest.pop("input_spec"), rest.pop("out"), config, cot=cot, **rest)
    stats = result.part.get("stats", {}).get("synth_cot", {})
    if stats.get("offline_backend"):
        _console().print("[bold]offline backend: template text for tests and demos; not a model's "
                         "reasoning[/]")
    if stats:
        _console().print(f"synth_cot_v1: {stats['synthetic']} verified of {stats['rows']}; "
                         f"rejected {stats['rejected'] or 'none'}")
    _print_rag_build(result)


def _print_rag_build(result: Any) -> None:
    part = result.part
    rate = part.get("records_per_second")
    _console().print(f"{result.index.path}: {part['added']} records added from {part['input']} "
                     f"({part['already_indexed']} already indexed"
                     f"{f', {rate:,.0f} records/s embedded' if rate else ''}); "
                     f"{len(result.index)} records in the index")


@rag_.command("search")
@click.argument("index", type=click.Path(exists=True, file_okay=False))
@click.argument("queries", nargs=-1, required=True)
@click.option("--k", type=click.IntRange(min=1), default=5, show_default=True, help="Records per query.")
@click.option("--search", type=click.Choice(["numpy", "faiss", "hnsw"]), default="numpy", show_default=True,
              help="`numpy` exact, `faiss` exact (extra rag), `hnsw` approximate.")
def rag_search(index: str, queries: tuple[str, ...], k: int, search: str) -> None:
    """Print the K records of INDEX most similar to each query, with their cosine."""
    from rich.table import Table

    from curate.rag.index import Index

    found = Index.open(index, search=search).search(list(queries), k)  # type: ignore[arg-type]
    console = _console()
    for query, hits in zip(queries, found, strict=True):
        table = Table("rank", "score", "id", "source", "question", "cot", title=query, title_justify="left")
        for rank, hit in enumerate(hits, start=1):
            table.add_row(str(rank), f"{hit.score:.3f}", hit.id[:12], str(hit.record.get("source")),
                          hit.record["question"][:80], "yes" if hit.record.get("cot") else "no")
        console.print(table)


@rag_.command("check")
@click.argument("index", type=click.Path(exists=True, file_okay=False))
@click.argument("benchmarks", nargs=-1, required=True)
@catalog_option
@data_root_option
@config_options(DecontamConfig, at=["decontam"], skip=["benchmarks"])
def rag_check(**_: Any) -> None:
    """Check INDEX against BENCHMARKS (catalog names) with the decontamination stage: the
    records `curate eval mcqa --retrieval` would exclude, per benchmark and tier."""
    from curate.config import validate_model
    from curate.options import given, settings
    from curate.rag.build import check_benchmarks

    context = click.get_current_context()
    config = validate_model(DecontamConfig, settings(context).get("decontam", {}), where="options")
    rest = given(context)
    check = check_benchmarks(rest.pop("index"), list(rest.pop("benchmarks")), config, **rest)
    summary = check.summary()
    console = _console()
    console.print(f"{summary['checked']} records checked: {summary['excluded']} contaminated "
                  f"{summary['by_benchmark'] or ''} {summary['by_tier'] or ''}, {summary['kept']} kept")
    for entry in summary["records"][:20]:
        console.print(f"  {entry['id'][:12]} = {entry['item']} ({entry['tier']}, {entry['field']})")

# -- publish ---------------------------------------------------------------------------------


@release.command("verify")
@click.argument("path", type=click.Path(exists=True))
def release_verify(path: str) -> None:
    """Check the release at PATH file by file against its manifest's sha256 hashes; list
    every changed, cut, missing or extra file and folder (exit 1), or say it is intact."""
    from curate.read.releases import Release, verify_release

    problems = verify_release(path)
    if problems:
        click.echo(f"release {path} does not match its manifest ({len(problems)} differences):", err=True)
        for problem in problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(1)
    manifest = Release.open(path).manifest
    _console().print(f"release {manifest['name']} {manifest['version']} at {path}: all "
                     f"{len(manifest['files'])} files match their sha256 in manifest.json, "
                     "nothing else is there")


if __name__ == "__main__":
    main()
