"""One training flow for every method: check the data, build TRL's config, load the
model, record what is trained on, hand everything to a plain TRL trainer, record the
result.

A method (``TrainMethod``) is one small object: its name, the data contract it checks,
TRL's config and trainer classes, and the defaults it chooses; ``train`` runs any of
them, by registry name (``TRAIN_METHODS``: ``sft``, ``dpo`` and plugins) or given as an
object. curate adds defaults of its own, all recorded and all overridable: ``bf16`` is
off when no GPU is visible (TRL turns it on by default, which is slow or unsupported on
a CPU), plus each method's (SFT: ``assistant_only_loss`` follows the chat template).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from pkgutil import resolve_name
from typing import Any, ClassVar

from pydantic import Field

from curate.config import Config, ModelSpec
from curate.errors import ConfigError
from curate.models import load_causal_lm, load_image_text_lm, resolve_device
from curate.train import TRAIN_METHODS
from curate.train.args import build_config, json_config, parse_overrides, read_config_file
from curate.train.data import Task, TrainingData, has_generation_markers, read_training_data
from curate.train.record import TrainResult, package_versions, training_result, write_record

log = logging.getLogger(__name__)


class TrainFiles(Config):
    """Where ``curate train sft|dpo`` writes, and which part of a release it trains on."""

    output_dir: str = Field(description="Folder for the trained model, its tokenizer and curate-train.json.")
    release_config: str | None = Field(None, description=(
        "For a release: which part to train on (text, image_text, preference) [default: the method's]."))


class Options(Config):
    """TRL options for one run: a YAML file of config fields and ``key=value`` overrides."""

    config_file: Path | None = Field(None, description="YAML file of the TRL config class's fields.")
    overrides: tuple[str, ...] = Field((), description="`key=value` settings of TRL config fields, "
                                                       "over `config_file`.")

    def values(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The file's values and the overrides, parsed (not yet checked)."""
        return read_config_file(self.config_file), parse_overrides(self.overrides)


@dataclass(frozen=True)
class Defaults:
    """What a method chooses for one run: TRL option values (each overridable by the user)
    and notes for the run record (why a value was chosen, how the trainer is built)."""

    values: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


class TrainMethod:
    """A way to train over TRL. A subclass names TRL's config and trainer classes and the
    data contract it checks; it overrides ``defaults`` to choose option values from the
    data and the model, and ``trainer`` when TRL's trainer takes more than the model, the
    config, the dataset and the tokenizer or processor."""

    name: ClassVar[str]
    """Its name in the run record (and in ``TRAIN_METHODS`` when registered)."""
    task: ClassVar[Task]
    """The data contract checked before the model loads (``curate.train.data``): `sft`
    (`messages`, `prompt`/`completion`, `text`) or `dpo` (`prompt`/`chosen`/`rejected`)."""
    config_class: ClassVar[str]
    """TRL's config class as ``"module:Class"`` (``"trl:SFTConfig"``), imported when a run
    starts; its fields are the run's options (``Options``)."""
    trainer_class: ClassVar[str]
    """TRL's trainer class as ``"module:Class"`` (``"trl:SFTTrainer"``)."""

    def defaults(self, data: TrainingData, processing_class: Any, given: Mapping[str, Any]) -> Defaults:
        """Option values and notes for a run on ``data``; ``given`` holds the options the
        user set (leave those alone). None by default."""
        return Defaults()

    def trainer(self, model: Any, args: Any, data: TrainingData, processing_class: Any) -> Any:
        """TRL's trainer for one run: ``trainer_class`` over the model, the config, the
        dataset and the tokenizer or processor."""
        trainer_class = resolve_name(self.trainer_class)
        return trainer_class(model=model, args=args, train_dataset=data.dataset,
                             processing_class=processing_class)


