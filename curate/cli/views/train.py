"""How `curate train` prints."""

from __future__ import annotations

from curate.cli.console import console
from curate.train.merge import Merged
from curate.train.record import TrainResult


def trained(result: TrainResult) -> None:
    """The method, what it trained on, steps and loss, where the model went."""
    console().print(f"[bold]{result.method}[/] on {result.trained_on}: {result.steps:,} steps, training loss "
                    f"{result.training_loss:.4f}; model and curate-train.json in {result.output_dir}")


def merged(result: Merged) -> None:
    """Where the merge (or only its mergekit config) went."""
    if result.merged:
        console().print(f"[bold]merged[/] {result.models} models ({result.method}) into {result.out}")
    else:
        console().print(f"mergekit config written to {result.config}")
