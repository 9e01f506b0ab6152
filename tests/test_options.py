"""Command-line options are generated from the config models, so their bounds, choices
and defaults are the configs' own: a walk over every command checks it."""

from __future__ import annotations

import os
import typing

import annotated_types
import click
import pytest
from click.testing import CliRunner
from test_cli import commands

from curate.cli import main
from curate.cli.options import ConfigOption

GENERATED = [(path, command) for path, command in commands(main)
             if any(isinstance(p, ConfigOption) for p in command.params)]


def test_the_one_file_commands_and_synthesis_take_their_options_from_configs():
    assert {path for path, _ in GENERATED} >= {
        "dedup", "decontaminate", "clean", "score", "diversify", "synth cot"}


@pytest.mark.parametrize("path, command", GENERATED, ids=[p for p, _ in GENERATED])
def test_every_generated_option_has_its_fields_bounds_choices_and_default(path, command):
    names = [p.name for p in command.params]
    assert len(names) == len(set(names)), f"`curate {path}`: two options share a name"
    for param in command.params:
        if not isinstance(param, ConfigOption):
            continue
        assert param.help and any((m.model_fields[param.field].description or "") in param.help
                                  for m in param.models)
        for model in param.models:
            info = model.model_fields[param.field]
            bounds = {type(m): m for m in info.metadata}
            kind = param.type
            if isinstance(kind, click.IntRange | click.FloatRange):
                ge, gt = bounds.get(annotated_types.Ge), bounds.get(annotated_types.Gt)
                le, lt = bounds.get(annotated_types.Le), bounds.get(annotated_types.Lt)
                if isinstance(kind, click.IntRange):  # an open integer bound, one step in
                    assert kind.min == (ge.ge if ge else gt.gt + 1 if gt else None)
                    assert kind.max == (le.le if le else lt.lt - 1 if lt else None)
                else:
                    assert (kind.min, kind.min_open) == ((ge.ge, False) if ge else (gt.gt, True)
                                                         if gt else (None, False))
                    assert (kind.max, kind.max_open) == ((le.le, False) if le else (lt.lt, True)
                                                         if lt else (None, False))
            elif isinstance(kind, click.Choice) and param.field != "backend" and len(param.models) == 1:
                literal = typing.get_args(info.annotation)
                values = [a for a in literal if a is not type(None)]
                if typing.get_origin(info.annotation) is not typing.Literal:  # Literal | None
                    values = [v for a in literal for v in typing.get_args(a)]
                assert list(kind.choices) == [str(v) for v in values]
            else:
                assert not bounds.get(annotated_types.Ge) and not bounds.get(annotated_types.Gt), (
                    f"`curate {path} --{param.name}`: the field is bounded, the option is not")
            if not (param.required or param.multiple or param.member_default):
                expected = None if info.default_factory is not None else info.default
                assert param.default == expected, f"`curate {path} --{param.name}`"


@pytest.mark.parametrize("arguments, message", [
    (["score", "--max-length", "16"], "16 is not in the range x>=32"),      # QualityConfig ge=32
    (["score", "--drop-fraction", "1"], "1.0 is not in the range 0<=x<1"),    # lt=1
    (["dedup", "--threshold", "1"], "0<x<1"),
    (["diversify", "--order-by", "length"], None),
    (["synth", "cot", "--backend", "offline", "--max-attempts", "21"], "1<=x<=20"),
])
def test_the_command_line_refuses_what_the_config_refuses(tmp_path, arguments, message):
    data = tmp_path / "in.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "q"}]}\n')
    extra = ["--help"] if message is None else []
    result = CliRunner().invoke(main, [*arguments, str(data), "--out", str(tmp_path / "o.parquet"),
                                       *extra])
    if message is None:
        assert result.exit_code == 0
    else:
        assert result.exit_code == 2
        assert message in result.output


def _config_fields() -> set[str]:
    """Every field of every config model the commands are built from (and of their kin)."""
    from curate.config import Config

    seen: set[str] = set()
    todo = list(Config.__subclasses__())
    while todo:
        model = todo.pop()
        seen.update(model.model_fields)
        todo += model.__subclasses__()
    return seen


PRESENTATION = {"as_json", "help", "version", "verbose"}
"""Options that belong to the command line itself: how it prints, nothing a library takes."""


