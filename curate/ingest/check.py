"""`catalog validate`: check entries against their data, not just their schema.

For each source or benchmark: the YAML validates (done when the catalog loads), the
licence is set, local files exist, and every mapped column resolves in the first rows
of the data. Hub entries are checked for their schema and pinned revision only, since
checking them means downloading.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from curate.catalog import Catalog, Recipe, Source, resolve_data_root, resolve_files
from curate.config import load_model, read_yaml
from curate.errors import ConfigError, CurateError, SourceError
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
    kind: str = "source"
    """``source`` (sources and benchmarks) or ``mix``."""

    def to_json(self) -> dict[str, object]:
        """The entry's line of ``curate catalog validate --json``."""
        return {"name": self.entry, "kind": self.kind, "path": str(self.file), "ok": self.ok,
                "message": self.message}


@dataclass
class CatalogCheck:
    """What ``check_catalog`` found: one check per entry."""

    checks: list[Check] = field(default_factory=list)

    @property
    def valid(self) -> int:
        """Entries that passed."""
        return sum(c.ok for c in self.checks)

    def to_json(self) -> dict[str, object]:
        """``curate catalog validate --json``'s document."""
        return {"entries": [c.to_json() for c in self.checks], "valid": self.valid,
                "total": len(self.checks)}


def check_catalog(paths: Sequence[str | os.PathLike[str]] = (), *,
                  catalog_dirs: Iterable[str | os.PathLike[str]] = (),
                  data_root: str | os.PathLike[str] | None = None) -> CatalogCheck:
    """Check catalog entries: the entry files ``paths``, or every entry of the catalogs.
    A recipe is checked by resolving it against the catalogs; a source or benchmark by
    ``check_source``."""
    root = resolve_data_root(data_root)
    catalog = Catalog.load(catalog_dirs)
    entries: list[tuple[Source | Recipe, Path]] = []
    for path in map(Path, paths):
        data = read_yaml(path)
        recipe = isinstance(data, dict) and "sources" in data
        entries.append((load_model(Recipe, path) if recipe else load_model(Source, path), path))
    if not paths:
        entries += [(e, catalog.files[("sources", n)]) for n, e in catalog.sources.items()]
        entries += [(e, catalog.files[("benchmarks", n)]) for n, e in catalog.benchmarks.items()]
        entries += [(e, catalog.files[("mixes", n)]) for n, e in catalog.mixes.items()]
    result = CatalogCheck()
    for entry, path in entries:
        if isinstance(entry, Recipe):
            try:
                catalog.recipe(path)
                check = Check(entry.name, path, True,
                              f"recipe: {len(entry.sources)} sources, stages {list(entry.stages)}", "mix")
            except CurateError as exc:
                check = Check(entry.name, path, False, str(exc), "mix")
        else:
            check = check_source(entry, path, root)
        result.checks.append(check)
    return result


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
