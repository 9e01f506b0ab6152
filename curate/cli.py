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
    CleanConfig, DecontamConfig, DiversityConfig, ExactDedupConfig, MinHashConfig,
    NearDedupConfig, QualityConfig,
)
from curate.errors import CurateError
from curate.options import config_options, union_options
from curate.synth.config import GENERATORS, SynthCotConfig

if TYPE_CHECKING:
    from rich.console import Console

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
batch_option = click.option(
    "--batch-rows", type=click.IntRange(min=1), default=20_000, show_default=True,
    help="Source rows per ingested shard (bounds memory).",
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
def catalog_validate(paths: tuple[str, ...], catalog_dirs: tuple[str, ...],
                     data_root: str | None) -> None:
    """Check catalog entries: the schema (unknown keys are errors), that the licence is
    set, that local files exist, and that every mapped column exists in the first rows.

    PATHS are entry YAML files to check; with none, every entry of the catalogs is checked.
    Hub entries are checked for schema and pinned revision only (no download).
    """
    from curate.catalog import Catalog, Recipe, Source, load_model, read_yaml, resolve_data_root
    from curate.ingest.check import check_source

    root = resolve_data_root(data_root)
    cat = Catalog.load(catalog_dirs)
    entries: list[tuple[Source | Recipe, Path]] = []
    if paths:
        for path in map(Path, paths):
            data = read_yaml(path)
            model = Recipe if isinstance(data, dict) and "sources" in data else Source
            entries.append((load_model(model, path), path))
    else:
        entries += [(e, cat.files[("sources", n)]) for n, e in cat.sources.items()]
        entries += [(e, cat.files[("benchmarks", n)]) for n, e in cat.benchmarks.items()]
        entries += [(e, cat.files[("mixes", n)]) for n, e in cat.mixes.items()]
    console = _console()
    failures = 0
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
        mark = "[green]ok[/]  " if ok else "[red]FAIL[/]"
        console.print(f"{mark} {entry.name:<24} {message}")
    console.print(f"{len(entries) - failures} of {len(entries)} entries valid")
    if failures:
        sys.exit(1)


# -- runs -----------------------------------------------------------------------------------


@contextmanager
def _progress(enabled: bool) -> Iterator[tuple[Callable[[str, int], None] | None,
                                              Callable[[str, int, int], None] | None]]:
    """Rich progress callbacks for ingestion (rows) and stages (shards)."""
    if not enabled:
        yield None, None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=True, console=_console(stderr=True)) as bar:
        tasks: dict[str, Any] = {}

        def ingest(source: str, rows: int) -> None:
            if source not in tasks:
                tasks[source] = bar.add_task(f"ingest {source}", total=None)
            bar.advance(tasks[source], rows)

        def stage(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(f"stage {name}", total=total)
            bar.update(tasks[name], completed=done)

        yield ingest, stage


def _open(recipe: str, catalog_dirs: tuple[str, ...], data_root: str | None, runs_dir: str,
          run_id: str | None) -> Run:
    from curate.pipeline.run import open_run

    return open_run(recipe, catalog_dirs=catalog_dirs, data_root=data_root, runs_dir=runs_dir,
                    run_id=run_id)


@main.command()
@click.argument("recipe")
@catalog_option
@data_root_option
@runs_option
@run_id_option
@batch_option
def ingest(recipe: str, catalog_dirs: tuple[str, ...], data_root: str | None, runs_dir: str,
           run_id: str | None, batch_rows: int) -> None:
    """Read every source of RECIPE (a YAML path or a mix name) into the run store.

    Bad rows are quarantined with their reason; an interrupted ingestion resumes.
    """
    from curate.pipeline.run import ingest_run
    from curate.pipeline.summary import inspect_run

    run = _open(recipe, catalog_dirs, data_root, runs_dir, run_id)
    with _progress(sys.stderr.isatty()) as (on_rows, _):
        result = ingest_run(run, batch_rows=batch_rows, progress=on_rows)
    _print_summary(inspect_run(run.store.root))
    if result.failed:
        sys.exit(1)


@main.command("build-mix")
@click.argument("recipe")
@click.option("--out", "releases_dir", type=click.Path(file_okay=False), default="releases",
              show_default=True, help="Folder of releases (<out>/<recipe>/<version>).")
@click.option("--dry-run", is_flag=True,
              help="Print the resolved plan and the feasibility check; build nothing.")
@catalog_option
@data_root_option
@runs_option
@run_id_option
@batch_option
def build_mix(recipe: str, releases_dir: str, dry_run: bool, catalog_dirs: tuple[str, ...],
              data_root: str | None, runs_dir: str, run_id: str | None, batch_rows: int) -> None:
    """Build RECIPE (a YAML path or a mix name) end to end: ingest every source, run every
    stage, allocate the mix to its target shares and write the release.

    Finished work is reused: building again resumes, a changed threshold re-runs only
    that stage's decision, and an unchanged recipe leaves its release as it is.
    """
    from curate.pipeline.build import build_mix as build
    from curate.pipeline.build import plan_mix

    run = _open(recipe, catalog_dirs, data_root, runs_dir, run_id)
    if dry_run:
        _print_plan(plan_mix(run))
        return
    with _progress(sys.stderr.isatty()) as (on_rows, on_stage):
        result = build(run, releases_dir=releases_dir, batch_rows=batch_rows,
                       ingest_progress=on_rows, stage_progress=on_stage)
    _report_build(result)
    if result.ingest.failed:
        sys.exit(1)


def _report_build(result: BuildResult) -> None:
    from curate.pipeline.summary import inspect_run

    _print_summary(inspect_run(result.run.store.root))
    if result.synth is not None:
        _print_synth_stats(result.synth)
    if result.ingest.failed:
        _console().print("[red]stages did not run: a source failed to ingest[/]")
    if result.release is not None:
        manifest = result.release.manifest
        if not manifest["contamination"] and manifest["benchmarks"]:
            _console().print(f"Contamination: no training row matched an item of "
                             f"{', '.join(manifest['benchmarks'])}")
        _print_release(manifest, f"release {result.release.path} ({result.release.status})")


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
    console.print(table)
    modality = ", ".join(f"{m} {v['loss_tokens_share']:.1%} of loss tokens ({v['rows']:,} rows)"
                         for m, v in manifest["modality"].items())
    console.print(f"modality: {modality}")


def _print_plan(plan: dict[str, Any]) -> None:
    import yaml

    console = _console()
    console.print(yaml.safe_dump(plan["recipe"], sort_keys=False).rstrip())
    console.print(f"[bold]feasibility:[/] {plan['feasibility']}")


# -- releases ----------------------------------------------------------------------------------


@main.group(cls=_Group)
def release() -> None:
    """List, show, compare, export and publish releases."""


@release.command("ls")
@click.option("--root", type=click.Path(file_okay=False), default="releases", show_default=True,
              help="Folder of releases.")
def release_ls(root: str) -> None:
    """List the releases under ROOT (name, version, rows, loss tokens)."""
    from rich.table import Table

    from curate.mixes.release import list_releases

    table = Table("name", "version", "rows", "loss tokens", "path")
    for r in list_releases(root):
        table.add_row(r["name"], r["version"], f"{r['rows']:,}", f"{r['loss_tokens']:,}", r["path"])
    _console().print(table)


@release.command("show")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
def release_show(path: str) -> None:
    """Print a release's composition, curation counts and contamination."""
    from curate.mixes.release import read_manifest

    manifest = read_manifest(path)
    _print_release(manifest, f"{manifest['name']} {manifest['version']}")
    for stage in manifest["stages"]:
        reasons = ", ".join(f"{r} {n:,}" for r, n in stage["reasons"].items()) or "nothing removed"
        _console().print(f"{stage['stage']}: {stage['rows']:,} in, {stage['kept']:,} kept ({reasons})")
    if manifest["contamination"]:
        _print_contamination(manifest["contamination"])


@release.command("diff")
@click.argument("a", type=click.Path(exists=True, file_okay=False))
@click.argument("b", type=click.Path(exists=True, file_okay=False))
def release_diff(a: str, b: str) -> None:
    """What changed from release A to release B: rows added and removed by source (with
    B's reason for each removal) and the composition side by side."""
    from rich.table import Table

    from curate.mixes.release import diff_releases

    diff = diff_releases(a, b)
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
    from curate.mixes.release import export_release

    _console().print(f"saved {export_release(path, out)}")


@release.command("push")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("--repo", required=True, help="Hugging Face dataset repository (owner/name).")
@click.option("--dry-run", is_flag=True, help="List what would be uploaded; send nothing.")
def release_push(path: str, repo: str, dry_run: bool) -> None:
    """Upload the release to a Hugging Face dataset repo and tag it v<version>.

    Offline (HF_HUB_OFFLINE=1) it stops at a dry run listing what would be uploaded.
    """
    from curate.mixes.release import push_release

    result = push_release(path, repo, dry_run=dry_run)
    console = _console()
    if not result["uploaded"]:
        console.print(f"{result['reason']}: would upload {len(result['files'])} files to "
                      f"datasets/{repo} and tag {result['tag']}")
        for name in result["files"]:
            console.print(f"  {name}")
    else:
        console.print(f"uploaded to datasets/{repo} at {result['commit']}, tagged {result['tag']}")


input_argument = click.argument("input_path", metavar="INPUT",
                                type=click.Path(exists=True, dir_okay=False))
out_option = click.option(
    "--out", required=True, type=click.Path(),
    help="A .parquet file, or a folder (decisions.parquet inside); reports go beside it.",
)
source_option = click.option(
    "--source", default=None,
    help="Read INPUT with this catalog entry's mapping [default: INPUT has a `messages` column].",
)


def one_file_command(name: str) -> Callable[[Callable[..., None]], click.Command]:
    """A command that runs stages over one file: INPUT, --out, --source, --catalog,
    --data-root, then the stages' options (generated from their configs below it)."""
    def decorate(function: Callable[..., None]) -> click.Command:
        for decorator in reversed((input_argument, out_option, source_option, catalog_option,
                                   data_root_option)):
            function = decorator(function)
        return main.command(name)(function)

    return decorate


def _run_on_file(**_: Any) -> None:
    """The body of every one-file command: its stages' options, gathered from the
    generated options, over INPUT; then what it wrote and removed."""
    from curate.options import given, settings
    from curate.pipeline.adhoc import run_on_file

    context = click.get_current_context()
    stages = settings(context)
    rest = given(context)
    benchmarks = stages.get("decontam", {}).get("benchmarks", ())
    _print_file_result(run_on_file(rest.pop("input_path"), rest.pop("out"), stages,
                                   benchmarks=benchmarks, **rest))


@one_file_command("dedup")
@config_options(ExactDedupConfig, at=["exact_dedup"])
@config_options(MinHashConfig, at=["near_dedup", "minhash"], skip=["min_recall"])
@config_options(NearDedupConfig, at=["near_dedup"], skip=["minhash"])
def dedup(**options: Any) -> None:
    """Exact and near-duplicate dedup of one file (MinHash LSH, verified by exact Jaccard).

    OUT holds every row of INPUT with `row`, `id`, `keep`, `reason` (`duplicate_of:<id>`,
    `near_duplicate_of:<id>`) and the score columns.
    """
    _run_on_file(**options)


@one_file_command("decontaminate")
@config_options(DecontamConfig, at=["decontam"], rename={"benchmarks": "benchmark"},
                required=["benchmarks"])
def decontaminate(**options: Any) -> None:
    """Find benchmark items inside one file: n-gram, MinHash and (optionally) embedding tiers.

    Give `--benchmark` once per benchmark catalog entry. OUT holds every row of INPUT with
    `row`, `id`, `keep`, `reason` (`contaminated:<benchmark>`,
    `source_rejected:contamination`) and each tier's best benchmark item and score; the
    contamination report goes beside it.
    """
    _run_on_file(**options)


@one_file_command("clean")
@config_options(CleanConfig, at=["clean"])
def clean(**options: Any) -> None:
    """Repair text (ftfy, whitespace) and flag weak records in one file (clean_v1).

    OUT holds every row of INPUT with `row`, `id`, `keep`, `reason` (`empty_answer`,
    `short_answer`, `answer_equals_question`, `refusal`, `repetitive`, `non_text`) and
    the score columns; `clean_changed` says whether repair changed the text (a release
    built with the stage carries the repaired turns).
    """
    _run_on_file(**options)


@one_file_command("score")
@config_options(QualityConfig, at=["quality"])
def score(**options: Any) -> None:
    """Score one file with DEITA's complexity and quality scorers (quality_v1).

    OUT holds every row of INPUT with `row`, `id`, `keep`, `reason` (`low_quality`) and
    `complexity`, `quality`, `deita_score` (sum over turns of complexity x quality) and
    the per-turn scores. A scorer whose scores collapse to a constant fails with the
    spread it measured.
    """
    _run_on_file(**options)


@one_file_command("diversify")
@config_options(DiversityConfig, at=["diversity"])
def diversify(**options: Any) -> None:
    """Diversity-aware selection over one file (diversity_v1, DEITA's filter).

    Records are embedded and visited in order; one is kept only if its cosine to every
    kept record is at most TAU. OUT holds every row of INPUT with `row`, `id`, `keep`,
    `reason` (`too_similar_to:<id>`, `over_budget`) and `diversity_max_sim`,
    `diversity_nearest`, `diversity_rank`.
    """
    _run_on_file(**options)


def _print_file_result(result: Any) -> None:
    from rich.table import Table

    import polars as pl

    console = _console()
    console.print(f"wrote {result.out}: {result.rows:,} rows, {result.kept:,} kept")
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
    from curate.catalog import validate_model
    from curate.options import given, settings
    from curate.synth.cot import enhance_file

    context = click.get_current_context()
    config = validate_model(SynthCotConfig, settings(context), where="options")
    rest = given(context)
    result = enhance_file(rest.pop("input_path"), rest.pop("out"), config=config, **rest)
    console = _console()
    console.print(f"wrote {result.synthetic}; rejected parents -> {result.rejected}")
    _print_synth_stats(result.stats)


def _print_synth_stats(stats: dict[str, Any]) -> None:
    console = _console()
    generator = stats["generator"]
    console.print(f"synth_cot: {stats['synthetic']:,} synthetic of {stats['rows']:,} rows; "
                  f"generator {generator['backend']}:{generator['model']}")
    if stats["offline_backend"]:
        console.print("[bold]offline backend: template text for tests and demos, not training data[/]")
    console.print(f"rejected {dict(stats['rejected'])}; attempts {stats['attempts']}; "
                  f"requests sent {stats['requests']['sent']:,}, cached {stats['requests']['cached']:,}; "
                  f"{stats['completion_tokens_per_row']:.1f} completion tokens per row")


@main.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False))
def inspect(run: str) -> None:
    """Print what RUN (a folder runs/<recipe>/<run-id>) holds: rows per source,
    quarantined rows by reason, and each stage's decisions by reason."""
    from curate.pipeline.summary import inspect_run

    _print_summary(inspect_run(run))


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


if __name__ == "__main__":
    main()
