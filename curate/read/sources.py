"""Catalog entries and files read as records, exactly as a run reads them.

Every reader of a source (the one-file commands, ``curate synth cot``, the retrieval
index, benchmark items, adversarial prompts) goes through ingestion: the same readers,
mapping, ids and quarantine as ``curate build-mix``, into a temporary run store that is
gone when the reading is done. ``temporary_run`` keeps that store open for callers that
run stages over it (``curate.pipeline.adhoc``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curate.catalog import Catalog, Source
from curate.errors import ConfigError
from curate.ingest import ingest
from curate.ingest.files import ingest_file, source_for_file
from curate.ingest.mapping import QUARANTINE_SCHEMA
from curate.ingest.runner import Progress
from curate.read.runs import RunReader
from curate.records import SCHEMA, conform
from curate.store import RunStore

RECORD_COLUMNS = frozenset({"id", "kind", "messages", "source", "row"})
"""Columns that mark a parquet file as records already (the kept records of a run, say)."""


@dataclass
class Records:
    """What reading one source gave: its records (one per readable row, in row order) and
    the rows that could not become records, with their reasons."""

    entry: Source
    records: pa.Table
    quarantine: pa.Table

    @property
    def rows(self) -> int:
        """Rows in the source's files: records plus quarantined rows."""
        return self.records.num_rows + self.quarantine.num_rows


@contextmanager
def temporary_run(prefix: str = "curate-") -> Iterator[RunReader]:
    """A run store in a temporary folder, removed when the block ends."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield RunReader(RunStore(Path(tmp)))


def ingest_entries(run: RunReader, entries: Sequence[Source], *, data_root: Path,
                   benchmarks: Sequence[Source] = (), progress: Progress | None = None) -> None:
    """Ingest ``entries`` (as sources) and ``benchmarks`` into ``run``; a ConfigError naming
    each entry that failed."""
    result = ingest(list(entries), run.store, data_root=data_root, benchmarks=list(benchmarks),
                    progress=progress)
    if result.failed:
        raise ConfigError("; ".join(f"`{r.name}`: {r.error}" for r in result.failed))


def read_entries(entries: Sequence[Source], *, data_root: Path) -> list[Records]:
    """The records and quarantine of each catalog entry (a source or a benchmark), in order."""
    with temporary_run("curate-read-") as run:
        ingest_entries(run, entries, data_root=data_root)
        return [_records(run, entry) for entry in entries]


def read_file(path: str | os.PathLike[str], *, source: str | None = None, catalog: Catalog,
              data_root: Path, progress: Progress | None = None) -> Records:
    """The records of one file: a parquet file of records as it is; any other file read
    with the mapping of the catalog source or benchmark named ``source``, or as a file
    with a ``messages`` column (``curate.ingest.files.ingest_file``)."""
    file = Path(path)
    if source is None and file.suffix == ".parquet" and file.is_file():
        if RECORD_COLUMNS <= set(pq.read_schema(file).names):
            return Records(source_for_file(file, like=None), conform(pq.read_table(file)),
                           QUARANTINE_SCHEMA.empty_table())
    with temporary_run("curate-read-") as run:
        entry = ingest_file(file, run.store, source=source, catalog=catalog, data_root=data_root,
                            progress=progress)
        return _records(run, entry)


def _records(run: RunReader, entry: Source) -> Records:
    files = run.record_files([entry.name])
    records = pa.concat_tables([pq.read_table(f) for f in files]) if files else SCHEMA.empty_table()
    quarantine = run.quarantined([entry.name]).collect().to_arrow()
    return Records(entry, conform(records), quarantine)
