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
from curate.rag.config import CotIndexConfig, IndexConfig, IndexFiles, QueryConfig, SearchConfig
from curate.synth.config import GENERATORS

input_argument = click.argument("input_spec", metavar="RELEASE_OR_SOURCE")


@click.group(cls=Group)
def rag() -> None:
    """Retrieval: a contamination-safe index of solved examples for MedPrompt-style few-shot
    prompts (`curate eval mcqa --retrieval INDEX`)."""


@rag.command("index")
@input_argument
@config_options(IndexFiles, at=["files"], skip=["cache_dir"])
@catalog_options()
@config_options(IndexConfig, at=["index"])
@json_option
def rag_index(input_spec: str, as_json: bool, **_: Any) -> None:
    """Index the multiple-choice records of RELEASE_OR_SOURCE (a release folder, a file, or a
    catalog source or benchmark name) as they are: a release's synthetic chains of thought
    are kept with their records. Questions are embedded (MiniLM by default)."""
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


@rag.command("search")
@click.argument("index", type=click.Path(exists=True, file_okay=False))
@click.argument("queries", nargs=-1, required=True)
@config_options(QueryConfig, at=["query"])
@config_options(SearchConfig, at=["search"], only=["search"])
@json_option
def rag_search(index: str, queries: tuple[str, ...], as_json: bool, **_: Any) -> None:
    """Print the K records of INDEX most similar to each query, with their cosine."""
    from curate.rag.index import search_index

    options = settings(click.get_current_context())
    show(search_index(index, queries, **options.get("query", {}), **options.get("search", {})), as_json,
         view.found)


@rag.command("check")
@click.argument("index", type=click.Path(exists=True, file_okay=False))
@click.argument("benchmarks", nargs=-1, required=True)
@catalog_options()
@config_options(DecontamConfig, at=["decontam"], skip=["benchmarks"])
@json_option
def rag_check(index: str, benchmarks: tuple[str, ...], as_json: bool, **_: Any) -> None:
    """Check INDEX against BENCHMARKS (catalog names) with the decontamination stage: the
    records `curate eval mcqa --retrieval` would exclude, per benchmark and tier."""
    from curate.config import validate_model
    from curate.rag.build import check_benchmarks

    options = settings(click.get_current_context())
    config = validate_model(DecontamConfig, options.get("decontam", {}), where="options")
    show(check_benchmarks(index, list(given(click.get_current_context())["benchmarks"]), config,
                          **options.get("catalog", {})), as_json, view.checked)
