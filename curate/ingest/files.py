"""One file as a source: for the one-file commands and for tools that read a user's file
the way a catalog entry would."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from curate.catalog import Catalog, Source, resolve_files
from curate.errors import ConfigError
from curate.ingest.check import check_source
from curate.ingest.runner import ingest
from curate.progress import Progress
from curate.store import RunStore


def source_for_file(path: Path, *, like: Source | None, mapping: dict[str, Any] | None = None) -> Source:
    """A source entry reading ``path``: with ``like``'s mapping, or ``mapping``, or a
    `messages` column."""
    # the user named this file on the command line: reading it is no escape from the data root
    location = {"path": str(path.resolve()), "allow_outside_data_root": True}
    if like is not None:
        return like.model_copy(update={"location": like.location.model_copy(
            update={**location, "hf": None})})
    name = re.sub(r"[^a-z0-9_.-]+", "_", path.stem.lower()).strip("_.-") or "input"
    return Source.model_validate({
        "name": name, "version": "adhoc", "license": "unknown", "domain": "unknown",
        "task": "unknown", "location": location,
        "mapping": mapping or {"kind": "chat", "messages": "messages"},
    })


def ingest_file(path: Path, store: RunStore, *, source: str | None, catalog: Catalog,
                data_root: Path, progress: Progress | None = None,
                mapping: dict[str, Any] | None = None) -> Source:
    """Ingest the file ``path`` into ``store`` as one source, read with the mapping of the
    catalog source or benchmark named ``source``, or with ``mapping`` (given inline), or as
    a file with a `messages` column; its entry. A file the mapping cannot read fails with a
    ConfigError that says so. ``progress`` gets a ``Tick`` after each batch read."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    like = None
    if source is not None:  # a benchmark's mapping reads its file as well as a source's does
        like = catalog.benchmarks[source] if source in catalog.benchmarks else catalog.source(source)
    entry = source_for_file(path, like=like, mapping=mapping)
    check = check_source(entry, path, data_root)
    if not check.ok:
        hint = "" if source or mapping else (
            "; name its columns (--question COLUMN --answer COLUMN, or --text-key COLUMN), or pass "
            "--source NAME to read it with a catalog entry's mapping")
        raise ConfigError(f"{path}: {check.message}{hint}")
    ingested = ingest([entry], store, data_root=data_root, progress=progress)
    if ingested.failed:
        raise ConfigError("; ".join(f"{r.name}: {r.error}" for r in ingested.failed))
    return entry


SAMPLE_BYTES = 1 << 20


def estimate_rows(path: Path, fmt: str | None = None) -> int | None:
    """How many rows the file ``path`` holds, as a progress total: exact from a parquet
    file's metadata; for JSON Lines and CSV, the file size times the newlines per byte of
    four blocks spread over it, 1 MiB in all (exact for a smaller file; a CSV's header line
    is not counted); None for other files or an unreadable one. ``fmt`` (`jsonl`, `csv`,
    `parquet`, `json`) overrides the format the suffix says."""
    suffixes = [s.lower() for s in path.suffixes]
    if fmt is None:
        fmt = next((f for s, f in ((".parquet", "parquet"), (".jsonl", "jsonl"), (".ndjson", "jsonl"),
                                   (".csv", "csv")) if s in suffixes), None)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        if fmt not in ("jsonl", "csv") or ".gz" in suffixes:
            return None
        size = path.stat().st_size
        with path.open("rb") as handle:
            if size <= SAMPLE_BYTES:
                data = handle.read()
                lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
            else:  # newlines per byte in four blocks spread over the file
                block = SAMPLE_BYTES // 4
                newlines = 0
                for k in range(4):
                    handle.seek((size - block) * k // 3)
                    newlines += handle.read(block).count(b"\n")
                lines = round(size * newlines / (4 * block))
    except OSError:
        return None
    return max(0, lines - (1 if fmt == "csv" else 0))


def estimate_source_rows(source: Source, data_root: Path) -> int | None:
    """The rows a catalog source's local files hold (``estimate_rows`` summed over them);
    None for a hub source, missing files, or a format without an estimate."""
    location = source.location
    if location.path is None:
        return None
    try:
        files = resolve_files(location, data_root)
        counts = [estimate_rows(path, location.file_format) for path in files]
    except (ConfigError, KeyError):
        return None
    return None if any(c is None for c in counts) else sum(c for c in counts if c is not None)
