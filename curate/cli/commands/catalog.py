"""`curate catalog ls|validate|add`."""

from __future__ import annotations

import sys
from typing import Any

import click

from curate.catalog import CatalogConfig
from curate.cli import Group
from curate.cli.console import json_option, show
from curate.cli.options import config_options, given, settings
from curate.cli.views import catalog as view
from curate.config import validate_model
from curate.ingest.check import NewEntry


def catalog_options(*fields: str) -> Any:
    """The ``CatalogConfig`` options ``fields`` (default: `--catalog DIR` and `--data-root DIR`,
    what every command that reads catalog entries and their data takes), under ``catalog``."""
    return config_options(CatalogConfig, at=["catalog"], only=fields or ["catalog_dirs", "data_root"],
                          rename={"catalog_dirs": "catalog"})


@click.group(cls=Group)
def catalog() -> None:
    """List, check and add catalog entries (sources, benchmarks, mixes)."""


@catalog.command("ls")
@catalog_options("catalog_dirs")
@json_option
def catalog_ls(as_json: bool, **_: Any) -> None:
    """List every source, benchmark and mix recipe of the catalogs."""
    from curate.catalog import Catalog

    options = CatalogConfig.model_validate(settings(click.get_current_context()).get("catalog", {}))
    show(Catalog.load(options.catalog_dirs), as_json, view.catalog_listing)


@catalog.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@catalog_options()
@json_option
def catalog_validate(paths: tuple[str, ...], as_json: bool, **_: Any) -> None:
    """Check catalog entries: the schema (unknown keys are errors), that the licence is
    set, that local files exist, and that every mapped column exists in the first rows.

    PATHS are entry YAML files to check; with none, every entry of the catalogs is checked.
    Hub entries are checked for schema and pinned revision only (no download).
    """
    from curate.ingest.check import check_catalog

    context = click.get_current_context()
    result = show(check_catalog(given(context)["paths"], **settings(context).get("catalog", {})), as_json,
                  view.catalog_check)
    if result.valid < len(result.checks):
        sys.exit(1)


@catalog.command("add")
@click.argument("name")
@click.argument("path", required=False)
@config_options(NewEntry, skip=["name", "path"], rename={"catalog_dir": "catalog"},
                required=["license", "domain"])
@catalog_options("data_root")
@json_option
def catalog_add(name: str, path: str | None, as_json: bool, **_: Any) -> None:
    """Write a source entry NAME (catalogs/sources/NAME.yaml) for the file PATH, or for a
    pinned hub dataset (--hf REPO --revision SHA), then check it against its first rows.

    A file's turns are read from the columns given (--question/--answer, --messages), else
    from a `messages` column or the first pair it holds of question/answer,
    instruction/output, instruction/response, prompt/response, prompt/completion,
    input/output, query/response. The path is written relative to the data root when the
    file lies under it. An existing entry is never overwritten.
    """
    from curate.catalog import resolve_data_root
    from curate.ingest.check import add_entry

    options = settings(click.get_current_context())
    new = validate_model(NewEntry, {**{k: v for k, v in options.items() if k != "catalog"}, "name": name,
                                    **({"path": path} if path else {})}, where="the command line")
    root = resolve_data_root(options.get("catalog", {}).get("data_root"))
    show(add_entry(new, data_root=root), as_json, view.added)
