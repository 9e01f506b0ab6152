"""Command-line options generated from config models: each option is declared once.

Every option of every command comes from a field of a config model (``curate.config.Config``):
stage options, backend options, the model spec, ingestion, the catalog and data root,
the run and release folders. The command line adds only presentation (``--json``) and
arguments (INPUT, RECIPE, ...); a test walks every command and fails on a hand-written
option that shadows a config field.

A stage's or backend's pydantic model is the single declaration of an option: its
type, default, bounds (``ge``/``gt``/``le``/``lt``), choices (``Literal``) and help text
(``description``). ``config_options`` turns a model's fields into click options, the
way TRL builds its command line from its config dataclasses, so the command line can
never accept a value the config refuses. Each generated option is a ``ConfigOption``
that remembers where its value goes (``decontam`` -> ``minhash`` -> ``threshold``);
``settings`` gathers the values a command was given into the nested option mappings
the configs validate.

Fields whose type has no command-line form (mappings, nested models, lists of
numbers) are left to recipes; lists of strings become repeatable options.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import annotated_types
import click
from pydantic import BaseModel
from pydantic.fields import FieldInfo

F = TypeVar("F", bound=Callable[..., Any])


class ConfigOption(click.Option):
    """A click option generated from a config field; it knows where its value goes."""

    def __init__(self, *args: Any, target: tuple[str, ...], models: Sequence[type[BaseModel]],
                 field: str, member_default: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.member_default = member_default
        """True for an option of a union: unset, the chosen member's own default applies."""
        self.target = target
        """The path of keys its value is set at in ``settings``: (stage, ..., field)."""
        self.models = tuple(models)
        """The config models that declare the field (several for a backend union)."""
        self.field = field


def config_options(model: type[BaseModel], *, at: Sequence[str] = (),
                   only: Iterable[str] | None = None, skip: Iterable[str] = (),
                   rename: Mapping[str, str] | None = None,
                   required: Iterable[str] = ()) -> Callable[[F], F]:
    """Click options for the fields of ``model`` whose values go under the keys ``at``.

    ``only``/``skip`` choose fields; ``rename`` gives a field another option name
    (``benchmarks`` -> ``--benchmark``; a flag's off switch after a slash: ``private/public``);
    ``required`` fields must be given (as must a field without a default).
    """
    names = _chosen(model, only, skip)
    rename = dict(rename or {})
    must = set(required)

    def decorate(command: F) -> F:
        for name in reversed(names):
            info = model.model_fields[name]
            command = _option(name, rename.get(name, name), info, _click_type(info), target=(*at, name),
                              models=[model], required=name in must or info.is_required())(command)
        return command

    return decorate


