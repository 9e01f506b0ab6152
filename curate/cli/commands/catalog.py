"""`curate catalog ls|validate`."""

from __future__ import annotations

import sys
from typing import Any

import click

from curate.catalog import CatalogConfig
from curate.cli import Group
from curate.cli.console import json_option, show
from curate.cli.options import config_options, given, settings
from curate.cli.views import catalog as view


def catalog_options(*fields: str) -> Any:
    """The ``CatalogConfig`` options ``fields`` (default: `--catalog DIR` and `--data-root DIR`,
    what every command that reads catalog entries and their data takes), under ``catalog``."""
    return config_options(CatalogConfig, at=["catalog"], only=fields or ["catalog_dirs", "data_root"],
                          rename={"catalog_dirs": "catalog"})


@click.group(cls=Group)
def catalog() -> None:
    """List and check catalog entries (sources, benchmarks, mixes)."""


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