def load_model(spec: ModelSpec, *, vision: bool) -> tuple[Any, Any]:
    """The model in float32 on the CPU (bfloat16 on a GPU) and its tokenizer, or, for a
    vision dataset, an image-text-to-text model and its processor."""
    if not vision:
        return load_causal_lm(spec.model, revision=spec.revision, trust_remote_code=spec.trust_remote_code,
                              what="model to train")
    return load_image_text_lm(spec.model, revision=spec.revision, trust_remote_code=spec.trust_remote_code,
                              what="vision-language model to train (an image_text dataset needs one, "
                              "with a processor)")


def chat_template_of(processing_class: Any) -> Any:
    """The chat template a tokenizer or processor applies (None when it has none)."""
    template = getattr(processing_class, "chat_template", None)
    if template is None and hasattr(processing_class, "tokenizer"):
        template = getattr(processing_class.tokenizer, "chat_template", None)
    return template


def train(method: str | TrainMethod, data_path: str | Path, *, model: ModelSpec, output_dir: str | Path,
          options: Options | None = None, release_config: str | None = None) -> TrainResult:
    """Train ``model`` on ``data_path`` (a release folder or a dataset file or folder) with
    ``method`` (a ``TRAIN_METHODS`` name such as ``"sft"``, or a ``TrainMethod``); the model,
    its tokenizer and ``curate-train.json`` go to ``output_dir``. For a release,
    ``release_config`` picks the part (default: ``text`` for SFT, ``preference`` for DPO)."""
    if isinstance(method, str):
        method_class: type[TrainMethod] = TRAIN_METHODS.load(method)
        method = method_class()
    options = options or Options()
    data = read_training_data(data_path, task=method.task, config=release_config)
    file_values, overrides = options.values()
    config_class = resolve_name(method.config_class)
    where = str(options.config_file or "--set")
    defaults: dict[str, Any] = {"output_dir": str(output_dir)}
    if resolve_device() == "cpu":
        defaults["bf16"] = False
    # Keys and values are checked before the model loads: a typo costs a second.
    build_config(config_class, file_values=file_values, overrides=overrides, defaults=defaults, where=where)
    loaded, processing_class = load_model(model, vision=data.vision)
    given = {**file_values, **overrides}
    chosen = method.defaults(data, processing_class, given)
    defaults.update(chosen.values)
    args = build_config(config_class, file_values=file_values, overrides=overrides, defaults=defaults,
                        where=where)
    check_args(data, processing_class, args, model.model)
    record: dict[str, Any] = {
        "method": method.name, "task": method.task, "status": "started", "data": data.describe(),
        "model": {"name": model.model, "revision": model.revision},
        "trl": {"config_class": config_class.__name__, "given": given, "curate_defaults": defaults,
                "config": json_config(args)},
        "notes": chosen.notes, "packages": package_versions(),
    }
    write_record(output_dir, record)
    trainer = method.trainer(loaded, args, data, processing_class)
    output = trainer.train()
    trainer.save_model(str(output_dir))
    record.update(status="finished", result=training_result(trainer, output))
    write_record(output_dir, record)
    return TrainResult(Path(output_dir), record, trainer)


def check_args(data: TrainingData, processing_class: Any, args: Any, model: str) -> None:
    """Combinations TRL would reject late (after mapping the dataset), said up front."""
    template = chat_template_of(processing_class)
    if getattr(args, "assistant_only_loss", False) and not has_generation_markers(template):
        raise ConfigError(
            f"`assistant_only_loss` is on but the chat template of `{model}` has no "
            "{% generation %} ... {% endgeneration %} markers around assistant content, so TRL cannot "
            "tell assistant tokens apart: give a template with markers (`chat_template_path`) or set "
            "assistant_only_loss=false (the loss then covers every token)")
    if data.format in {"messages", "preference"} and template is None:
        raise ConfigError(f"`{model}` has no chat template, and {data.where} is conversational: give one "
                          "with `chat_template_path`")
    if data.vision and getattr(args, "packing", False):
        raise ConfigError(f"{data.where} has images: TRL cannot pack vision data; set packing=false")
