"""Model merging: a mergekit config from a base model and fine-tuned models, run by
mergekit when its extra is installed (``pip install 'curate[merge]'``).

Methods: ``linear`` (a weighted average, no base model), ``task_arithmetic``, ``ties``
and ``dare_ties`` (task vectors against ``base_model``; ``density`` is the share of each
task vector kept: DARE drops the rest at random and rescales, TIES by magnitude). The
config is mergekit's own YAML (``merge_method``, ``base_model``, ``models`` with
``parameters: {weight, density}``, ``dtype``), written as ``mergekit.yaml`` in the
output folder, so ``mergekit-yaml`` reproduces the merge.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from curate.errors import ConfigError, MissingDependencyError
from curate.models import looks_local

Method = Literal["linear", "task_arithmetic", "ties", "dare_ties"]
WITH_BASE = ("task_arithmetic", "ties", "dare_ties")
WITH_DENSITY = ("ties", "dare_ties")
CONFIG_FILE = "mergekit.yaml"


def merge_config(*, method: Method, models: Sequence[str], weights: Sequence[float],
                 base_model: str | None = None, densities: Sequence[float] | None = None,
                 dtype: Literal["float32", "bfloat16", "float16"] = "float32", normalize: bool = True,
                 seed: int | None = None) -> dict[str, Any]:
    """A mergekit configuration (as a mapping), checked against mergekit's own schema
    when mergekit is installed."""
    if not models:
        raise ConfigError("give at least one model to merge (--model)")
    if len(weights) != len(models):
        raise ConfigError(f"give one weight per model: {len(models)} models, {len(weights)} weights")
    if method in WITH_BASE and base_model is None:
        raise ConfigError(f"`{method}` merges task vectors against a base model: give --base")
    if method in WITH_DENSITY:
        if densities is None or len(densities) != len(models):
            raise ConfigError(f"`{method}` needs one density per model (share of each task vector kept, "
                              f"0 < density <= 1), got {0 if densities is None else len(densities)}")
        bad = next((d for d in densities if not 0 < d <= 1), None)
        if bad is not None:
            raise ConfigError(f"density {bad} is outside (0, 1]")
    elif densities:
        raise ConfigError(f"`{method}` takes no densities (only {', '.join(WITH_DENSITY)} do)")
    entries = []
    for i, model in enumerate(models):
        parameters: dict[str, float] = {"weight": float(weights[i])}
        if method in WITH_DENSITY and densities is not None:
            parameters["density"] = float(densities[i])
        entries.append({"model": model, "parameters": parameters})
    config: dict[str, Any] = {"merge_method": method, "models": entries, "dtype": dtype}
    if base_model is not None:
        config["base_model"] = base_model
    if method != "task_arithmetic":
        config["parameters"] = {"normalize": normalize}
    if seed is not None:
        config["random_seed"] = seed  # not mergekit's config: kept for run options
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
        return MergeConfiguration.model_validate({k: v for k, v in config.items() if k != "random_seed"})
    except ValueError as exc:
        raise ConfigError(f"mergekit rejects the config: {str(exc).splitlines()[0]}") from None


def write_merge_config(config: dict[str, Any], out: str | Path) -> Path:
    """Write ``config`` as ``out/mergekit.yaml``; its path."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CONFIG_FILE
    path.write_text(yaml.safe_dump({k: v for k, v in config.items() if k != "random_seed"}, sort_keys=False),
                    "utf-8")
    return path


def run_merge(config: dict[str, Any], out: str | Path) -> Path:
    """Write the config and run mergekit on the CPU into ``out`` (the merged model and the
    base or first model's tokenizer); ``out``."""
    try:
        from mergekit.merge import run_merge as mergekit_merge
        from mergekit.options import MergeOptions
    except ImportError:
        raise MissingDependencyError("mergekit", "merge") from None
    for model in [config.get("base_model"), *(m["model"] for m in config["models"])]:
        if model is not None and looks_local(model) and not Path(model).expanduser().is_dir():
            raise ConfigError(f"cannot merge `{model}`: no such folder")
    path = write_merge_config(config, out)
    parsed = validate(config)
    options = MergeOptions(device="cpu", copy_tokenizer=True, lazy_unpickle=False, quiet=True,
                           random_seed=config.get("random_seed"))
    mergekit_merge(parsed, str(out), options=options)
    (Path(out) / "curate-merge.json").write_text(json.dumps(
        {"config": str(path), "mergekit": config}, indent=2, sort_keys=True) + "\n", "utf-8")
    return Path(out)
