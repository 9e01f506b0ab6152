"""Supervised fine-tuning: a release (or any dataset in TRL's formats) into TRL's
``SFTTrainer``, unchanged.

Text data trains a causal LM through its tokenizer; ``image_text`` data (rows with
``images``) trains an image-text-to-text model through its processor on TRL's
vision-language path (TRL's collator puts the image placeholders into the first user
turn). Conversational data trains on the assistant tokens only whenever TRL can mask them
(``defaults``); ``packing`` and every other option are TRL's own (``--set packing=true``).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from curate.train.data import TrainingData
from curate.train.run import Defaults, TrainMethod, chat_template_of

log = logging.getLogger(__name__)


class SFT(TrainMethod):
    """TRL's ``SFTTrainer`` on `messages`, `prompt`/`completion` or `text` data."""

    name = "sft"
    task = "sft"
    config_class = "trl:SFTConfig"
    trainer_class = "trl:SFTTrainer"

    def defaults(self, data: TrainingData, processing_class: Any, given: Mapping[str, Any]) -> Defaults:
        """Assistant-only loss on `messages` data whenever TRL can mask the assistant's tokens:
        the chat template TRL will use (the tokenizer's, or ``chat_template_path``'s) marks
        them with ``{% generation %}``, or TRL swaps in its own training template for it
        (``trl.chat_template_utils.get_training_chat_template``: Qwen2.5, Qwen3, Llama 3,
        Gemma 3, Phi-3 and others)."""
        if data.format != "messages" or "assistant_only_loss" in given:
            return Defaults()
        on, why = assistant_mask(processing_class, given.get("chat_template_path"))
        if not on:
            log.warning("SFT on %s trains on every token of each conversation, not only the assistant's: %s",
                        data.where, why)
        note = ("on: " if on else "off: ") + why
        return Defaults({"assistant_only_loss": on}, {"assistant_only_loss": note})


def assistant_mask(processing_class: Any, chat_template_path: str | None = None) -> tuple[bool, str]:
    """Whether TRL's ``SFTTrainer`` can train on the assistant's tokens only with this
    tokenizer or processor (and ``chat_template_path``, which the trainer applies first),
    and why, decided by TRL's own functions as its trainer decides."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    probe = processing_class
    if chat_template_path:
        probe = copy.copy(processing_class)  # the trainer applies the path to its own copy
        probe.chat_template = template_at(str(chat_template_path))
    template = chat_template_of(probe)
    if template is None:
        return False, "the model has no chat template"
    if has_generation_markers(template):
        return True, "the chat template marks assistant content with {% generation %}"
    try:
        get_training_chat_template(probe)
    except ValueError:
        return False, ("the chat template has no {% generation %} markers and TRL has no training template "
                       "for it; give one with markers via chat_template_path to train on the assistant's "
                       "tokens only")
    return True, ("TRL swaps in its training chat template for this one "
                  "(trl.chat_template_utils.get_training_chat_template)")


def template_at(path: str) -> Any:
    """The chat template ``chat_template_path`` names, as TRL's trainer reads it: a .jinja
    (or .j2) file's text, else the template of the tokenizer at that path or hub name."""
    if Path(path).is_file() and path.endswith((".jinja", ".j2")):
        return Path(path).read_text("utf-8")
    from curate.models import load_tokenizer

    return load_tokenizer(path, what="tokenizer of `chat_template_path`").chat_template
