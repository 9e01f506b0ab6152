"""Model merging: a mergekit config from a base model and fine-tuned models, run by
mergekit when its extra is installed (``pip install 'curate[merge]'``).

Methods: ``linear`` (a weighted average, no base model), ``task_arithmetic``, ``ties``
and ``dare_ties`` (task vectors against ``base_model``; ``density`` is the share of each
task vector kept: DARE drops the rest at random and, with ``rescale``, scales what is kept
back to the task vector's L1 norm (mergekit's ``rescale``), TIES by magnitude). Weights are
one number per model, or per layer (``layer_weights``: mergekit's gradients). The options
are ``MergeConfig``; the config written is mergekit's own YAML (``merge_method``,
``base_model``, ``models`` with ``parameters: {weight, density}``, ``parameters``,
``dtype``, ``out_dtype``, ``tokenizer_source``, ``chat_template``), ``mergekit.yaml`` in
the output folder, so ``mergekit-yaml`` reproduces the merge.

The tokenizer: left to itself, mergekit copies the base model's tokenizer files,
``chat_template.jinja`` and ``generation_config.json`` (``mergekit/merge.py``:
``_copy_tokenizer``, whose donor is the base model), so a merge of chat models over a
pretrained base would get the base's template and stop tokens. curate has mergekit's same
copy take them from ``tokenizer_from`` (default: the first of ``models``) instead; the
weights are merged as they are. ``tokenizer_source`` is mergekit's other way, for models whose
vocabularies differ: mergekit builds the tokenizer (``base``, ``union`` or a model's) and
re-indexes the embedding rows to it (the vocabulary size becomes the tokenizer's length);
curate then copies that model's ``generation_config.json``, which mergekit does not write.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator

from curate.config import Config, Dtype, read_config
from curate.errors import ConfigError, MissingDependencyError
from curate.models import looks_local, resolve_dtype

Method = Literal["linear", "task_arithmetic", "ties", "dare_ties"]
WITH_BASE = ("task_arithmetic", "ties", "dare_ties")
WITH_DENSITY = ("ties", "dare_ties")
CONFIG_FILE = "mergekit.yaml"


class MergeRun(Config):
    """Where ``curate train merge`` writes, whether it merges, and a YAML file of its options."""

    out: str = Field(description="Folder for mergekit.yaml and the merged model.")
    config_only: bool = Field(False, description="Write mergekit.yaml (checked by mergekit) without merging.")
    config_path: str | None = Field(None, description=(
        "YAML file of the merge's options (MergeConfig's fields, e.g. `layer_weights`); the command "
        "line's options win."))


class MergeConfig(Config):
    """Options of a merge: the method, the models with their weights (and densities), the
    base model the task vectors are taken against, the dtype and DARE's seed."""

    method: Method = Field("dare_ties", description="mergekit merge method.")
    base_model: str | None = Field(None, description=(
        "Base model the task vectors are taken against (task_arithmetic, ties, dare_ties)."))
    models: list[str] = Field(description="The models to merge: hub names or local folders.")
    weights: list[float] | None = Field(None, description=(
        "Weight of each model, in the order of `models` (or `layer_weights`)."))
    layer_weights: list[list[float]] | None = Field(None, description=(
        "Instead of `weights`, per-layer weights: for each model, values mergekit interpolates from the "
        "first layer to the last (a mergekit gradient), e.g. [[0.2, 0.8], [0.8, 0.2]]."))
    densities: list[float] | None = Field(None, description=(
        "Share of each model's task vector kept (ties, dare_ties), in the order of `models`."))
    dtype: Dtype = Field("float32", description="dtype mergekit computes in; `auto`: float32 (mergekit "
                                                "runs on the CPU).")
    out_dtype: Dtype | None = Field(None, description=(
        "dtype of the merged weights written (mergekit's `out_dtype`) [default: `dtype`]; `auto`: float32."))
    normalize: bool = Field(True, description="Divide by the sum of the weights (every method but "
                                              "task_arithmetic).")
    rescale: bool | None = Field(None, description=(
        "dare_ties: scale the kept task-vector entries back to the task vector's L1 norm (mergekit's "
        "`rescale`) [default: mergekit's, on]."))
    int8_mask: bool | None = Field(None, description=(
        "ties, dare_ties: hold the sign-consensus mask as int8 to save memory (mergekit's `int8_mask`; "
        "the merge is the same) [default: mergekit's, off]."))
    tokenizer_from: str | None = Field(None, description=(
        "The model whose tokenizer files, chat template and generation_config.json the merged model "
        "carries (mergekit's tokenizer copy, from this model instead of the base; the weights are not "
        "re-indexed) [default: the first of `models`]."))
    tokenizer_source: str | None = Field(None, description=(
        "For models whose vocabularies differ, mergekit's `tokenizer_source` instead: `base`, `union` "
        "or a model; mergekit builds that tokenizer and re-indexes the embedding rows to it."))
    chat_template: str | None = Field(None, description=(
        "The merged model's chat template (mergekit's `chat_template`): `auto` (the most common among "
        "the models), a template name mergekit ships (chatml, llama3, ...) or a Jinja string "
        "[default: the tokenizer's own]."))
    seed: int | None = Field(None, description="Seed of DARE's random drop.")

    @model_validator(mode="after")
    def _check(self) -> MergeConfig:
        method, models, densities = self.method, self.models, self.densities
        if not models:
            raise ValueError("give at least one model to merge (--model)")
        if (self.weights is None) == (self.layer_weights is None):
            raise ValueError("give one weight per model (--weight), or `layer_weights`, not both")
        weights = self.weights if self.weights is not None else self.layer_weights
        if len(weights or []) != len(models):
            raise ValueError(f"give one weight per model: {len(models)} models, {len(weights or [])} weights")
        if self.layer_weights is not None and any(len(w) < 1 for w in self.layer_weights):
            raise ValueError("each model's `layer_weights` needs at least one value")
        if self.rescale is not None and method != "dare_ties":
            raise ValueError(f"`rescale` applies to dare_ties, not `{method}`")
        if self.int8_mask is not None and method not in WITH_DENSITY:
            raise ValueError(f"`int8_mask` applies to {', '.join(WITH_DENSITY)}, not `{method}`")
        if self.tokenizer_from is not None and self.tokenizer_source is not None:
            raise ValueError("give `tokenizer_from` (copy a model's tokenizer) or `tokenizer_source` "
                             "(mergekit builds one), not both")
        if method in WITH_BASE and self.base_model is None:
            raise ValueError(f"`{method}` merges task vectors against a base model: give --base")
        if method in WITH_DENSITY:
            if densities is None or len(densities) != len(models):
                raise ValueError(f"`{method}` needs one density per model (share of each task vector kept, "
                                 f"0 < density <= 1), got {0 if densities is None else len(densities)}")
            bad = next((d for d in densities if not 0 < d <= 1), None)
            if bad is not None:
                raise ValueError(f"density {bad} is outside (0, 1]")
        elif densities:
            raise ValueError(f"`{method}` takes no densities (only {', '.join(WITH_DENSITY)} do)")
        return self

    def mergekit(self) -> dict[str, Any]:
        """mergekit's configuration (as a mapping), checked against mergekit's own schema
        when mergekit is installed."""
        entries = []
        weights: list[Any] = list(self.weights if self.weights is not None else self.layer_weights or [])
        for i, model in enumerate(self.models):
            parameters: dict[str, Any] = {"weight": weights[i]}
            if self.method in WITH_DENSITY and self.densities is not None:
                parameters["density"] = self.densities[i]
            entries.append({"model": model, "parameters": parameters})
        config: dict[str, Any] = {"merge_method": self.method, "models": entries,
                                  "dtype": _on_cpu(self.dtype)}
        if self.out_dtype is not None:
            config["out_dtype"] = _on_cpu(self.out_dtype)
        if self.base_model is not None:
            config["base_model"] = self.base_model
        shared = {"normalize": self.normalize} if self.method != "task_arithmetic" else {}
        optional = (("rescale", self.rescale), ("int8_mask", self.int8_mask))
        shared |= {k: v for k, v in optional if v is not None}
        if shared:
            config["parameters"] = shared
        if self.tokenizer_source is not None:
            config["tokenizer_source"] = self.tokenizer_source
        if self.chat_template is not None:
            config["chat_template"] = self.chat_template
        validate(config)
        return config

    @property
    def tokenizer_donor(self) -> str | None:
        """The model whose tokenizer files curate has mergekit copy (None when mergekit builds
        the tokenizer from ``tokenizer_source``)."""
        return None if self.tokenizer_source is not None else self.tokenizer_from or self.models[0]

    @property
    def generation_source(self) -> str | None:
        """The model whose ``generation_config.json`` the merge gets: the tokenizer's, so the
        stop tokens follow the chat template (none for mergekit's `base` or `union`)."""
        source = self.tokenizer_donor or self.tokenizer_source
        return None if source in ("base", "union") else source


