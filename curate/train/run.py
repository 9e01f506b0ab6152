"""The flow SFT and DPO share: check the data, build TRL's config, load the model, record
what is trained on, hand everything to a plain TRL trainer, record the result.

curate adds two defaults of its own, both recorded and both overridable: ``bf16`` is off
when no GPU is visible (TRL turns it on by default, which is slow or unsupported on a
CPU), and, for SFT on conversational data, ``assistant_only_loss`` follows the chat
template (on when it has ``{% generation %}`` markers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.errors import ConfigError
from curate.models import load_causal_lm, load_image_text_lm, resolve_device
from curate.train.args import build_config, json_config, parse_overrides, read_config_file
from curate.train.data import Task, TrainingData, read_training_data
from curate.train.record import TrainResult, package_versions, training_result, write_record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    """The model to train: a hub name (with a pinned revision) or a local folder."""

    name: str
    revision: str | None = None
    trust_remote_code: bool = False


@dataclass(frozen=True)
class Options:
    """TRL options for one run: a YAML file of config fields and ``key=value`` overrides."""

    config_file: str | Path | None = None
    overrides: Sequence[str] = ()

    def values(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The file's values and the overrides, parsed (not yet checked)."""
        return read_config_file(self.config_file), parse_overrides(self.overrides)


def load_model(spec: ModelSpec, *, vision: bool) -> tuple[Any, Any]:
    """The model in float32 on the CPU (bfloat16 on a GPU) and its tokenizer, or, for a
    vision dataset, an image-text-to-text model and its processor."""
    if not vision:
        return load_causal_lm(spec.name, revision=spec.revision, trust_remote_code=spec.trust_remote_code,
                              what="model to train")
    return load_image_text_lm(spec.name, revision=spec.revision, trust_remote_code=spec.trust_remote_code,
                              what="vision-language model to train (an image_text dataset needs one, "
                              "with a processor)")


def chat_template_of(processing_class: Any) -> Any:
    """The chat template a tokenizer or processor applies (None when it has none)."""
    template = getattr(processing_class, "chat_template", None)
    if template is None and hasattr(processing_class, "tokenizer"):
        template = getattr(processing_class.tokenizer, "chat_template", None)
    return template


def train(
    task: Task,
    data_path: str | Path,
    *,
    model: ModelSpec,
    output_dir: str | Path,
    options: Options,
    config_class: Callable[[], type],
    make_trainer: Callable[..., Any],
    release_config: str | None = None,
    defaults_for: Callable[[TrainingData, Any, Mapping[str, Any]], tuple[dict[str, Any], dict[str, Any]]],
) -> TrainResult:
    """One run of ``task``: ``config_class()`` gives TRL's config class (imported late),
    ``defaults_for(data, processing_class, given)`` curate's task-specific defaults and
    notes, ``make_trainer(model, args, data, processing_class)`` the TRL trainer."""
    data = read_training_data(data_path, task=task, config=release_config)
    file_values, overrides = options.values()
    cls = config_class()
    where = str(options.config_file or "--set")
    defaults: dict[str, Any] = {"output_dir": str(output_dir)}
    if resolve_device() == "cpu":
        defaults["bf16"] = False
    # Keys and values are checked before the model loads: a typo costs a second.
    build_config(cls, file_values=file_values, overrides=overrides, defaults=defaults, where=where)
    loaded, processing_class = load_model(model, vision=data.vision)
    given = {**file_values, **overrides}
    task_defaults, notes = defaults_for(data, processing_class, given)
    defaults.update(task_defaults)
    args = build_config(cls, file_values=file_values, overrides=overrides, defaults=defaults, where=where)
    notes = {**notes, **check_args(task, data, processing_class, args, model.name)}
    record: dict[str, Any] = {
        "task": task, "status": "started", "data": data.describe(),
        "model": {"name": model.name, "revision": model.revision},
        "trl": {"config_class": cls.__name__, "given": given, "curate_defaults": defaults,
                "config": json_config(args)},
        "notes": notes, "packages": package_versions(),
    }
    write_record(output_dir, record)
    trainer = make_trainer(loaded, args, data, processing_class)
    output = trainer.train()
    trainer.save_model(str(output_dir))
    record.update(status="finished", result=training_result(trainer, output))
    write_record(output_dir, record)
    return TrainResult(Path(output_dir), record, trainer)


def check_args(task: Task, data: TrainingData, processing_class: Any, args: Any,
               model: str) -> dict[str, Any]:
    """Combinations TRL would reject late (after mapping the dataset), said up front."""
    from curate.train.data import has_generation_markers

    notes: dict[str, Any] = {}
    if task == "sft" and getattr(args, "assistant_only_loss", False):
        if not has_generation_markers(chat_template_of(processing_class)):
            raise ConfigError(
                f"`assistant_only_loss` is on but the chat template of `{model}` has no "
                "{% generation %} ... {% endgeneration %} markers around assistant content, so TRL cannot "
                "tell assistant tokens apart: give a template with markers (`chat_template_path`) or set "
                "assistant_only_loss=false (the loss then covers every token)")
    if data.format in {"messages", "preference"} and chat_template_of(processing_class) is None:
        raise ConfigError(f"`{model}` has no chat template, and {data.where} is conversational: give one "
                          "with `chat_template_path`")
    if data.vision and getattr(args, "packing", False):
        raise ConfigError(f"{data.where} has images: TRL cannot pack vision data; set packing=false")
    return notes
