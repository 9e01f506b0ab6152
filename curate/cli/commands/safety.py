"""`curate safety pairs`."""

from __future__ import annotations

from typing import Any

import click

from curate.catalog import CatalogConfig
from curate.cli import Group
from curate.cli.commands.catalog import catalog_options
from curate.cli.console import json_option, show
from curate.cli.options import config_options, settings
from curate.cli.views import safety as view
from curate.synth.safety_pairs import PairsFiles, SafetyPairsConfig


@click.group(cls=Group)
def safety() -> None:
    """Red-teaming safety data: preference pairs for DPO from adversarial prompts."""


@safety.command("pairs")
@config_options(PairsFiles, at=["files"], rename={"config_path": "config"})
@catalog_options()
@config_options(SafetyPairsConfig, at=["pairs"], rename={
    "sources": "source", "styles": "style", "test_topics": "test_topic", "test_styles": "test_style"})
@json_option
def safety_pairs(as_json: bool, **_: Any) -> None:
    """Build safety preference pairs: adversarial prompts from catalogs (AdvBench, HarmBench)
    tagged by topic, attacked in jailbreak styles, answered by a target and a reference
    model, judged in the Llama Guard 3 format; a pair is kept when the reference answer is
    judged safe and the target answer unsafe. Whole topics and styles are held out for
    the test split. Options given here override the --config file.
    """
    from curate.catalog import Catalog
    from curate.config import read_config
    from curate.synth.safety_pairs import build_pairs

    options = settings(click.get_current_context())
    files = PairsFiles.model_validate(options["files"])
    where = CatalogConfig.model_validate(options.get("catalog", {}))
    config = read_config(SafetyPairsConfig, files.config_path, options.get("pairs", {}))
    show(build_pairs(config, files.out, catalog=Catalog.load(where.catalog_dirs), data_root=where.data_root),
         as_json, view.pairs)