def _on_cpu(dtype: str) -> str:
    """A dtype as mergekit takes it; `auto` is what it means on the CPU, where mergekit runs."""
    return str(resolve_dtype("auto", "cpu")).removeprefix("torch.") if dtype == "auto" else dtype


def read_merge_config(path: str | Path | None, overrides: dict[str, Any]) -> MergeConfig:
    """The merge's options: the YAML file at ``path`` (if any) with ``overrides`` on top."""
    from curate.config import validate_model

    if path is None:
        return validate_model(MergeConfig, overrides, where="options")
    return read_config(MergeConfig, path, overrides)


def validate(config: dict[str, Any]) -> Any:
    """mergekit's ``MergeConfiguration`` for ``config`` (None when mergekit is missing);
    a config it rejects is a ConfigError."""
    try:
        from mergekit.config import MergeConfiguration
    except ImportError:
        return None
    try:
        return MergeConfiguration.model_validate(config)
    except ValueError as exc:
        raise ConfigError(f"mergekit rejects the config: {str(exc).splitlines()[0]}") from None


def write_merge_config(config: MergeConfig, out: str | Path) -> Path:
    """Write mergekit's configuration for ``config`` as ``out/mergekit.yaml``; its path."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CONFIG_FILE
    path.write_text(yaml.safe_dump(config.mergekit(), sort_keys=False), "utf-8")
    return path


def run_merge(config: MergeConfig, out: str | Path) -> Path:
    """Write mergekit.yaml and run mergekit on the CPU into ``out`` (the merged model, the
    tokenizer and chat template of ``tokenizer_source`` and, when that is a model, its
    generation config); ``out``."""
    try:
        from mergekit.merge import run_merge as mergekit_merge
        from mergekit.options import MergeOptions
    except ImportError:
        raise MissingDependencyError("mergekit", "merge") from None
    for model in [config.base_model, *config.models]:
        if model is not None and looks_local(model) and not Path(model).expanduser().is_dir():
            raise ConfigError(f"cannot merge `{model}`: no such folder")
    path = write_merge_config(config, out)
    mergekit = config.mergekit()
    donor = config.tokenizer_donor
    options = MergeOptions(device="cpu", copy_tokenizer=donor is None, lazy_unpickle=False, quiet=True,
                           random_seed=config.seed)
    merge_config = validate(mergekit)
    mergekit_merge(merge_config, str(out), options=options)
    if donor is not None:  # mergekit's own tokenizer copy, its donor the chosen model, not the base
        from mergekit.common import ModelReference
        from mergekit.merge import _copy_tokenizer

        swapped = merge_config.model_copy(update={"base_model": ModelReference.model_validate(donor)})
        _copy_tokenizer(swapped, str(out), options=options)
    generation = _copy_generation_config(config.generation_source, Path(out))
    (Path(out) / "curate-merge.json").write_text(json.dumps(
        {"config": str(path), "mergekit": mergekit, "options": config.model_dump(mode="json"),
         "tokenizer_from": donor, "generation_config_from": generation},
        indent=2, sort_keys=True) + "\n", "utf-8")
    return Path(out)


def _copy_generation_config(source: str | None, out: Path) -> str | None:
    """Copy ``source``'s ``generation_config.json`` into ``out`` (mergekit writes none when it
    builds the tokenizer); the source, or None when there is none to copy."""
    if source is None:
        return None
    from transformers import GenerationConfig

    from curate.models import hub_options

    try:
        generation = GenerationConfig.from_pretrained(source, **hub_options(source))
    except OSError:  # the model ships none: generation follows its config.json
        return None
    generation.save_pretrained(out)
    return source


@dataclass(frozen=True)
class Merged:
    """What ``merge`` did: the merge method and models, the config written, the output folder."""

    method: str
    models: int
    config: Path
    out: Path
    merged: bool
    """False when only the config was written (``config_only``)."""


def merge(config: MergeConfig, run: MergeRun) -> Merged:
    """Write the mergekit config into ``run.out`` and, unless ``run.config_only``, merge there."""
    out = Path(run.out)
    if run.config_only:
        written = write_merge_config(config, out)
    else:
        run_merge(config, out)
        written = out / CONFIG_FILE
    return Merged(config.method, len(config.models), written, out, not run.config_only)
