"""The one-file commands: stages over one file, rows in, every row's decision out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from curate.cli.commands.catalog import catalog_options
from curate.cli.console import json_option, progress_bars, show
from curate.cli.options import config_options, given, settings
from curate.cli.views import files as view
from curate.config import validate_model
from curate.curation.config import (
    AnswersConfig,
    BoxConfig,
    CleanConfig,
    DecontamConfig,
    DiversityConfig,
    ExactDedupConfig,
    ImageConfig,
    MinHashConfig,
    NearDedupConfig,
    QualityConfig,
    RelevanceConfig,
)
from curate.pipeline.adhoc import FileOptions

input_argument = click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False))


def one_file_command(name: str) -> Any:
    """A command that runs stages over one file: INPUT, where it writes (``FileOptions``),
    the catalog options, then the stages' options (generated from their configs below it)."""
    def decorate(function: Any) -> click.Command:
        for decorator in reversed((
                input_argument, config_options(FileOptions, at=["file"]), catalog_options(), json_option)):
            function = decorator(function)
        return click.command(name)(function)

    return decorate


def run_on_file(*names: str) -> None:
    """The body of every one-file command: its stages (``names``, in order) with the options
    given, over INPUT; then what it wrote and removed."""
    from curate.ingest.files import estimate_rows
    from curate.pipeline.adhoc import run_on_file as run

    context = click.get_current_context()
    options = settings(context)
    rest = given(context)
    files = validate_model(FileOptions, options.get("file", {}), where="the command line")
    stages = {name: options.get(name, {}) for name in names}
    with progress_bars(rows=estimate_rows(Path(rest["input_path"]))) as progress:
        result = run(rest["input_path"], files.out, stages, kept=files.kept, removed=files.removed,
                     source=files.source, mapping=files.mapping(), source_rejection=False, progress=progress,
                     **options.get("catalog", {}))
    show(result, rest["as_json"], view.file_result)


@one_file_command("dedup")
@config_options(ExactDedupConfig, at=["exact_dedup"])
@config_options(MinHashConfig, at=["near_dedup", "minhash"], skip=["min_recall"])
@config_options(NearDedupConfig, at=["near_dedup"], skip=["minhash"])
def dedup(**_: Any) -> None:
    """Exact and near-duplicate dedup of one file (MinHash LSH, verified by exact Jaccard).

    OUT holds every row of INPUT with `row`, `id`, `keep`, `reason` (`duplicate_of`,
    `near_duplicate_of`), `reason_ref` (the kept record's id) and the score columns.
    """
    run_on_file("exact_dedup", "near_dedup")


@one_file_command("decontaminate")
@config_options(DecontamConfig, at=["decontam"], rename={"benchmarks": "benchmark"},
                required=["benchmarks"])
def decontaminate(**_: Any) -> None:
    """Find benchmark items inside one file: n-gram, MinHash and (optionally) embedding tiers.

    Give `--benchmark` once per benchmark catalog entry. OUT holds every row of INPUT with
    `row`, `id`, `keep`, `reason` (`contaminated`, `source_rejected`), `reason_ref` (the
    benchmark; `contamination`) and each tier's best benchmark item and score; the
    contamination report goes beside it.
    """
    run_on_file("decontam")


@one_file_command("clean")
@config_options(CleanConfig, at=["clean"])
def clean(**_: Any) -> None:
    """Repair text (ftfy, whitespace) and flag weak records in one file (clean_v1).

    OUT holds every row of INPUT with `row`, `id`, `keep`, `reason` (`empty_answer`,
    `short_answer`, `answer_equals_question`, `refusal`, `repetitive`, `non_text`) and
    the score columns; `clean_changed` says whether repair changed the text (a release
    built with the stage carries the repaired turns).
    """
    run_on_file("clean")


@one_file_command("score")
@config_options(QualityConfig, at=["quality"])
def score(**_: Any) -> None:
    """Score one file with DEITA's complexity and quality scorers (quality_v1).

    OUT holds every row of INPUT with `row`, `id`, `keep`, `reason` (`low_quality`) and
    `complexity`, `quality`, `deita_score` (sum over turns of complexity x quality) and
    the per-turn scores. A scorer whose scores collapse to a constant fails with the
    spread it measured.
    """
    run_on_file("quality")


@one_file_command("diversify")
@config_options(DiversityConfig, at=["diversity"])
def diversify(**_: Any) -> None:
    """Diversity-aware selection over one file (diversity_v1, DEITA's filter).

    Records are embedded and visited in order; one is kept only if its cosine to every
    kept record is at most TAU. OUT holds every row of INPUT with `row`, `id`, `keep`,
    `reason` (`too_similar_to`, `over_budget`), `reason_ref` (the similar record's id) and
    `diversity_max_sim`, `diversity_nearest`, `diversity_rank`.
    """
    run_on_file("diversity")


@one_file_command("check-images")
@config_options(ImageConfig, at=["image"])
def check_images(**_: Any) -> None:
    """Check the images of one file (image_v1): decodable, size, aspect, duplicates.

    OUT holds every row of INPUT with `row`, `id`, `keep`, `reason` (`unreadable_image`,
    `image_too_small`, `bad_aspect_ratio`, `duplicate_image:<id>`) and the image scores
    (size, format, mode, perceptual hash, whether a release would normalise it).
    """
    run_on_file("image")


@one_file_command("check-answers")
@config_options(AnswersConfig, at=["answers"])
def check_answers(**_: Any) -> None:
    """Check the answers of one image-text file (answers_v1).

    OUT holds every row of INPUT with `row`, `id`, `keep`, `reason` (`pasted_answer`,
    `answer_wrong_type`, `answer_unrelated`) and the question and answer forms, the
    images a long answer is found with, and the question-answer cosine.
    """
    run_on_file("answers")


@one_file_command("check-relevance")
@config_options(RelevanceConfig, at=["relevance"])
def check_relevance(**_: Any) -> None:
    """Score image-text relevance of one file with CLIP (relevance_v1).

    OUT holds every row of INPUT with `row`, `id`, `keep`, `reason` (`image_irrelevant`)
    and `relevance_clip`, the image-text cosine; the threshold is the model's.
    """
    run_on_file("relevance")


@one_file_command("check-boxes")
@config_options(BoxConfig, at=["boxes"])
def check_boxes(**_: Any) -> None:
    """Check the bounding boxes in one image-text file against its images (boxes_v1).

    OUT holds every row of INPUT with `row`, `id`, `keep`, `reason`
    (`box_out_of_bounds`, `box_degenerate`), the number of boxes and the image size.
    """
    run_on_file("boxes")
