"""`curate rag index|cot|search|check`."""

from __future__ import annotations

from typing import Any

import click

from curate.cli import Group
from curate.cli.commands.catalog import catalog_options
from curate.cli.console import json_option, show
from curate.cli.options import config_options, given, settings, union_options
from curate.cli.views import rag as view
from curate.curation.config import DecontamConfig
from curate.rag.config import (
    CheckFiles,
    CotIndexConfig,
    GuardConfig,
    IndexConfig,
    IndexFiles,
    PassageConfig,
    QueryConfig,
    SearchConfig,
)
from curate.synth.config import GENERATORS

input_argument = click.argument("input_spec", metavar="RELEASE_OR_SOURCE")


def guard_options(at: list[str]) -> Any:
    """The guard's options (``GuardConfig``: the similarity threshold and the decontamination
    tiers), the same on every command that retrieves or checks."""
    def decorate(command: Any) -> Any:
        command = config_options(DecontamConfig, at=[*at, "decontam"],
                                 skip=["benchmarks", "reject_source_above"])(command)
        return config_options(GuardConfig, at=at, only=["max_similarity", "min_options_similarity"])(command)
    return decorate


@click.group(cls=Group)
def rag() -> None:
    """Retrieval: a contamination-safe index of solved examples for MedPrompt-style few-shot
    prompts (`curate eval mcqa --retrieval INDEX`).

    One guard on every path: `rag check`, `rag search --benchmark` and `eval mcqa
    --retrieval` take the same guard options (decontamination tiers, `--max-similarity`,
    `--min-options-similarity`)."""


@rag.command("index")
@input_argument
@config_options(IndexFiles, at=["files"], skip=["cache_dir"])
@catalog_options()
@config_options(IndexConfig, at=["index"])
@json_option
def rag_index(input_spec: str, as_json: bool, **_: Any) -> None:
    """Index the multiple-choice records of RELEASE_OR_SOURCE (a release folder, a file, or a
    catalog source name) as they are: a release's synthetic chains of thought are kept
    with their records. Questions are embedded (MiniLM by default). A benchmark is refused
    unless `--allow-benchmark`."""
    from curate.config import validate_model
    from curate.rag.build import index_input

    options = settings(click.get_current_context())
    config = validate_model(IndexConfig, options.get("index", {}), where="options")
    show(index_input(input_spec, config=config, **options["files"], **options.get("catalog", {})),
         as_json, view.indexed)


@rag.command("cot")
@input_argument
@config_options(IndexFiles, at=["files"], rename={"cache_dir": "cache"})
@catalog_options()
@union_options(GENERATORS, discriminator="backend", at=["cot", "generator"],
               rename={"batch_size": "generator_batch_size"})
@config_options(CotIndexConfig, at=["cot"], skip=["generator", "sources"])
@config_options(IndexConfig, at=["index"])
@json_option
def rag_cot(input_spec: str, as_json: bool, **_: Any) -> None:
    """Build the example database MedPrompt's way: each multiple-choice record of
    RELEASE_OR_SOURCE gets a chain of thought from synth_cot_v1 (gold answer withheld by
    default), and only those whose answer matches the gold are indexed."""
    from curate.config import validate_model
    from curate.rag.build import index_input

    options = settings(click.get_current_context())
    cot = validate_model(CotIndexConfig, options.get("cot", {}), where="options")
    config = validate_model(IndexConfig, options.get("index", {}), where="options")
    show(index_input(input_spec, config=config, cot=cot, **options["files"], **options.get("catalog", {})),
         as_json, view.indexed)


@rag.command("passages")
@input_argument
@config_options(IndexFiles, at=["files"], skip=["cache_dir"])
@catalog_options()
@config_options(PassageConfig, at=["passages"])
@config_options(IndexConfig, at=["index"])
@json_option
def rag_passages(input_spec: str, as_json: bool, **_: Any) -> None:
    """Index the text of RELEASE_OR_SOURCE (a catalog source or a file; a QA source's answers
    by default) as passages for open questions: chunked into `--chunk-words` word windows
    with ids and provenance, embedded (MiniLM by default). `curate rag search INDEX QUESTION
    --grounded` builds the grounded prompt; the same guard applies (`--benchmark`)."""
    from curate.config import validate_model
    from curate.rag.build import index_passages

    options = settings(click.get_current_context())
    config = validate_model(IndexConfig, options.get("index", {}), where="options")
    passages = validate_model(PassageConfig, options.get("passages", {}), where="options")
    show(index_passages(input_spec, config=config, passages=passages, **options["files"],
                        **options.get("catalog", {})), as_json, view.indexed)


@rag.command("search")
@click.argument("index", type=click.Path(exists=True, file_okay=False))
@click.argument("queries", nargs=-1, required=True)
@config_options(QueryConfig, at=["query"], rename={"benchmarks": "benchmark"})
@config_options(SearchConfig, at=["search"], only=["search"])
@catalog_options()
@guard_options(["guard"])
@json_option
def rag_search(index: str, queries: tuple[str, ...], as_json: bool, **_: Any) -> None:
    """Print the K records of INDEX most similar to each query, with their cosine. With
    `--benchmark NAME`, INDEX is opened for those benchmarks: what the guard finds in them
    is never returned."""
    from curate.config import validate_model
    from curate.rag.build import search_index

    options = settings(click.get_current_context())
    guard = validate_model(GuardConfig, options.get("guard", {}), where="options")
    show(search_index(index, queries, guard=guard, **options.get("query", {}), **options.get("search", {}),
                      **options.get("catalog", {})), as_json, view.found)


@rag.command("check")
@click.argument("index", type=click.Path(exists=True, file_okay=False))
@click.argument("benchmarks", nargs=-1, required=True)
@config_options(CheckFiles, at=["files"])
@catalog_options()
@guard_options(["guard"])
@json_option
def rag_check(index: str, benchmarks: tuple[str, ...], as_json: bool, **_: Any) -> None:
    """Check INDEX against BENCHMARKS (catalog names) with the guard (the decontamination
    stage's tiers, then the similarity guard): the records `curate eval mcqa --retrieval`
    and `curate rag search --benchmark` exclude, per benchmark and tier; `--out` lists
    every one with its tier, score and item."""
    from curate.config import validate_model
    from curate.rag.build import check_benchmarks

    options = settings(click.get_current_context())
    guard = validate_model(GuardConfig, options.get("guard", {}), where="options")
    check = check_benchmarks(index, list(given(click.get_current_context())["benchmarks"]), guard,
                             **options.get("catalog", {}))
    out = options.get("files", {}).get("out")
    if out is not None:
        check.write(out)
    show(check, as_json, view.checked)
