"""Supervised fine-tuning: a release (or any dataset in TRL's formats) into TRL's
``SFTTrainer``, unchanged.

Text data trains a causal LM through its tokenizer; ``image_text`` data (rows with
``images``) trains an image-text-to-text model through its processor on TRL's
vision-language path (TRL's collator puts the image placeholders into the first user
turn). Conversational data trains on the assistant tokens only when the chat template
marks them; ``packing`` and every other option are TRL's own (``--set packing=true``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from curate.train.data import TrainingData, has_generation_markers
from curate.train.record import TrainResult
from curate.train.run import ModelSpec, Options, chat_template_of, train

log = logging.getLogger(__name__)


def train_sft(data: str | Path, *, model: ModelSpec, output_dir: str | Path, options: Options | None = None,
              release_config: str | None = None) -> TrainResult:
    """SFT of ``model`` on ``data`` (a release folder or a dataset file/folder); the
    model, tokenizer and ``curate-train.json`` go to ``output_dir``."""
    return train("sft", data, model=model, output_dir=output_dir, options=options or Options(),
                 config_class=_config_class, make_trainer=_trainer, release_config=release_config,
                 defaults_for=_defaults)


def _config_class() -> type:
    from trl import SFTConfig

    return SFTConfig


def _defaults(data: TrainingData, processing_class: Any,
              given: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Assistant-only loss on conversational data when the template can mark it."""
    if data.format != "messages" or "assistant_only_loss" in given:
        return {}, {}
    marked = has_generation_markers(chat_template_of(processing_class))
    if not marked:
        log.warning("the chat template has no {%% generation %%} markers: SFT on %s trains on every token "
                    "of each conversation, not only the assistant's (give a template with markers via "
                    "chat_template_path to change that)", data.where)
    return {"assistant_only_loss": marked}, {
        "assistant_only_loss": "on: the chat template marks assistant content" if marked else
        "off: the chat template has no {% generation %} markers, so every token is trained on"}


def _trainer(model: Any, args: Any, data: TrainingData, processing_class: Any) -> Any:
    from trl import SFTTrainer

    return SFTTrainer(model=model, args=args, train_dataset=data.dataset, processing_class=processing_class)
