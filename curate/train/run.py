"""One training flow for every method: check the data, parse TRL's configs, record what is
trained on, hand the model's name to a plain TRL trainer, record the result.

A method (``TrainMethod``) is one small object: its name, the data contract it checks,
TRL's config and trainer classes, and the defaults it chooses; ``train`` runs any of
them, by registry name (``TRAIN_METHODS``: ``sft``, ``dpo`` and plugins) or given as an
object.

The options are those of ``trl sft`` / ``trl dpo``: the method's config class and TRL's
``ModelConfig`` (``use_peft``, ``lora_*``, ``load_in_4bit``, ``attn_implementation``,
``dtype``), parsed by TRL's parser (``curate.train.args``). The model is built as TRL's
scripts build it: the trainer gets the model's name or folder, ``model_init_kwargs`` from
``ModelConfig`` (revision, ``attn_implementation``, ``dtype``: float32 unless asked, so
``bf16=True`` trains in autocast over float32 master weights) updated by the config's own
``model_init_kwargs``, the adapter from ``trl.get_peft_config`` and the quantisation from
``trl.get_quantization_config``. TRL loads the model (and DPO's reference model) itself,
so every TRL option reaches it, and the same run works under ``accelerate launch`` (FSDP,
DeepSpeed): only the main process writes the record.

curate adds defaults of its own, all recorded and all overridable: ``bf16`` is off when
no GPU is visible (TRL turns it on by default, which a CPU refuses), plus each method's
(SFT: ``assistant_only_loss`` on conversations whenever TRL can mask the assistant's
tokens).
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
from curate.models import hub_options, load_processor, load_tokenizer, looks_local, resolve_device
from curate.plan.measure import Meter
from curate.train import TRAIN_METHODS
from curate.train.args import build_configs, json_config, option_names, parse_overrides, read_config_file
from curate.train.data import Task, TrainingData, read_training_data
from curate.train.record import TrainResult, package_versions, run_cost, training_result, write_record

log = logging.getLogger(__name__)

MODEL_SPEC_FIELDS = {"model_name_or_path": "--model", "model_revision": "--revision",
                     "trust_remote_code": "--trust-remote-code"}
"""TRL fields the command line's model options (``ModelSpec``) set: given through
``--config``/``--set`` they are an error naming the option to use."""


class TrainFiles(Config):
    """Where ``curate train sft|dpo`` writes, which part of a release it trains on, and the
    validation rows it holds out."""

    output_dir: str = Field(description="Folder for the trained model, its tokenizer and curate-train.json.")
    release_config: str | None = Field(None, description=(
        "For a release: which part to train on (text, image_text, preference) [default: the method's]."))
    eval_share: float | None = Field(None, gt=0, lt=1, description=(
        "Hold out this share of the rows (at least one) as a validation split: TRL evaluates on it "
        "(eval_strategy, eval_steps) and the record keeps the validation loss."))
    eval_seed: int = Field(0, description="Seed of the validation rows drawn (independent of TRL's `seed`).")


class Options(Config):
    """TRL options for one run: a YAML file of config fields and ``key=value`` overrides."""

    config_file: Path | None = Field(None, description=(
        "YAML file of fields of the method's TRL config class and of TRL's ModelConfig."))
    overrides: tuple[str, ...] = Field((), description=(
        "`key=value` settings of fields of the TRL config class or ModelConfig (use_peft, lora_r, dtype, "
        "...), over `config_file`; list values separated by spaces."))

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
    data and the tokenizer, ``trainer`` when TRL's trainer takes more than the usual
    arguments, and ``describe`` to note in the record what the trainer set up."""

    name: ClassVar[str]
    """Its name in the run record (and in ``TRAIN_METHODS`` when registered)."""
    task: ClassVar[Task]
    """The data contract checked before the model loads (``curate.train.data``): `sft`
    (`messages`, `prompt`/`completion`, `text`) or `dpo` (`prompt`/`chosen`/`rejected`)."""
    config_class: ClassVar[str]
    """TRL's config class as ``"module:Class"`` (``"trl:SFTConfig"``), imported when a run
    starts; its fields and ``ModelConfig``'s are the run's options (``Options``)."""
    trainer_class: ClassVar[str]
    """TRL's trainer class as ``"module:Class"`` (``"trl:SFTTrainer"``)."""

    def defaults(self, data: TrainingData, processing_class: Any, given: Mapping[str, Any]) -> Defaults:
        """Option values and notes for a run on ``data``; ``given`` holds the options the
        user set (leave those alone). None by default."""
        return Defaults()

    def trainer(self, model: str, args: Any, data: TrainingData, processing_class: Any, *,
                peft_config: Any = None, quantization_config: Any = None) -> Any:
        """TRL's trainer for one run: ``trainer_class`` over the model's name or folder (TRL
        loads it with ``args.model_init_kwargs``), the config, the training and validation
        rows, the tokenizer or processor, and the adapter and quantisation configs."""
        trainer_class = resolve_name(self.trainer_class)
        optional = {"eval_dataset": data.eval_dataset, "peft_config": peft_config,
                    "quantization_config": quantization_config}
        return trainer_class(model=model, args=args, train_dataset=data.dataset,
                             processing_class=processing_class,
                             **{k: v for k, v in optional.items() if v is not None})

    def describe(self, trainer: Any) -> dict[str, str]:
        """Notes for the record on what TRL's trainer set up (none by default)."""
        return {}


