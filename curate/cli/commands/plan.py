"""`curate plan`."""

from __future__ import annotations

from typing import Any

import click

from curate.cli.console import json_option, show
from curate.cli.options import config_options, settings
from curate.cli.views import plan as view
from curate.plan.estimate import PlanConfig


@click.command("plan")
@click.argument("release", type=click.Path(exists=True, file_okay=False))
@config_options(PlanConfig)
@json_option
def plan(release: str, as_json: bool, **_: Any) -> None:
    """Estimate what training --model on RELEASE costs before running it: FLOPs (SFT on its
    text parts, DPO on its preference pairs), accelerator-hours at a stated utilisation (MFU),
    wall time on --accelerators, energy (power × time × PUE), money (price per
    accelerator-hour) and emissions (grid intensity); with --eval-items, an evaluation's
    inference too. --model is a local folder or hub name (its config.json) or a size such as
    8B; every figure is printed beside its assumption."""
    from curate.plan.estimate import plan_release

    config = PlanConfig.model_validate(settings(click.get_current_context()))
    show(plan_release(release, config), as_json, view.planned)
