"""Model merging: a mergekit config from a base model and fine-tuned models, run by
mergekit when its extra is installed (``pip install 'curate[merge]'``).

Methods: ``linear`` (a weighted average, no base model), ``task_arithmetic``, ``ties``
and ``dare_ties`` (task vectors against ``base_model``; ``density`` is the share of each
task vector kept: DARE drops the rest at random and rescales, TIES by magnitude). The
options are ``MergeConfig``; the config written is mergekit's own YAML
(``merge_method``, ``base_model``, ``models`` with ``parameters: {weight, density}``,
``dtype``), ``mergekit.yaml`` in the output folder, so ``mergekit-yaml`` reproduces the
merge.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator

from curate.config import Config, Dtype
from curate.errors import ConfigError, MissingDependencyError
from curate.models import looks_local, resolve_dtype

Method = Literal["linear", "task_arithmetic", "ties", "dare_ties"]
WITH_BASE = ("task_arithmetic", "ties", "dare_ties")
WITH_DENSITY = ("ties", "dare_ties")
CONFIG_FILE = "mergekit.yaml"


class MergeRun(Config):
    """Where ``curate train merge`` writes, and whether it merges."""

    out: str = Field(description="Folder for mergekit.yaml and the merged model.")
    config_only: bool = Field(False, description="Write mergekit.yaml (checked by mergekit) without merging.")


class MergeConfig(Config):
    """Options of a merge: the method, the models with their weights (and densities), the
    base model the task vectors are taken against, the dtype and DARE's seed."""

    method: Method = Field("dare_ties", description="mergekit merge method.")
    base_model: str | None = Field(None, description=(
        "Base model the task vectors are taken against (task_arithmetic, ties, dare_ties)."))
    models: list[str] = Field(description="The models to merge: hub names or local folders.")
    weights: list[float] = Field(description="Weight of each model, in the order of `models`.")
    densities: list[float] | None = Field(None, description=(
        "Share of each model's task vector kept (ties, dare_ties), in the order of `models`."))
    dtype: Dtype = Field("float32", description="dtype mergekit computes and writes in; `auto`: "
                                                "float32 (mergekit runs on the CPU).")
    normalize: bool = Field(True, description="Divide by the sum of the weights (every method but "
                                              "task_arithmetic).")
    seed: int | None = Field(None, description="Seed of DARE's random drop.")

    @model_validator(mode="after")
    def _check(self) -> MergeConfig:
        method, models, densities = self.method, self.models, self.densities
        if not models:
            raise ValueError("give at least one model to merge (--model)")
        if len(self.weights) != len(models):
            raise ValueError(f"give one weight per model: {len(models)} models, {len(self.weights)} weights")
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
        for i, model in enumerate(self.models):
            parameters = {"weight": self.weights[i]}
            if self.method in WITH_DENSITY and self.densities is not None:
                parameters["density"] = self.densities[i]
            entries.append({"model": model, "parameters": parameters})
        dtype: str = self.dtype
        if dtype == "auto":  # mergekit runs on the CPU: `auto` is what it means there
            dtype = str(resolve_dtype("auto", "cpu")).removeprefix("torch.")
        config: dict[str, Any] = {"merge_method": self.method, "models": entries, "dtype": dtype}
        if self.base_model is not None:
            config["base_model"] = self.base_model
        if self.method != "task_arithmetic":
            config["parameters"] = {"normalize": self.normalize}
        validate(config)
        return config


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
    """Write mergekit.yaml and run mergekit on the CPU into ``out`` (the merged model and the
    base or first model's tokenizer); ``out``."""
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
    options = MergeOptions(device="cpu", copy_tokenizer=True, lazy_unpickle=False, quiet=True,
                           random_seed=config.seed)
    mergekit_merge(validate(mergekit), str(out), options=options)
    (Path(out) / "curate-merge.json").write_text(json.dumps(
        {"config": str(path), "mergekit": mergekit, "options": config.model_dump(mode="json")},
        indent=2, sort_keys=True) + "\n", "utf-8")
    return Path(out)


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
