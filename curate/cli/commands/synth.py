"""`curate synth cot`."""

from __future__ import annotations

from typing import Any

import click

from curate.cli import Group
from curate.cli.commands.catalog import catalog_options
from curate.cli.commands.files import input_argument
from curate.cli.console import json_option, progress_bars, show
from curate.cli.options import config_options, given, settings, union_options
from curate.cli.views import synth as view
from curate.synth.config import GENERATORS, CotFileOptions, SynthCotConfig

backend_options = union_options(GENERATORS, discriminator="backend", at=["cot", "generator"],
                                rename={"batch_size": "generator_batch_size"})
"""The generation backend and its options (``--backend`` and the fields of each backend)."""


@click.group(cls=Group)
def synth() -> None:
    """Generate synthetic training data with a pluggable backend."""


@synth.command("cot")
@input_argument
@config_options(CotFileOptions, at=["file"], rename={"cache_dir": "cache"})
@catalog_options()
@backend_options
@config_options(SynthCotConfig, at=["cot"], skip=["generator", "sources"])
@json_option
def synth_cot(input_path: str, as_json: bool, **_: Any) -> None:
    """Rewrite QA and multiple-choice records into verified chains of thought (synth_cot_v1).

    OUT holds the synthetic records (origin `synthetic`, lineage in `meta`); the rejected
    parents with their reasons (`wrong_answer`, `no_answer`, `copies_question`,
    `leaks_gold_hint`) and the stats go beside it. Finished generations are cached:
    a rerun resumes and sends no request twice.
    """
    from curate.config import validate_model
    from curate.progress import Tick
    from curate.synth.cot import enhance_file

    context = click.get_current_context()
    options = settings(context)
    config = validate_model(SynthCotConfig, options.get("cot", {}), where="options")
    with progress_bars() as progress:
        rows = None if progress is None else (
            lambda done, total: progress(Tick("synth cot", None, done, total)))
        result = enhance_file(given(context)["input_path"], config=config, progress=rows,
                              **options.get("file", {}), **options.get("catalog", {}))
    show(result, as_json, view.enhanced)
