"""Curation stages. ``STAGES`` maps the names a recipe uses to their classes."""

from __future__ import annotations

import difflib
import importlib
from typing import TYPE_CHECKING, Any

from curate.errors import ConfigError

if TYPE_CHECKING:
    from curate.engine.stage import Stage

# name -> "module:Class"; recipes name stages by these keys.
STAGES = {
    "exact_dedup": "curate.curation.exact_dedup:ExactDedup",
    "near_dedup": "curate.curation.near_dedup:NearDedup",
    "decontam": "curate.curation.decontam:Decontaminate",
    "clean": "curate.curation.clean:Clean",
    "quality": "curate.curation.quality:Quality",
    "diversity": "curate.curation.diversity:Diversity",
    "image": "curate.curation.image:ImageCheck",
    "answers": "curate.curation.answers:AnswerCheck",
    "relevance": "curate.curation.relevance:Relevance",
    "bbox": "curate.curation.bbox:BboxCheck",
}


def stage_class(name: str) -> type[Stage[Any]]:
    """The stage class a recipe names; a ConfigError with a suggestion when unknown."""
    if name not in STAGES:
        close = difflib.get_close_matches(name, list(STAGES), n=1, cutoff=0.5)
        hint = f"; did you mean `{close[0]}`?" if close else f"; known stages: {', '.join(STAGES)}"
        raise ConfigError(f"unknown stage `{name}`{hint}")
    module, attr = STAGES[name].split(":")
    cls: type[Stage[Any]] = getattr(importlib.import_module(module), attr)
    return cls


def build_stages(stages: dict[str, dict[str, Any]], *, where: str) -> list[Stage[Any]]:
    """Stage objects for a recipe's ``stages`` mapping, in order; options validated.

    A stage whose options say ``enabled: false`` is checked like the others but left
    out (a recipe shows it, with the options a user would set, without running it).
    """
    built = []
    for name, options in stages.items():
        try:
            cls = stage_class(name)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        options = dict(options)
        enabled = options.pop("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{where}: stage `{name}`: `enabled` must be true or false")
        stage = cls.from_options(options, where=where)
        if enabled:
            built.append(stage)
    return built
