"""Where the command line writes: the terminal (rich), JSON on stdout, progress bars on stderr."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from curate.progress import Progress, Tick

if TYPE_CHECKING:
    from rich.console import Console

T = TypeVar("T")

json_option = click.option(
    "--json", "as_json", is_flag=True,
    help="Print one JSON document on stdout (stable keys) and nothing else.",
)
"""Every command's `--json`: its result as one JSON document instead of text."""


def console(*, stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr); off a terminal (a pipe, a log file) tables get
    room instead of 80 columns."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(highlight=False, soft_wrap=True, stderr=stderr, width=None if stream.isatty() else 160)


def jsonable(value: Any) -> Any:
    """``value`` as JSON-ready data: a result's ``to_json()``, dataclasses field by field,
    pydantic models dumped, paths as text."""
    if hasattr(value, "to_json"):
        return jsonable(value.to_json())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def emit_json(value: Any) -> None:
    """Print ``value`` as one JSON document on stdout."""
    click.echo(json.dumps(jsonable(value), indent=2, ensure_ascii=False, default=str))


def show(result: T, as_json: bool, view: Callable[[T], None]) -> T:
    """Print ``result`` with ``view``, or as JSON; ``result``."""
    if as_json:
        emit_json(result)
    else:
        view(result)
    return result


@contextmanager
def progress_bars(*, totals: Callable[[], Mapping[str, int]] | None = None,
                  rows: int | None = None) -> Iterator[Progress | None]:
    """Rich progress bars on stderr, one per piece of work a ``Tick`` names (a source being
    ingested, a stage, a part of a stage's work, a producer), when stderr is a terminal;
    None otherwise. ``totals()`` gives the rows expected per source, ``rows`` those of any
    other source (a one-file command's INPUT); a tick without a total shows no total."""
    if not sys.stderr.isatty():
        yield None
        return
    with rich_bars(dict(totals() if totals is not None else {}), rows) as ticks:
        yield ticks


@contextmanager
def rich_bars(expected: Mapping[str, int], rows: int | None = None) -> Iterator[Progress]:
    """The bars of ``progress_bars``, drawn whatever stderr is."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as Bars

    with Bars(TextColumn("{task.description:<36}"), BarColumn(), MofNCompleteColumn(),
              TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), transient=True,
              console=console(stderr=True)) as bar:
        tasks: dict[str, Any] = {}

        def tick(event: Tick) -> None:
            if event.step == "ingest":
                source = event.part or ""
                if source not in tasks:
                    tasks[source] = bar.add_task(f"ingest {source}", total=expected.get(source, rows))
                total = bar.tasks[tasks[source]].total
                if event.total is not None:  # the source is read: its bar, and its clock, stop
                    total = event.total
                elif total is not None:  # an estimated total that the rows outgrow follows them
                    total = max(total, event.done)
                bar.update(tasks[source], completed=event.done, total=total)
                return
            if event.name not in tasks:
                label = f"  {event.part}" if event.part else f"stage {event.step}"
                tasks[event.name] = bar.add_task(label, total=None)
            bar.update(tasks[event.name], completed=event.done, total=event.total or None)

        yield tick