def load_processing_class(spec: ModelSpec, *, vision: bool) -> Any:
    """The model's tokenizer, or for a vision dataset its processor."""
    if not vision:
        return load_tokenizer(spec.model, revision=spec.revision, trust_remote_code=spec.trust_remote_code,
                              what="model to train")
    return load_processor(spec.model, revision=spec.revision, trust_remote_code=spec.trust_remote_code,
                          what="vision-language model to train (an image_text dataset needs one, with a "
                          "processor)")


def chat_template_of(processing_class: Any) -> Any:
    """The chat template a tokenizer or processor applies (None when it has none)."""
    template = getattr(processing_class, "chat_template", None)
    if template is None and hasattr(processing_class, "tokenizer"):
        template = getattr(processing_class.tokenizer, "chat_template", None)
    return template


def train(method: str | TrainMethod, data_path: str | Path, *, model: ModelSpec, output_dir: str | Path,
          options: Options | None = None, release_config: str | None = None,
          eval_share: float | None = None, eval_seed: int = 0) -> TrainResult:
    """Train ``model`` on ``data_path`` (a release folder or a dataset file or folder) with
    ``method`` (a ``TRAIN_METHODS`` name such as ``"sft"``, or a ``TrainMethod``); the model
    (or its adapter), its tokenizer and ``curate-train.json`` go to ``output_dir``. For a
    release, ``release_config`` picks the part (default: ``text`` for SFT, ``preference`` for
    DPO). ``eval_share`` holds out that share of the rows (drawn with ``eval_seed``) as the
    validation split."""
    from trl import ModelConfig, get_peft_config, get_quantization_config

    if isinstance(method, str):
        method_class: type[TrainMethod] = TRAIN_METHODS.load(method)
        method = method_class()
    options = options or Options()
    data = read_training_data(data_path, task=method.task, config=release_config)
    if eval_share is not None:
        data = data.hold_out(eval_share, seed=eval_seed)
    file_values, overrides = options.values()
    given = {**file_values, **overrides}
    for key, flag in MODEL_SPEC_FIELDS.items():
        if key in given:
            raise ConfigError(f"`{key}` is set by the command line's model options: give {flag} instead")
    classes = (resolve_name(method.config_class), ModelConfig)
    known = set(option_names(*classes))
    where = str(options.config_file or "--set")
    spec = {"model_name_or_path": model.model, "trust_remote_code": model.trust_remote_code,
            **({"model_revision": model.revision} if model.revision else {})}
    defaults: dict[str, Any] = {"output_dir": str(output_dir), **spec}
    if resolve_device() == "cpu":
        defaults["bf16"] = False
    # Keys and values are checked before anything loads: a typo costs a second.
    build_configs(classes, file_values=file_values, overrides=overrides,
                  defaults={k: v for k, v in defaults.items() if k in known}, where=where)
    processing_class = load_processing_class(model, vision=data.vision)
    chosen = method.defaults(data, processing_class, given)
    defaults.update(chosen.values)
    args, model_args = build_configs(classes, file_values=file_values, overrides=overrides,
                                     defaults={k: v for k, v in defaults.items() if k in known}, where=where)
    check_args(data, processing_class, args, model.model)
    args.model_init_kwargs = model_init_kwargs(model, args, model_args)
    peft_config = get_peft_config(model_args)
    quantization_config = get_quantization_config(model_args)
    main_process = args.process_index == 0
    record: dict[str, Any] = {
        "method": method.name, "task": method.task, "status": "started", "data": data.describe(),
        "model": {"name": model.model, "revision": model.revision, "model_config": json_config(model_args)},
        "adapter": None if peft_config is None else json_config_of_peft(peft_config),
        "quantization": None if quantization_config is None else quantization_config.to_dict(),
        "distributed": {"world_size": args.world_size,
                        "type": str(args.distributed_state.distributed_type).rpartition(".")[2]},
        "trl": {"config_class": classes[0].__name__, "given": given,
                "curate_defaults": {k: v for k, v in defaults.items() if k not in spec},
                "config": json_config(args)},
        "notes": chosen.notes, "packages": package_versions(),
    }
    if main_process:
        write_record(output_dir, record)
    location = str(Path(model.model).expanduser()) if looks_local(model.model) else model.model
    try:
        trainer = method.trainer(location, args, data, processing_class, peft_config=peft_config,
                                 quantization_config=quantization_config)
    except ValueError as exc:  # TRL's own refusals of an option combination, said in one line
        raise ConfigError(f"TRL's {method.trainer_class.rpartition(':')[2]}: "
                          f"{str(exc).strip().splitlines()[0]}") from exc
    record["notes"] = {**chosen.notes, **method.describe(trainer)}
    meter = Meter()
    output = trainer.train()
    cost = run_cost(meter, trainer, data, model)
    trainer.save_model(str(output_dir))
    result = training_result(trainer, output)
    if data.eval_dataset is not None:
        result["eval"] = trainer.evaluate()
    record.update(status="finished", result=result, cost=cost)
    if main_process:
        write_record(output_dir, record)
    return TrainResult(Path(output_dir), record, trainer, main_process)