@pytest.mark.parametrize("path, command", commands(main), ids=[p for p, _ in commands(main)])
def test_no_hand_written_option_shadows_a_config_field(path, command):
    fields = _config_fields()
    for param in command.params:
        if (not isinstance(param, click.Option) or isinstance(param, ConfigOption)
                or param.name in PRESENTATION):
            continue
        names = {param.name, *(o.lstrip("-").replace("-", "_") for o in param.opts)}
        assert not names & fields, (
            f"`curate {path} {param.opts[0]}` is written by hand but the config field(s) "
            f"{sorted(names & fields)} declare it: generate it with config_options")
        raise AssertionError(f"`curate {path} {param.opts[0]}` is written by hand: declare it in a config")


def _leaves(group, prefix=""):
    return [(p, c) for p, c in commands(group, prefix) if not isinstance(c, click.Group)]


@pytest.mark.parametrize("path, command", _leaves(main), ids=[p for p, _ in _leaves(main)])
def test_every_command_prints_json(path, command):
    assert any(p.name == "as_json" for p in command.params), f"`curate {path}` has no --json"


def test_the_command_table_gives_each_commands_own_first_sentence():
    import re

    from curate.cli import COMMANDS

    for name, (target, short) in COMMANDS.items():
        command = main.get_command(click.Context(main), name)
        first = re.split(r"(?<=\.)\s", " ".join(command.help.split("\n\n")[0].split()))[0]
        assert short == first, f"COMMANDS[{name!r}] says {short!r}; the command says {first!r}"
        assert target.endswith(f":{command.callback.__name__}")


# The library functions the commands call take their options as keyword arguments named
# like the config fields the command line is generated from: the defaults must agree.
SYNCED = [
    ("curate.pipeline.run:open_run", "curate.pipeline.run:RunFolder"),
    ("curate.pipeline.run:open_run", "curate.catalog:CatalogConfig"),
    ("curate.pipeline.adhoc:run_on_file", "curate.pipeline.adhoc:FileOptions"),
    ("curate.mixes.publish:push_release", "curate.mixes.publish:PushConfig"),
    ("curate.evaluate.mcqa:evaluate_mcqa", "curate.evaluate.config:McqaFiles"),
    ("curate.evaluate.audit:audit", "curate.evaluate.config:AuditFiles"),
    ("curate.evaluate.lm_eval_export:export_lm_eval", "curate.evaluate.config:ExportFiles"),
    ("curate.rag.build:index_input", "curate.rag.config:IndexFiles"),
    ("curate.synth.cot:enhance_file", "curate.synth.config:CotFileOptions"),
    ("curate.rag.build:search_index", "curate.rag.config:QueryConfig"),
    ("curate.ingest.runner:ingest_source", "curate.ingest.runner:IngestConfig"),
]


@pytest.mark.parametrize("function, model", SYNCED, ids=[f for f, _ in SYNCED])
def test_library_defaults_agree_with_the_configs_the_options_come_from(function, model):
    import importlib
    import inspect

    def load(target):
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)

    def plain(value):
        if isinstance(value, list | tuple):
            return tuple(value)
        return str(value) if isinstance(value, os.PathLike) else value

    parameters = inspect.signature(load(function)).parameters
    compared = 0
    for name, info in load(model).model_fields.items():
        default = parameters[name].default if name in parameters else inspect.Parameter.empty
        if info.is_required() or default is inspect.Parameter.empty:
            continue
        expected = info.default_factory() if info.default_factory is not None else info.default
        assert plain(parameters[name].default) == plain(expected), (
            f"{function}({name}={parameters[name].default!r}) but {model}.{name} defaults to {expected!r}")
        compared += 1
    assert compared, f"{function} takes none of {model}'s fields"


def test_a_folder_has_one_option_name_on_every_command():
    # `release ls --root` and `build-mix --out` named one folder twice (issue 30)
    names: dict[tuple[str, str], dict[str, set[str]]] = {}
    for path, command in GENERATED:
        for param in command.params:
            if isinstance(param, ConfigOption) and (param.field.endswith("_dir")
                                                    or param.field == "data_root"):
                for model in param.models:
                    names.setdefault((model.__name__, param.field), {}).setdefault(
                        param.opts[0], set()).add(path)
    several = {field: opts for field, opts in names.items() if len(opts) > 1}
    assert several == {}, several
    assert set(names[("ReleasesFolder", "releases_dir")]) == {"--releases"}
    assert set(names[("RunFolder", "runs_dir")]) == {"--runs"}
