"""Curation stages. ``STAGES`` maps the names a recipe uses to their classes."""

from __future__ import annotations

from typing import Any

from curate.registry import Registry

STAGES: Registry[Any] = Registry("stage", "curate.stages", {
    "exact_dedup": "curate.curation.exact_dedup:ExactDedup",
    "near_dedup": "curate.curation.near_dedup:NearDedup",
    "decontam": "curate.curation.decontam:Decontaminate",
    "clean": "curate.curation.clean:Clean",
    "quality": "curate.curation.quality:Quality",
    "diversity": "curate.curation.diversity:Diversity",
    "image": "curate.curation.image:ImageCheck",
    "answers": "curate.curation.answers:AnswerCheck",
    "relevance": "curate.curation.relevance:Relevance",
    "boxes": "curate.curation.boxes:BoxCheck",
})
"""Stage name (a recipe's ``stages`` key) -> its ``curate.engine.stage.Stage`` class;
another package adds stages through ``curate.stages`` entry points."""


def build_stages(stages: dict[str, dict[str, Any]], *, where: str) -> list[Any]:
    """Stage objects for a recipe's ``stages`` mapping, in order, options validated (see
    ``curate.engine.stage.build_steps``)."""
    from curate.engine.stage import build_steps

    return build_steps(STAGES, stages, where=where)
