"""`catalog validate` and `catalog add`: entries checked against their data, not just
their schema.

For each source or benchmark: the YAML validates (done when the catalog loads), the
licence is set, local files exist, and every mapped column resolves in the first rows
of the data. Hub entries are checked for their schema and pinned revision only, since
checking them means downloading. ``add_entry`` writes a new source entry from a file
(its turns' columns guessed when not given) or a pinned hub dataset, checked the same way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator

from curate.catalog import (
    NAME_PATTERN,
    Catalog,
    Location,
    Recipe,
    Source,
    portable_path,
    resolve_data_root,
    resolve_files,
)
from curate.config import Config, load_model, read_yaml, validate_model
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


class NewEntry(Config):
    """A source entry to write (``curate catalog add``): where its rows are, how they read
    as chats, and what the dataset card needs."""

    name: str = Field(pattern=NAME_PATTERN, description="The entry's name (its file is NAME.yaml).")
    path: str | None = Field(None, description=(
        "The data file (or glob): written relative to the data root when it lies under it."))
    hf: str | None = Field(None, description="A Hugging Face dataset repository instead of a file.")
    revision: str | None = Field(None, description=(
        "The dataset's commit sha or tag (a hub entry must be pinned, so it never drifts)."))
    split: str = Field("train", description="The hub split to read.")
    license: str = Field(min_length=1, description="SPDX-like licence id of the data (e.g. CC-BY-4.0).")
    domain: str = Field(description="Domain of the data (`medical`, `general`): the mix category.")
    task: str = Field("qa", description="Task (`qa`, `instruction`, `dialogue`).")
    origin: Literal["real", "synthetic"] = Field("real", description="`real` or `synthetic`.")
    question: str | None = Field(None, description=(
        "Column of the user turn [default, for a file: guessed from its columns]."))
    answer: str | None = Field(None, description="Column of the assistant turn.")
    messages: str | None = Field(None, description="Column already holding [{role, content}, ...].")
    description: str | None = Field(None, description="One or two sentences for the dataset card.")
    homepage: str | None = Field(None, description="Where the data comes from.")
    citation: str | None = Field(None, description="How to cite the data (a BibTeX entry).")
    catalog_dir: str = Field("catalogs", description="The catalog folder to write sources/NAME.yaml into.")

    @model_validator(mode="after")
    def _one_place(self) -> NewEntry:
        if (self.path is None) == (self.hf is None):
            raise ValueError("give the data: a file (PATH) or a hub dataset (--hf REPO), one of them")
        if self.hf is not None and not self.revision:
            raise ValueError("pin the hub dataset: --revision SHA (a commit sha or tag), so the entry "
                             "never drifts")
        if self.hf is not None and self.messages is None and self.question is None:
            raise ValueError("name the hub dataset's columns (--question/--answer or --messages): "
                             "curate does not download it to look")
        return self


GUESSES = (("question", "answer"), ("instruction", "output"), ("instruction", "response"),
           ("prompt", "response"), ("prompt", "completion"), ("input", "output"), ("query", "response"))
"""Column pairs ``curate catalog add`` recognises as (user turn, assistant turn), in order."""


@dataclass
class AddedEntry:
    """What ``add_entry`` wrote: the file, the entry, and its check against its data."""

    path: Path
    entry: Source = field(repr=False)
    check: Check

    def to_json(self) -> dict[str, object]:
        """``curate catalog add --json``: the file, the entry as written, the check."""
        return {"path": str(self.path), "entry": self.entry.model_dump(mode="json", exclude_defaults=True),
                "check": self.check.to_json()}


def add_entry(new: NewEntry, *, data_root: Path) -> AddedEntry:
    """Write ``new`` as ``<catalog_dir>/sources/<name>.yaml``: the mapping given, else (a file)
    a `messages` column or the first of ``GUESSES`` its columns hold; the path relative to
    the data root when the file lies under it (else absolute, with the opt-in to read
    outside it). The entry is validated and, for a file, checked against its first rows
    before it is written; an existing file is never overwritten."""
    target = Path(new.catalog_dir) / "sources" / f"{new.name}.yaml"
    if target.exists():
        raise ConfigError(f"{target} exists; entries are never overwritten: choose another name or edit it")
    location: dict[str, Any]
    if new.hf is not None:
        location = {"hf": {"repo": new.hf, "split": new.split, "revision": new.revision}}
    else:
        path = Path(new.path or "")
        files = resolve_files(Location(path=str(path.resolve()), allow_outside_data_root=True), data_root,
                              entry=new.name)
        relative = portable_path(files[0], data_root) if len(files) == 1 and not any(
            c in str(path) for c in "*?[") else None
        location = {"path": relative} if relative else {"path": str(path.resolve()),
                                                       "allow_outside_data_root": True}
    mapping = _mapping(new, location, data_root)
    entry = {"name": new.name, "version": 1, "license": new.license, "domain": new.domain,
             "origin": new.origin, "task": new.task,
             **{k: v for k in ("description", "homepage", "citation") if (v := getattr(new, k))},
             "location": location, "mapping": mapping}
    source = validate_model(Source, entry, where=str(target))
    check = check_source(source, target, data_root)
    if not check.ok:
        raise ConfigError(f"{target} not written: {check.message}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("# written by `curate catalog add`\n"
                      + yaml.safe_dump(entry, sort_keys=False, allow_unicode=True), "utf-8")
    return AddedEntry(target, source, check)


def _mapping(new: NewEntry, location: dict[str, Any], data_root: Path) -> dict[str, Any]:
    if new.messages is not None:
        return {"kind": "chat", "messages": new.messages}
    if new.question is not None:
        return {"kind": "chat", "question": new.question, **({"answer": new.answer} if new.answer else {})}
    batch = next(read_batches(Location.model_validate(location), data_root, batch_rows=SAMPLE_ROWS,
                              entry=new.name), None)
    columns = [] if batch is None else [c for c in batch.table.column_names if not c.startswith("__")]
    if "messages" in columns:
        return {"kind": "chat", "messages": "messages"}
    for question, answer in GUESSES:
        if question in columns and answer in columns:
            return {"kind": "chat", "question": question, "answer": answer}
    raise ConfigError(f"cannot tell which columns of {new.path} are the turns (columns: "
                      f"{', '.join(columns) or 'none'}): give --question COLUMN --answer COLUMN, or "
                      "--messages COLUMN")
