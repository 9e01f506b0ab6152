"""TRL's own config classes, filled from a YAML file and ``key=value`` overrides.

curate declares none of TRL's options: the keys are the fields of ``SFTConfig`` or
``DPOConfig``, and the values go through transformers' ``HfArgumentParser`` (the parser
behind TRL's ``TrlParser``), so ``--set learning_rate=1e-4`` is converted by the field's
own type exactly as ``trl sft --learning_rate 1e-4`` would be. An unknown key fails
before anything loads, naming the key and the closest valid one.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml

from curate.errors import ConfigError


def read_config_file(path: str | Path | None) -> dict[str, Any]:
    """The mapping in a YAML config file (empty when ``path`` is None)."""
    if path is None:
        return {}
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{file}: no such config file")
    try:
        values = yaml.safe_load(file.read_text("utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{file}: a config file is a mapping of option: value, not {type(values).__name__}")
    return {str(k): v for k, v in values.items()}


def parse_overrides(pairs: Sequence[str]) -> dict[str, str]:
    """``["key=value", ...]`` as a mapping; values stay text for the parser to convert."""
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"`--set {pair}`: give key=value, e.g. --set learning_rate=1e-4")
        values[key.strip()] = value
    return values


def option_names(config_class: type) -> list[str]:
    """The options ``config_class`` takes (its dataclass fields)."""
    return [f.name for f in dataclasses.fields(config_class) if f.init]


def check_keys(config_class: type, keys: Sequence[str], *, where: str) -> None:
    """Every key is a field of ``config_class``; else one line with the closest field."""
    names = option_names(config_class)
    for key in keys:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
            hint = f"; did you mean `{close[0]}`?" if close else f" (see `{config_class.__name__}`'s fields)"
            raise ConfigError(f"{where}: unknown {config_class.__name__} option `{key}`{hint}")


def build_config(config_class: type, *, file_values: Mapping[str, Any], overrides: Mapping[str, str],
                 defaults: Mapping[str, Any], where: str) -> Any:
    """An instance of ``config_class``: ``defaults`` < ``file_values`` < ``overrides``."""
    from transformers import HfArgumentParser

    check_keys(config_class, list(file_values), where=where)
    check_keys(config_class, list(overrides), where="--set")
    parser = HfArgumentParser(config_class)  # type: ignore[arg-type]  # any dataclass type

    def error(message: str) -> NoReturn:
        raise ConfigError(f"{config_class.__name__}: {message}")

    parser.error = error  # type: ignore[method-assign]  # one line instead of argparse's usage + exit
    parser.set_defaults(**{**defaults, **file_values})
    argv = [part for key, value in overrides.items() for part in (f"--{key}", value)]
    try:
        (config,) = parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{config_class.__name__}: {str(exc).strip().splitlines()[0]}") from None
    return config


def json_config(config: Any) -> dict[str, Any]:
    """A TRL config as JSON-ready values (what the run record keeps)."""
    import json

    return json.loads(json.dumps(config.to_dict(), default=str, sort_keys=True))
