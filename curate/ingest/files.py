"""One file as a source: for the one-file commands and for tools that read a user's file
the way a catalog entry would."""

from __future__ import annotations

import re
from pathlib import Path

from curate.catalog import Catalog, Source
from curate.errors import ConfigError
from curate.ingest.check import check_source
from curate.ingest.runner import ingest
from curate.store import RunStore


def source_for_file(path: Path, *, like: Source | None) -> Source:
    """A source entry reading ``path``: with ``like``'s mapping, or a `messages` column."""
    # the user named this file on the command line: reading it is no escape from the data root
    location = {"path": str(path.resolve()), "allow_outside_data_root": True}
    if like is not None:
        return like.model_copy(update={"location": like.location.model_copy(
            update={**location, "hf": None})})
    name = re.sub(r"[^a-z0-9_.-]+", "_", path.stem.lower()).strip("_.-") or "input"
    return Source.model_validate({
        "name": name, "version": "adhoc", "license": "unknown", "domain": "unknown",
        "task": "unknown", "location": location,
        "mapping": {"kind": "chat", "messages": "messages"},
    })


def ingest_file(path: Path, store: RunStore, *, source: str | None, catalog: Catalog,
                data_root: Path) -> Source:
    """Ingest the file ``path`` into ``store`` as one source, read with the mapping of the
    catalog source or benchmark named ``source``, or as a file with a `messages` column;
    its entry. A file the mapping cannot read fails with a ConfigError that says so."""
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
    ingested = ingest([entry], store, data_root=data_root)
    if ingested.failed:
        raise ConfigError("; ".join(f"{r.name}: {r.error}" for r in ingested.failed))
    return entry
