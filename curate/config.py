"""Options models and strict YAML: how every option of curate is declared and read.

``Config`` is the base of every options class (stages, producers, generation backends,
scorers, commands): frozen, keyword-only, unknown keys refused. Its fields carry their
type, default, bounds and help text, so the same class drives the Python API, recipes
and YAML files, and the command line (``curate.cli.options`` builds click options from
them). Option types that several configs share are declared here once: ``Device``,
``Dtype``, ``ModelSpec``, and ``EngineConfig`` (a recipe's and the command line's choice of
executor).

YAML is read strictly (``read_yaml``: a key given twice is an error) and validated with
``validate_model``: a failure names the file, each bad key and, for an unknown key, the
closest valid one.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from curate.errors import ConfigError


class Config(BaseModel):
    """Base of every options class: frozen, keyword-only, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


# -- option types shared by several configs ------------------------------------------------

_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def _check_device(value: str) -> str:
    if not _DEVICE.fullmatch(value):
        raise ValueError(f"device `{value}` is not one of `auto`, `cpu`, `mps`, `cuda`, `cuda:N`")
    return value


Device = Annotated[str, AfterValidator(_check_device)]
"""Where a model runs: `auto` (a GPU when there is one), `cpu`, `mps`, `cuda`, `cuda:1`, ..."""
DEVICE_HELP = "Where the model runs: `auto` (a GPU when there is one), `cpu`, `cuda`, `cuda:1`."

Dtype = Literal["auto", "float32", "bfloat16", "float16"]
"""A model's weights dtype; `auto`: bfloat16 on a GPU, float32 on the CPU."""
DTYPE_HELP = "Model weights' dtype; `auto`: bfloat16 on a GPU, float32 on the CPU."


class ModelSpec(Config):
    """A model to load: a hub name with a pinned revision, or a local folder."""

    model: str = Field(description="A hub name (pin `revision`) or a local folder.")
    revision: str | None = Field(None, description="Hub revision (commit sha, tag or branch) of `model`.")
    trust_remote_code: bool = Field(
        False, description="Run code that ships with the model (off unless you trust it).")


class EngineConfig(Config):
    """Where a build's stages run: in this process, or on a Ray cluster."""

    engine: Literal["local", "ray"] = Field("local", description=(
        "`local`: in this process, one shard at a time; `ray`: on a Ray cluster (extra `ray`), "
        "the same stages and the same release."))
    ray_address: str | None = Field(None, description=(
        "`ray`: the cluster to join (`host:6379`, `ray://host:10001`, `auto`; `local`: a new "
        "local cluster) [default: $RAY_ADDRESS, else the cluster `ray start` runs on this "
        "machine, else a new local cluster of its CPUs]."))
    workers: int | None = Field(None, ge=1, description=(
        "`ray`: shards scored at once (actors of a model stage, tasks otherwise) [default: the "
        "cluster's CPUs]."))
    cpus_per_worker: float = Field(0.5, gt=0, description=(
        "`ray`: CPUs each worker asks for; a fraction leaves room for Ray Data's own tasks (a "
        "pool of whole-CPU actors can starve them)."))
    partitions: int = Field(8, ge=1, description=(
        "`ray`: hash partitions of the grouping steps (LSH buckets, exact-dedup ids)."))


# -- strict YAML ---------------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load, except that a key given twice in one mapping is an error."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key `{key}` appears twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def read_yaml(path: Path) -> Any:
    """Parse a YAML file safely; errors name the file and the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: byte {exc.start}: not UTF-8 ({exc.reason}); save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply") from None


def validate_model(model: type[M], data: Any, *, where: str) -> M:
    """Validate ``data`` as ``model``; a failure becomes a ConfigError that names
    ``where``, each bad key and, for an unknown key, the closest valid one."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [_explain(model, err) for err in exc.errors()]
        raise ConfigError(f"{where}: " + "; ".join(problems)) from None


def load_model(model: type[M], path: Path) -> M:
    """Validate the YAML file ``path`` as ``model`` (errors name the file and key)."""
    return validate_model(model, read_yaml(path), where=str(path))


def _explain(model: type[BaseModel], err: Any) -> str:
    loc = tuple(err["loc"])
    dotted = ".".join(str(p) for p in loc) or "(top)"
    if err["type"] == "extra_forbidden":
        valid = _fields_at(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
        hint = f"; did you mean `{close[0]}`?" if close else f"; valid keys: {', '.join(valid)}"
        return f"unknown key `{dotted}`{hint}"
    if err["type"] == "missing":
        return f"`{dotted}` is required"
    message = err["msg"].removeprefix("Value error, ")
    return f"`{dotted}`: {message}" if loc else message


def _fields_at(model: Any, loc: Sequence[Any]) -> list[str]:
    """The field names valid at ``loc`` inside ``model`` (for 'did you mean')."""
    current: Any = model
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _step(tp: Any, part: Any) -> Any:
    tp = _unwrap(tp)
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        for member in typing.get_args(tp):
            member = _unwrap(member)
            if isinstance(member, type) and issubclass(member, BaseModel):
                kind = member.model_fields.get("kind")
                if kind is not None and part in typing.get_args(kind.annotation):
                    return member  # the discriminator tag: stay on this member
                if part in member.model_fields:
                    return member.model_fields[part].annotation
        return None
    if origin in (list, dict):
        return typing.get_args(tp)[-1]
    if isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
        return tp.model_fields[part].annotation
    return None


def read_config(model: type[M], path: str | Path, overrides: Mapping[str, Any] | None = None) -> M:
    """``model`` from the YAML file ``path`` with ``overrides`` (nested mappings, e.g. the
    command line's values) merged on top; errors name the file and the bad key."""
    data = read_yaml(Path(path)) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of options")
    return validate_model(model, merged(data, overrides or {}), where=str(path))


def merged(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``top`` on top, nested mappings merged key by key."""
    result = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result