def union_options(models: Sequence[type[BaseModel]], *, discriminator: str, at: Sequence[str] = (),
                  rename: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """Options for a discriminated union of models (the generation backends): the
    discriminator as a required choice, and every other field of any member, optional,
    its help naming the members that take it. A value a member does not take is refused
    by that member's validation, naming the option."""
    rename = dict(rename or {})
    fields: dict[str, list[type[BaseModel]]] = {}
    for model in models:
        for name in model.model_fields:
            if name != discriminator:
                fields.setdefault(name, []).append(model)

    def decorate(command: F) -> F:
        choices = [_literal_values(m.model_fields[discriminator].annotation)[0] for m in models]
        for name in reversed(list(fields)):
            owners = fields[name]
            kinds = [_click_type(o.model_fields[name]) for o in owners]
            kind = kinds[0] if len({repr(k) for k in kinds}) == 1 else click.STRING
            users = ", ".join(_literal_values(o.model_fields[discriminator].annotation)[0]
                              for o in owners)
            # Describe the field as the most general member does (not a fixed Literal).
            general = next((o for o in owners
                            if typing.get_origin(o.model_fields[name].annotation) is not Literal), owners[0])
            command = _option(name, rename.get(name, name), general.model_fields[name], kind,
                              target=(*at, name), models=owners, help_prefix=f"[{users}] ",
                              optional=True)(command)
        return click.option(
            f"--{discriminator.replace('_', '-')}", cls=ConfigOption, type=click.Choice(choices),
            required=True, target=(*at, discriminator), models=models, field=discriminator,
            help="The generation backend; `offline` writes template text for tests and demos only.",
        )(command)

    return decorate


def settings(context: click.Context) -> dict[str, Any]:
    """The values the command's ``ConfigOption``s were given, as nested mappings
    (``{"decontam": {"benchmarks": [...], "min_containment": 0.6}}``); options left at
    their default (unset, None, or an empty repeatable option) are left out, so the
    config's default holds and the library sees only what the user gave."""
    from click.core import ParameterSource

    gathered: dict[str, Any] = {}
    for param in context.command.params:
        if not isinstance(param, ConfigOption):
            continue
        value = context.params.get(param.name or "")
        if value is None or (param.multiple and not value):
            continue
        if context.get_parameter_source(param.name or "") in (ParameterSource.DEFAULT, None):
            continue
        node = gathered
        for key in param.target[:-1]:
            node = node.setdefault(key, {})
        node[param.target[-1]] = list(value) if param.multiple else value
    return gathered


def given(context: click.Context) -> dict[str, Any]:
    """The command's other parameters (not generated from a config), by name."""
    generated = {p.name for p in context.command.params if isinstance(p, ConfigOption)}
    return {k: v for k, v in context.params.items() if k not in generated}


# -- one field -> one option ------------------------------------------------------------------

def _chosen(model: type[BaseModel], only: Iterable[str] | None, skip: Iterable[str]) -> list[str]:
    fields = list(model.model_fields)
    if only is not None:
        wanted = list(only)
        unknown = [n for n in wanted if n not in fields]
        if unknown:
            raise TypeError(f"{model.__name__} has no fields {unknown}")
        fields = wanted
    excluded = set(skip)
    return [n for n in fields if n not in excluded]


def _option(field: str, name: str, info: FieldInfo, kind: Any, *, target: tuple[str, ...],
            models: Sequence[type[BaseModel]], required: bool = False, help_prefix: str = "",
            optional: bool = False) -> Callable[[F], F]:
    """The click option of one field (``kind``: its click type); no option (the command
    unchanged) for a field with no command-line form."""
    if kind is None:
        return lambda command: command
    flag = name.replace("_", "-")
    has_default = info.default is not None and not info.is_required() and info.default_factory is None
    default = None if optional or not has_default else info.default
    options: dict[str, Any] = {
        "help": help_prefix + (info.description or ""), "required": required,
        "show_default": default is not None and not isinstance(default, bool) or None,
    }
    if kind is bool:  # `rename={"private": "private/public"}` names the off switch
        on, _, off = flag.partition("/")
        declarations = [f"--{on}/--{off or 'no-' + on}"]
        options["default"] = default
        options["show_default"] = default is not None
    elif isinstance(kind, Multiple):
        declarations = [f"--{flag}"]
        options.update(multiple=True, type=kind.item)
    else:
        declarations = [f"--{flag}"]
        options.update(type=kind, default=default)
    return click.option(*declarations, cls=ConfigOption, target=target, models=models,
                        field=field, member_default=optional, **options)


def _click_type(info: FieldInfo) -> Any:
    """The click type of a field: bool, a bounded int or float, a choice, str (a path too),
    ``Multiple`` (a list or tuple of strings, numbers or choices), or None (no command-line
    form)."""
    annotation = _without_none(info.annotation)
    origin = typing.get_origin(annotation)
    if annotation is bool:
        return bool
    if annotation in (int, float):
        return _bounded(annotation, info.metadata)
    if annotation in (str, Path):
        return click.STRING
    if origin is Literal:
        return click.Choice([str(v) for v in _literal_values(annotation)])
    if origin in (list, tuple):
        item = typing.get_args(annotation)[0] if typing.get_args(annotation) else None
        if item in (str, Path):
            return Multiple(click.STRING)
        if item in (int, float):
            return Multiple(click.INT if item is int else click.FLOAT)
        if typing.get_origin(item) is Literal:
            return Multiple(click.Choice([str(v) for v in _literal_values(item)]))
    return None


@dataclass(frozen=True)
class Multiple:
    """A repeatable option of a list field; ``item`` is the click type of one value."""

    item: click.ParamType


def _bounded(kind: type, metadata: Sequence[Any]) -> Any:
    low: Any = None
    high: Any = None
    low_open = high_open = False
    for item in metadata:
        if isinstance(item, annotated_types.Ge):
            low = item.ge
        elif isinstance(item, annotated_types.Gt):
            low, low_open = item.gt, True
        elif isinstance(item, annotated_types.Le):
            high = item.le
        elif isinstance(item, annotated_types.Lt):
            high, high_open = item.lt, True
    if low is None and high is None:
        return click.INT if kind is int else click.FLOAT
    if kind is int:  # an open integer bound is a closed one, one step in
        return click.IntRange(None if low is None else low + low_open,
                              None if high is None else high - high_open)
    return click.FloatRange(low, high, min_open=low_open, max_open=high_open)


def _without_none(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _literal_values(annotation: Any) -> tuple[Any, ...]:
    return typing.get_args(_without_none(annotation))
