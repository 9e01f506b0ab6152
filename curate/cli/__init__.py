"""The `curate` command: a thin shell over the library, one call per verb.

Each command group lives in ``curate.cli.commands.<group>`` (parsing: its options are
generated from the config models, ``curate.cli.options``) and prints through
``curate.cli.views.<group>`` (presentation: typed results in, text or ``--json`` out).
Groups are imported only when a command of theirs runs, so ``curate --help`` reads this
table and nothing else.

User errors (bad catalogs, recipes, options) print one line and exit 2; a run in which a
source failed prints its summary and exits 1.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from curate.errors import CurateError

COMMANDS: dict[str, tuple[str, str]] = {
    "catalog": ("curate.cli.commands.catalog:catalog",
                "List, check and add catalog entries (sources, benchmarks, mixes)."),
    "ingest": ("curate.cli.commands.runs:ingest",
               "Read every source of RECIPE (a YAML path or a mix name) into the run store."),
    "build-mix": ("curate.cli.commands.runs:build_mix",
                  "Build RECIPE (a YAML path or a mix name) end to end: ingest every source, run every "
                  "stage, allocate the mix to its target shares and write the release."),
    "inspect": ("curate.cli.commands.runs:inspect",
                "Print what RUN (a folder runs/<recipe>/<run-id>) holds, as build-mix printed it: rows "
                "per source, quarantined rows by reason, each stage's decisions by reason, the "
                "contamination, the synthesis, rows per modality and the release's composition."),
    "release": ("curate.cli.commands.releases:release",
                "List, show, compare, export, verify and publish releases."),
    "dedup": ("curate.cli.commands.files:dedup",
              "Exact and near-duplicate dedup of one file (MinHash LSH, verified by exact Jaccard)."),
    "decontaminate": ("curate.cli.commands.files:decontaminate",
                      "Find benchmark items inside one file: n-gram, MinHash and (optionally) "
                      "embedding tiers."),
    "clean": ("curate.cli.commands.files:clean",
              "Repair text (ftfy, whitespace) and flag weak records in one file (clean_v1)."),
    "score": ("curate.cli.commands.files:score",
              "Score one file with DEITA's complexity and quality scorers (quality_v1)."),
    "diversify": ("curate.cli.commands.files:diversify",
                  "Diversity-aware selection over one file (diversity_v1, DEITA's filter)."),
    "check-images": ("curate.cli.commands.files:check_images",
                     "Check the images of one file (image_v1): decodable, size, aspect, duplicates."),
    "check-answers": ("curate.cli.commands.files:check_answers",
                      "Check the answers of one image-text file (answers_v1)."),
    "check-relevance": ("curate.cli.commands.files:check_relevance",
                        "Score image-text relevance of one file with CLIP (relevance_v1)."),
    "check-boxes": ("curate.cli.commands.files:check_boxes",
                    "Check the bounding boxes in one image-text file against its images (boxes_v1)."),
    "synth": ("curate.cli.commands.synth:synth",
              "Generate synthetic training data with a pluggable backend."),
    "safety": ("curate.cli.commands.safety:safety",
               "Red-teaming safety data: preference pairs for DPO from adversarial prompts."),
    "eval": ("curate.cli.commands.evaluate:eval_",
             "Evaluate models: MCQA benchmarks, safety."),
    "audit": ("curate.cli.commands.evaluate:audit",
              "Audit BENCHMARKS (catalog names) as evaluation sets: answers not among the options, "
              "empty or truncated options, unreadable images, conflicting and duplicate items, "
              "repeated stems, items shared between the benchmarks (decontamination tiers)."),
    "rag": ("curate.cli.commands.rag:rag",
            "Retrieval: a contamination-safe index of solved examples for MedPrompt-style few-shot "
            "prompts (`curate eval mcqa --retrieval INDEX`)."),
    "plan": ("curate.cli.commands.plan:plan",
             "Estimate what training --model on RELEASE costs before running it: FLOPs (SFT on its "
             "text parts, DPO on its preference pairs), accelerator-hours at a stated utilisation "
             "(MFU), wall time on --accelerators, energy (power × time × PUE), money (price per "
             "accelerator-hour) and emissions (grid intensity); with --eval-items, an evaluation's "
             "inference too."),
    "train": ("curate.cli.commands.train:train",
              "Thin training over TRL (SFT, DPO) and mergekit (merging), from releases."),
}
"""Command name -> (``module:attr`` of the click command, its short help for ``curate --help``;
a test keeps each short help equal to the command's own)."""


class Group(click.Group):
    """A click group that turns curate's own errors into one line on stderr and exit 2."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a ``CurateError`` becomes one line on stderr and exit code 2."""
        try:
            return super().invoke(ctx)
        except CurateError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


class Main(Group):
    """The top-level group: its commands are imported when one of them runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command's name, as ``COMMANDS`` lists them."""
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command ``cmd_name``, imported now (None when there is none)."""
        if cmd_name not in COMMANDS:
            return None
        module, _, attr = COMMANDS[cmd_name][0].partition(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from ``COMMANDS``, without importing any command."""
        width = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [(name, click.Command(name, help=short).get_short_help_str(width))
                for name, (_, short) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help=(
    "More log output: -v info, -vv curate's debug log (fingerprints, reuse, shards, cache hits, "
    "the allocation's cells), -vvv every library's debug log too."))
@click.version_option(package_name="curate")
def main(verbose: int) -> None:
    """curate: data sources in, audited post-training dataset releases out."""
    everything = [logging.WARNING, logging.INFO, logging.INFO, logging.DEBUG][min(verbose, 3)]
    logging.basicConfig(level=everything, format="%(levelname)s %(name)s: %(message)s")
    if verbose == 2:  # curate's own debug log, without every library's
        logging.getLogger("curate").setLevel(logging.DEBUG)
