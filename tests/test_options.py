"""Command-line options are generated from the config models, so their bounds, choices
and defaults are the configs' own: a walk over every command checks it."""

from __future__ import annotations

import typing

import annotated_types
import click
import pytest
from click.testing import CliRunner
from test_cli import commands

from curate.cli import main
from curate.options import ConfigOption

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
