"""The example database: solved multiple-choice questions, with verified chains of thought.

Inputs (``read_input``):

- a **release** folder (``manifest.json``): its ``text`` rows whose user turn is a
  question with lettered options (``...\\nA. x\\nB. y``); the answer is read from the
  assistant turn (``C. text`` for a plain record, the ``Answer:`` conclusion of a
  synthetic chain of thought, which ``synth_cot_v1`` verified against the gold);
- a **file** (a parquet of records, or any file ingested with a catalog mapping, as
  ``curate synth cot`` reads it);
- a **catalog name** (a source or a benchmark): ingested as a run does.

``self_generated_cot`` runs ``synth_cot_v1`` (``curate.synth.cot.SynthCot``, through the
engine's ``run_producer``) over the records: MedPrompt's recipe is the gold answer
*withheld*, the model's own chain of thought kept only when its answer matches the gold
(the stage's ``wrong_answer`` check); what fails every attempt is left out and counted.

``index_rows`` turns records into index rows (``curate.rag.index.RECORD_SCHEMA``): the
question, options and gold answer of each ``mcqa`` record, its chain of thought when it
is a synthetic record of ``synth_cot_v1``. Records that are not multiple choice or have
no gold answer are skipped and counted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from curate.errors import ConfigError
from curate.rag.index import RECORD_SCHEMA
from curate.records import SCHEMA, conform
from curate.synth.config import SynthCotConfig

_OPTION = re.compile(r"^([A-Z])\. (.*)$")
COT_STAGE = "synth_cot_v1"


@dataclass
class Input:
    """Records read from an input, what it was, and the release's manifest hash."""

    records: pa.Table
    name: str
    release_hash: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)


def read_input(spec: str, *, source: str | None = None, catalog_dirs: Iterable[str | os.PathLike[str]] = (),
               data_root: str | os.PathLike[str] | None = None) -> Input:
    """The records of a release folder, a file or a catalog source/benchmark name."""
    from curate.catalog import Catalog, resolve_data_root
    from curate.read.sources import read_entries, read_file

    path = Path(spec)
    if path.is_dir():
        return read_release(path)
    catalog = Catalog.load(catalog_dirs)
    root = resolve_data_root(data_root)
    if path.is_file():
        return Input(read_file(path, source=source, catalog=catalog, data_root=root).records, name=str(path))
    if spec in catalog.benchmarks:
        entry = catalog.benchmark(spec)
    elif spec in catalog.sources:
        entry = catalog.source(spec)
    else:
        raise ConfigError(f"{spec}: not a release folder, a file, or a catalog source or benchmark "
                          "(see `curate catalog ls`)")
    (read,) = read_entries([entry], data_root=root)
    return Input(read.records, name=spec)


def read_release(folder: Path) -> Input:
    """A release's multiple-choice rows (text config) as records with their ``mcqa`` rebuilt."""
    from curate.read.releases import Release

    release = Release.open(folder)
    rows: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    for position, row in enumerate(release.table("text").to_pylist()):
        record, problem = _release_record(row, position)
        if record is None:
            skipped[problem] += 1
        else:
            rows.append(record)
    table = pa.Table.from_pylist(rows, schema=SCHEMA) if rows else SCHEMA.empty_table()
    return Input(table, name=f"{release.name}@{release.version}", release_hash=release.digest,
                 skipped=dict(sorted(skipped.items())))


def _release_record(row: dict[str, Any], position: int) -> tuple[dict[str, Any] | None, str]:
    from curate.synth.verify import extract_choice

    turns = [m for m in row.get("messages") or [] if m["role"] != "system"]
    if len(turns) != 2 or [m["role"] for m in turns] != ["user", "assistant"]:
        return None, "not_single_turn"
    question, options = split_options(turns[0]["content"])
    if len(options) < 2:
        return None, "not_mcqa"
    reply = turns[1]["content"] or ""
    plain = _OPTION.match(reply.strip())
    answer = ord(plain.group(1)) - ord("A") if plain and not _is_cot(row.get("meta")) else \
        extract_choice(reply, options)
    if answer is None or not 0 <= answer < len(options):
        return None, "no_gold_answer"
    record = {"id": row["id"], "source": row.get("source") or "release", "source_version": "release",
              "row": position, "kind": "mcqa", "messages": row["messages"],
              "mcqa": {"question": question, "options": options, "answer": answer}, "meta": row.get("meta"),
              "origin": "synthetic" if _is_cot(row.get("meta")) else "real"}
    return record, ""


def split_options(text: str) -> tuple[str, list[str]]:
    """A user turn ``question\\nA. x\\nB. y`` split into the question and its options (the
    trailing lines lettered A, B, C, ... in order); no options: the text and []."""
    lines = text.rstrip().split("\n")
    end = len(lines)
    while end > 0 and _OPTION.match(lines[end - 1].strip()):
        end -= 1
    tail = [m for line in lines[end:] if (m := _OPTION.match(line.strip()))]
    starts = [i for i, m in enumerate(tail) if m.group(1) == "A"]
    if not starts:
        return text, []
    tail = tail[starts[-1]:]
    end += starts[-1]
    if [m.group(1) for m in tail] != [chr(ord("A") + i) for i in range(len(tail))]:
        return text, []
    return "\n".join(lines[:end]).strip(), [m.group(2) for m in tail]


def _meta(meta: str | None) -> dict[str, Any]:
    if not meta:
        return {}
    try:
        value = json.loads(meta)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _is_cot(meta: str | None) -> bool:
    return _meta(meta).get("stage") == COT_STAGE


def index_rows(records: pa.Table) -> tuple[pa.Table, dict[str, int]]:
    """Index rows from records (see the module docstring) and the count of skipped records by reason."""
    rows = []
    skipped: Counter[str] = Counter()
    for record in conform(records).to_pylist():
        mcqa = record["mcqa"]
        if record["kind"] != "mcqa" or mcqa is None or len(mcqa["options"] or []) < 2:
            skipped["not_mcqa"] += 1
            continue
        if mcqa["answer"] is None:
            skipped["no_gold_answer"] += 1
            continue
        cot = None
        if _is_cot(record["meta"]):
            replies = [m["content"] for m in record["messages"] or [] if m["role"] == "assistant"]
            cot = replies[-1] if replies else None
        source = _meta(record["meta"]).get("parent_source") or record["source"]
        rows.append({"id": record["id"], "source": source,
                     "question": mcqa["question"], "options": mcqa["options"], "answer": mcqa["answer"],
                     "cot": cot, "meta": record["meta"]})
    return pa.Table.from_pylist(rows, schema=RECORD_SCHEMA), dict(sorted(skipped.items()))


def self_generated_cot(records: pa.Table, config: SynthCotConfig, *, work: Path,
                       cache: Path | None = None) -> tuple[pa.Table, dict[str, Any]]:
    """Chains of thought for ``records`` by ``synth_cot_v1`` (run by ``run_producer`` into a
    run store under ``work``), kept only when verified; the synthetic records and the stats
    (``rejected`` counts parents by their last reason)."""
    from curate.engine.runner import run_producer
    from curate.engine.stage import StageContext
    from curate.read.runs import RunReader
    from curate.store import RunStore
    from curate.synth.cot import SynthCot

    table = conform(records)
    step = SynthCot(config)
    run = RunReader(RunStore(work))
    digest = hashlib.sha256()
    for rid in table.column("id").to_pylist():
        digest.update(rid.encode())
    result = run_producer(step, run.store, lambda: table, input_fingerprint=digest.hexdigest(),
                          context=StageContext(cache=cache))
    return conform(run.records([step.source]).collect().to_arrow()), dict(result.stats)