def model_init_kwargs(spec: ModelSpec, args: Any, model_args: Any) -> dict[str, Any]:
    """What TRL's trainer loads the model with, built as ``trl sft`` builds it (revision,
    ``trust_remote_code``, ``attn_implementation`` and ``dtype`` from ``ModelConfig``), the
    config's own ``model_init_kwargs`` winning; a hub name loads from the local cache only
    when the hub is unreachable."""
    kwargs = {"revision": model_args.model_revision,
              "trust_remote_code": getattr(args, "trust_remote_code", spec.trust_remote_code),
              "attn_implementation": model_args.attn_implementation, "dtype": model_args.dtype,
              **{k: v for k, v in hub_options(spec.model).items() if k != "revision"}}
    return {**kwargs, **(args.model_init_kwargs or {})}


def json_config_of_peft(peft_config: Any) -> dict[str, Any]:
    """A PEFT config (``LoraConfig``) as JSON-ready values."""
    import json

    return json.loads(json.dumps(peft_config.to_dict(), default=lambda v: sorted(v) if isinstance(v, set)
                                 else str(v), sort_keys=True))


def check_args(data: TrainingData, processing_class: Any, args: Any, model: str) -> None:
    """What TRL would only find while mapping the dataset, said before the model loads:
    conversational rows need a chat template."""
    if not data.conversational or chat_template_of(processing_class) is not None:
        return
    if getattr(args, "chat_template_path", None) is not None:
        return
    if hasattr(args, "chat_template_path"):
        fix = "give one with `chat_template_path` (a .jinja file, or a model whose template to copy)"
    else:
        fix = (f"{type(args).__name__} has no option for one: save a chat_template.jinja with the "
               "tokenizer, or train on plain-text columns")
    raise ConfigError(f"`{model}` has no chat template, and {data.where} is conversational: {fix}")
