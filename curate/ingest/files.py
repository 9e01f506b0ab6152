"""One file as a source: for the one-file commands and for tools that read a user's file
the way a catalog entry would."""

from __future__ import annotations

import re
from pathlib import Path

from curate.catalog import Catalog, Source
from curate.errors import ConfigError
from curate.ingest.check import check_source
from curate.ingest.runner import Progress, ingest
from curate.store import RunStore


def source_for_file(path: Path, *, like: Source | None) -> Source:
    """A source entry reading ``path``: with ``like``'s mapping, or a `messages` column."""
    location = {"path": str(path.resolve())}
    if like is not None:
        return like.model_copy(update={"location": like.location.model_copy(
            update={"path": location["path"], "hf": None})})
    name = re.sub(r"[^a-z0-9_.-]+", "_", path.stem.lower()).strip("_.-") or "input"
    return Source.model_validate({
        "name": name, "version": "adhoc", "license": "unknown", "domain": "unknown",
        "task": "unknown", "location": location,
        "mapping": {"kind": "chat", "messages": "messages"},
    })


def ingest_file(path: Path, store: RunStore, *, source: str | None, catalog: Catalog,
                data_root: Path, progress: Progress | None = None) -> Source:
    """Ingest the file ``path`` into ``store`` as one source, read with the mapping of the
    catalog source or benchmark named ``source``, or as a file with a `messages` column;
    its entry. A file the mapping cannot read fails with a ConfigError that says so.
    ``progress(source, rows)`` after each batch read."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    like = None
    if source is not None:  # a benchmark's mapping reads its file as well as a source's does
        like = catalog.benchmarks[source] if source in catalog.benchmarks else catalog.source(source)
    entry = source_for_file(path, like=like)
    check = check_source(entry, path, data_root)
    if not check.ok:
        hint = "" if source else "; pass --source NAME to read it with a catalog entry's mapping"
        raise ConfigError(f"{path}: {check.message}{hint}")
    ingested = ingest([entry], store, data_root=data_root, progress=progress)
    if ingested.failed:
        raise ConfigError("; ".join(f"{r.name}: {r.error}" for r in ingested.failed))
    return entry


SAMPLE_BYTES = 1 << 20


def estimate_rows(path: Path) -> int | None:
    """How many rows the file ``path`` holds, as a progress total: exact from a parquet
    file's metadata; for JSON Lines and CSV, the file size over the mean line length of its
    first MiB (exact for a smaller file; a CSV's header line is not counted); None for other
    files or an unreadable one."""
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if ".parquet" in suffixes:
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        if not {".jsonl", ".csv", ".ndjson"} & set(suffixes) or ".gz" in suffixes:
            return None
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(SAMPLE_BYTES)
    except OSError:
        return None
    lines = head.count(b"\n") + (1 if head and not head.endswith(b"\n") and size <= SAMPLE_BYTES else 0)
    if size > SAMPLE_BYTES and lines:
        lines = round(size / (len(head) / lines))
    return max(0, lines - (1 if ".csv" in suffixes else 0))
