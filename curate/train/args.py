"""TRL's own config classes, filled from a YAML file and ``key=value`` overrides.

curate declares none of TRL's options: the keys are the fields of the method's config
class (``SFTConfig``, ``DPOConfig``, ...) and of TRL's ``ModelConfig`` (``use_peft``,
``lora_r``, ``lora_target_modules``, ``load_in_4bit``, ``attn_implementation``, ``dtype``,
...), the two classes ``trl sft`` and ``trl dpo`` parse. The values go through TRL's own
parser (``TrlParser``, a ``transformers.HfArgumentParser``), so ``--set learning_rate=1e-4``
is converted by the field's own type exactly as ``trl sft --learning_rate 1e-4`` would be,
and a list option takes its values separated by spaces, as on TRL's command line
(``--set "lora_target_modules=q_proj v_proj"``). An unknown key fails before anything
loads, naming the key and the closest valid one.
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


def option_names(*config_classes: type) -> list[str]:
    """The options the ``config_classes`` take (their dataclass fields), in order."""
    return [f.name for c in config_classes for f in dataclasses.fields(c) if f.init]


def check_keys(config_classes: Sequence[type], keys: Sequence[str], *, where: str) -> None:
    """Every key is a field of one of ``config_classes``; else one line with the closest field."""
    names = option_names(*config_classes)
    for key in keys:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
            owners = " or ".join(c.__name__ for c in config_classes)
            hint = f"; did you mean `{close[0]}`?" if close else f" (see the fields of {owners})"
            raise ConfigError(f"{where}: unknown {owners} option `{key}`{hint}")


def build_configs(config_classes: Sequence[type], *, file_values: Mapping[str, Any],
                  overrides: Mapping[str, str], defaults: Mapping[str, Any], where: str) -> tuple[Any, ...]:
    """One instance of each of ``config_classes``: ``defaults`` < ``file_values`` < ``overrides``,
    parsed together as ``trl sft`` parses its classes (TRL's ``TrlParser``)."""
    from trl import TrlParser

    check_keys(config_classes, list(file_values), where=where)
    check_keys(config_classes, list(overrides), where="--set")
    parser = TrlParser(list(config_classes))  # type: ignore[arg-type]  # dataclass types
    names = " and ".join(c.__name__ for c in config_classes)

    def error(message: str) -> NoReturn:
        raise ConfigError(f"{names}: {message}")

    parser.error = error  # type: ignore[method-assign]  # one line instead of argparse's usage + exit
    parser.set_defaults(**{**defaults, **file_values})
    several = {a.dest for a in parser._actions if a.nargs in ("+", "*")}
    argv: list[str] = []
    for key, value in overrides.items():
        argv += [f"--{key}", *(value.split() if key in several else [value])]
    try:
        return tuple(parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{names}: {str(exc).strip().splitlines()[0]}") from None


def json_config(config: Any) -> dict[str, Any]:
    """A TRL config (a ``TrainingArguments`` or a plain dataclass such as ``ModelConfig``) as
    JSON-ready values (what the run record keeps)."""
    import json

    values = config.to_dict() if hasattr(config, "to_dict") else dataclasses.asdict(config)
    return json.loads(json.dumps(values, default=str, sort_keys=True))
