"""`catalog validate`: check entries against their data, not just their schema.

For each source or benchmark: the YAML validates (done when the catalog loads), the
licence is set, local files exist, and every mapped column resolves in the first rows
of the data. Hub entries are checked for their schema and pinned revision only, since
checking them means downloading.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from curate.catalog import Source, resolve_files
from curate.errors import ConfigError, SourceError
from curate.ingest.mapping import mapped_refs, resolve_column
from curate.ingest.readers import read_batches

SAMPLE_ROWS = 100


@dataclass
class Check:
    """What ``check_source`` found for one catalog entry: ok, and a message."""
    entry: str
    file: Path
    ok: bool
    message: str


def check_source(source: Source, file: Path, data_root: Path) -> Check:
    """One entry's check result (never raises for a data problem)."""
    if source.location.hf is not None:
        hub = source.location.hf
        return Check(source.name, file, True,
                     f"hub dataset {hub.repo}@{hub.revision[:12]}: schema only (offline)")
    try:
        files = resolve_files(source.location, data_root, entry=source.name)
        batch = next(read_batches(source.location, data_root, batch_rows=SAMPLE_ROWS,
                                  entry=source.name), None)
    except (ConfigError, SourceError) as exc:
        return Check(source.name, file, False, str(exc))
    if batch is None or batch.table.num_rows == 0:
        return Check(source.name, file, False, f"no readable rows in {files[0]}")
    try:
        missing = [ref for ref in mapped_refs(source.mapping)
                   if resolve_column(ref, batch.table.schema).type is None]
    except ConfigError as exc:
        return Check(source.name, file, False, str(exc))
    if missing:
        present = ", ".join(n for n in batch.table.column_names if not n.startswith("__"))
        names = ", ".join(f"`{m}`" for m in missing)
        return Check(source.name, file, False,
                     f"mapped column(s) {names} not in the first {SAMPLE_ROWS} rows of "
                     f"{files[0]}; columns there: {present}")
    return Check(source.name, file, True,
                 f"{len(files)} file(s); {batch.table.num_rows} sample rows map")
