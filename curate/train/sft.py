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
from typing import Any

from curate.train.data import TrainingData, has_generation_markers
from curate.train.run import Defaults, TrainMethod, chat_template_of

log = logging.getLogger(__name__)


class SFT(TrainMethod):
    """TRL's ``SFTTrainer`` on `messages`, `prompt`/`completion` or `text` data."""

    name = "sft"
    task = "sft"
    config_class = "trl:SFTConfig"
    trainer_class = "trl:SFTTrainer"

    def defaults(self, data: TrainingData, processing_class: Any, given: Mapping[str, Any]) -> Defaults:
        """Assistant-only loss on conversational data when the template can mark it."""
        if data.format != "messages" or "assistant_only_loss" in given:
            return Defaults()
        marked = has_generation_markers(chat_template_of(processing_class))
        if not marked:
            log.warning("the chat template has no {%% generation %%} markers: SFT on %s trains on every "
                        "token of each conversation, not only the assistant's (give a template with "
                        "markers via chat_template_path to change that)", data.where)
        return Defaults({"assistant_only_loss": marked}, {
            "assistant_only_loss": "on: the chat template marks assistant content" if marked else
            "off: the chat template has no {% generation %} markers, so every token is trained on"})
