"""Shared fixtures: the real data beside the project, and helpers to ingest a source."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from curate.catalog import Catalog, Source, resolve_data_root
from curate.config import load_model
from curate.ingest import SourceResult, ingest_source
from curate.store import RunStore

DATA = resolve_data_root()


@pytest.fixture(scope="session")
def data_root() -> Path:
    assert DATA.is_dir(), f"the shared data must sit beside the project: {DATA}"
    return DATA


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog.load()


def write_yaml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


CHAT_SOURCE = """
name: {name}
version: 1
license: CC-BY-4.0
domain: general
origin: real
task: qa
location: {{path: {path}, allow_outside_data_root: true}}
mapping: {{kind: chat, question: q, answer: a}}
"""


def write_chat_source(folder: Path, name: str, rows: Sequence[dict | str]) -> Path:
    """``folder/<name>.jsonl`` (a dict row as JSON, a string as the line it is, bad lines
    included), outside the data root, and its chat entry (question ``q``, answer ``a``) in
    ``folder/catalog/sources``; the catalog folder."""
    path = folder / f"{name}.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    write_yaml(folder / "catalog/sources" / f"{name}.yaml", CHAT_SOURCE.format(name=name, path=path))
    return folder / "catalog"


MCQA_BENCHMARK = """
name: {name}
version: 1
license: MIT
domain: medical
task: mcqa
location: {{path: {path}}}
allow_outside_data_root: true
mapping:
  {{kind: mcqa, question: {question}, options: {options}, answer: {answer}, answer_format: {answer_format}}}
"""


def write_mcqa_benchmark(folder: Path, name: str, rows: Sequence[dict], *, question: str = "q",
                         options: str = "opts", answer: str = "a", answer_format: str = "letter") -> Path:
    """``folder/<name>.jsonl`` (the rows as JSON Lines), outside the data root, and its MCQA
    benchmark entry in ``folder/cat/benchmarks``; the catalog folder."""
    path = folder / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_yaml(folder / "cat/benchmarks" / f"{name}.yaml", MCQA_BENCHMARK.format(
        name=name, path=path, question=question, options=options, answer=answer, answer_format=answer_format))
    return folder / "cat"


def source_from_yaml(tmp_path: Path, text: str) -> Source:
    return load_model(Source, write_yaml(tmp_path / "entry.yaml", text))


def ingest_into(
    source: Source, run_dir: Path, data_root: Path, **kwargs
) -> tuple[SourceResult, pl.DataFrame, pl.DataFrame]:
    """Ingest one source; return the result, its records and its quarantine."""
    store = RunStore(run_dir)
    folder = store.source(source.name)
    result = ingest_source(source, folder, data_root=data_root, **kwargs)
    records = _read(folder.files("records"))
    quarantine = _read(folder.files("quarantine"))
    return result, records, quarantine


def _read(files: list[Path]) -> pl.DataFrame:
    frames = [pl.read_parquet(f) for f in files]
    return pl.concat(frames) if frames else pl.DataFrame()


@dataclass(frozen=True)
class DemoBuild:
    """The demo recipe built once per session (`curate build-mix demo`), as `make demo` does."""

    runs: Path
    """The runs folder (``<runs>/demo/0.1.0`` is the run, ``<runs>/_cache`` its caches)."""
    run: Path
    release: Path
    output: str
    """What `curate build-mix demo` printed."""


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory) -> DemoBuild:
    """The demo run and release, built once for every test that needs them (about 2 min)."""
    from click.testing import CliRunner

    from curate.cli import main

    tmp = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(main, ["build-mix", "demo", "--runs", str(tmp / "runs"),
                                       "--releases", str(tmp / "releases")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return DemoBuild(tmp / "runs", tmp / "runs/demo/0.1.0", tmp / "releases/demo/0.1.0", result.output)
