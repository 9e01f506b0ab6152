"""How `curate synth` prints."""

from __future__ import annotations

from curate.cli.console import console
from curate.cli.views.runs import synth_stats
from curate.synth.cot import CotFileResult


def enhanced(result: CotFileResult) -> None:
    """Where the synthetic records and the rejected parents went, then the stats."""
    console().print(f"wrote {result.synthetic}; rejected parents -> {result.rejected}")
    if result.cot is not None:
        synth_stats(result.cot)
