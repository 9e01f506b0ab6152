"""How `curate safety` prints."""

from __future__ import annotations

from curate.cli.console import console
from curate.synth.safety_pairs import PairsResult


def pairs(result: PairsResult) -> None:
    """Pairs per split (with their topics and styles), prompts read, the judge's verdicts."""
    out = console()
    for split in result.splits:
        out.print(f"{split.split}: {split.pairs:,} pairs of {split.candidates:,} candidates "
                  f"{split.reasons}; topics {', '.join(split.topics)}; styles {', '.join(split.styles)}")
    out.print(f"prompts: {result.prompts_read:,} read, {result.near_duplicates_removed:,} near-duplicates "
              f"removed; judge verdicts {result.verdicts}")
    if result.offline:
        out.print("[bold]offline or test-double backends: not training data[/]")
    out.print(f"wrote {result.train}, {result.test}; mix them with --catalog {result.catalog}")
