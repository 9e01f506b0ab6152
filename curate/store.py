"""The run store: one folder per run, parquet shards, completion markers, stats.

```
runs/<recipe>/<run-id>/
  run.json                            the recipe, its sources and benchmarks, the data root
  release.json                        the release the run last wrote (path, status, composition)
  report.local.html                   with `build-mix --local-report`: the release report quoting
                                      every example, benchmark items too (local only, never published)
  ingest/<source>/records-00000.parquet, quarantine-00000.parquet, ...
  ingest/<source>/_done/00000.json    one marker per finished shard (its stats)
  ingest/<source>/_state.json         the fingerprint the shards belong to; `complete` when done
  ingest/synth_cot/records-00000.parquet, rejected-00000.parquet
                                      records a producer step made (synthesis), same layout
  benchmarks/<name>/...               benchmarks, ingested the same way
  <stage>/_scores/scores-<shard>.parquet, _done/, _state.json
                                      source, row, id and the stage's score columns
  <stage>/decisions.parquet           stage, keys, score columns, keep, reason (the code),
                                      reason_ref (its parameter: a benchmark, a record id)
  <stage>/stats.json                  counts by reason, options, fingerprints, seconds
  <stage>/reports/<name>.parquet      extra tables (decontam: contamination.parquet)
runs/_cache/                          caches shared by every run (synthesis completions)
```

A shard's files are written under a temporary name and renamed; its marker is written
last. A shard without a marker does not exist, so an interrupted run resumes cleanly.

A release folder (``ReleaseFolder``; written by ``curate.mixes.release``, read by
``curate.read.releases``):

```
releases/<name>/<version>/
  data/<config>/train-00000.parquet   the mix in TRL's column shapes, one folder per config
  manifest.json                       everything the release was made from, sha256 of every file
  README.md                           the Hugging Face dataset card
  removed.parquet                     every ingested row not in the mix, with stage and reason
  report.html                         the composition and score distributions, as pictures
```

Only this module spells these names: every other module asks ``RunStore`` for a folder
(``source``, ``benchmark``, ``stage``) and the folder for its files, or ``ReleaseFolder``
for a release's files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from curate.catalog import check_path_part, confined
from curate.errors import ConfigError

DONE = "_done"
STATE = "_state.json"


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable parts (configs, file identities, ...)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in blocks."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def write_json(path: Path, value: Any) -> None:
    """Write JSON atomically (temporary file, then rename), keys sorted, UTF-8."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n", "utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    """The JSON value stored at ``path``."""
    return json.loads(path.read_text("utf-8"))


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write one parquet file atomically, with settings that make it byte-reproducible."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd", write_statistics=True)
    os.replace(tmp, path)


def merge_stats(parts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Add up stats dicts: numbers add, nested dicts merge recursively."""
    total: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, Mapping):
                total[key] = merge_stats([total.get(key, {}), value])
            elif isinstance(value, int | float) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value
            else:
                total[key] = value
    return total


def folder_name(value: str, what: str) -> str:
    """``value`` when it is safe as one folder name; a ConfigError naming ``what`` else."""
    try:
        return check_path_part(value, what)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


class ShardedFolder:
    """A folder of shards that belong to one fingerprint, with per-shard markers.

    ``root`` (the run folder) is where the folder must lie: it is checked, symlinks
    resolved, before anything in it is created or deleted.
    """

    def __init__(self, path: Path, root: Path | None = None):
        self.path = path
        self.root = root

    def _checked(self) -> None:
        if self.root is not None:
            confined(self.path, self.root, what="run-store folder")

    def open(self, fingerprint: str, **info: Any) -> bool:
        """Make the folder hold shards of ``fingerprint``; wipe it when it held another.
        ``info`` goes into the state beside the fingerprint (what it was made from).

        Returns True when shards already there are kept (a resume).
        """
        self._checked()
        state = self.state()
        if state is not None and state.get("fingerprint") == fingerprint:
            self._drop_unmarked()
            state.pop("error", None)
            write_json(self.path / STATE, {**state, **info})
            return True
        if self.path.exists():
            shutil.rmtree(self.path)
        write_json(self.path / STATE, {**info, "fingerprint": fingerprint, "complete": False})
        return False

    def state(self) -> dict[str, Any] | None:
        """The folder's state (fingerprint, complete, error), or None when new."""
        path = self.path / STATE
        return read_json(path) if path.exists() else None

    def is_complete(self, fingerprint: str) -> bool:
        """Whether the folder holds every shard of ``fingerprint``."""
        state = self.state()
        return bool(state and state.get("fingerprint") == fingerprint and state.get("complete"))

    def mark_complete(self, **extra: Any) -> None:
        """Record that every shard is written (with ``extra`` in the state)."""
        state = self.state() or {}
        write_json(self.path / STATE, {**state, **extra, "complete": True})

    def mark_failed(self, error: str) -> None:
        """Record that the work failed with ``error`` (kept shards stay for a resume)."""
        state = self.state() or {}
        write_json(self.path / STATE, {**state, "complete": False, "error": error})

    def done(self) -> dict[str, dict[str, Any]]:
        """Finished shards: name -> the stats in its marker."""
        folder = self.path / DONE
        if not folder.is_dir():
            return {}
        return {p.stem: read_json(p) for p in sorted(folder.glob("*.json"))}

    def write_shard(self, name: str, tables: Mapping[str, pa.Table], stats: Mapping[str, Any]) -> None:
        """Write ``<prefix>-<name>.parquet`` for each table, then the shard's marker."""
        for prefix, table in tables.items():
            write_parquet(table, self.path / f"{prefix}-{name}.parquet")
        write_json(self.path / DONE / f"{name}.json", dict(stats))

    def files(self, prefix: str) -> list[Path]:
        """Data files of finished shards, in shard order."""
        return [self.path / f"{prefix}-{name}.parquet" for name in self.done()]

    def _drop_unmarked(self) -> None:
        done = set(self.done())
        for path in self.path.glob("*.parquet"):
            if path.stem.split("-", 1)[-1] not in done:
                path.unlink()
        for path in self.path.glob(".*.tmp"):
            path.unlink()


class StageFolder:
    """The folder of one stage: its score shards, decisions, stats and reports."""

    def __init__(self, path: Path):
        self.path = path

    @property
    def scores(self) -> ShardedFolder:
        """The score shards (one per ingested shard for row stages, one for the others)."""
        return ShardedFolder(self.path / "_scores")

    @property
    def decisions(self) -> Path:
        """``decisions.parquet``: ``stage``, keys, score columns, ``keep``, ``reason``, ``reason_ref``."""
        return self.path / "decisions.parquet"

    @property
    def stats(self) -> Path:
        """``stats.json``: counts by reason, options, fingerprints, seconds."""
        return self.path / "stats.json"

    def read_stats(self) -> dict[str, Any] | None:
        """The stage's stats, or None when it has not finished."""
        return read_json(self.stats) if self.stats.exists() else None

    def is_finished(self) -> bool:
        """Whether the stage wrote its decisions and stats."""
        return self.decisions.exists() and self.stats.exists()

    def report(self, name: str) -> Path:
        """The report table ``name`` (``contamination``)."""
        return self.path / "reports" / f"{name}.parquet"

    def reports(self) -> list[Path]:
        """Every report table the stage wrote, by name."""
        return sorted((self.path / "reports").glob("*.parquet"))


class RunStore:
    """Paths and helpers for one run folder."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @classmethod
    def for_recipe(cls, runs_dir: Path, recipe: str, run_id: str) -> RunStore:
        """The run folder ``runs_dir/<recipe>/<run_id>``; the recipe name and the run id
        must be safe folder names, and the folder must lie under ``runs_dir``."""
        folder = Path(runs_dir) / folder_name(recipe, "recipe name") / folder_name(run_id, "run id")
        confined(folder, runs_dir, what="run folder")
        return cls(folder)

    def source(self, name: str) -> ShardedFolder:
        """The folder of the ingested source ``name``."""
        return ShardedFolder(self.root / "ingest" / folder_name(name, "source name"), self.root)

    def benchmark(self, name: str) -> ShardedFolder:
        """The folder of the ingested benchmark ``name``."""
        return ShardedFolder(self.root / "benchmarks" / folder_name(name, "benchmark name"), self.root)

    def stage(self, name: str) -> StageFolder:
        """The folder of the stage ``name``."""
        return StageFolder(self.root / folder_name(name, "stage name"))

    def cache(self, name: str) -> Path:
        """A cache folder shared by every run beside this one (``runs/_cache/<name>``)."""
        return self.root.parents[1] / "_cache" / name

    def ingested_sources(self) -> list[str]:
        """The names of the sources with an ingest folder."""
        folder = self.root / "ingest"
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def stage_names(self) -> list[str]:
        """Stage folders in the order they ran (as recorded in run.json)."""
        info = self.run_info()
        return [s for s in info.get("stages", []) if self.stage(s).path.is_dir()] if info else []

    def run_info(self) -> dict[str, Any] | None:
        """The run's ``run.json`` (recipe, sources, data root), or None."""
        path = self.root / "run.json"
        return read_json(path) if path.exists() else None

    def write_run_info(self, info: Mapping[str, Any]) -> None:
        """Write the run's ``run.json``."""
        write_json(self.root / "run.json", dict(info))

    @property
    def local_report(self) -> Path:
        """``report.local.html``: the release report quoting every example row, contaminated
        rows beside the benchmark items they match; it stays in the run folder."""
        return self.root / "report.local.html"

    def release_record(self) -> dict[str, Any] | None:
        """What ``build-mix`` recorded of the release this run last wrote, or None."""
        path = self.root / "release.json"
        return read_json(path) if path.exists() else None

    def write_release_record(self, record: Mapping[str, Any]) -> None:
        """Record the release this run wrote (``release.json``): for ``curate inspect``."""
        write_json(self.root / "release.json", dict(record))


class ReleaseFolder:
    """The files of one release folder (``releases/<name>/<version>``)."""

    MANIFEST = "manifest.json"
    CARD = "README.md"
    REMOVED = "removed.parquet"
    REPORT = "report.html"
    RECIPE = "recipe.yaml"
    DATA = "data"

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    @classmethod
    def for_recipe(cls, releases_dir: str | os.PathLike[str], name: str, version: str) -> ReleaseFolder:
        """The folder ``releases_dir/<name>/<version>``; both must be safe folder names, and
        the folder must lie under ``releases_dir``."""
        folder = Path(releases_dir) / folder_name(name, "recipe name") / folder_name(version, "version")
        confined(folder, releases_dir, what="release folder")
        return cls(folder)

    @property
    def manifest(self) -> Path:
        """``manifest.json``: what the release was made from, and the sha256 of every file."""
        return self.path / self.MANIFEST

    @property
    def card(self) -> Path:
        """``README.md``: the Hugging Face dataset card."""
        return self.path / self.CARD

    @property
    def removed(self) -> Path:
        """``removed.parquet``: every ingested row not in the mix, with its stage and reason."""
        return self.path / self.REMOVED

    @property
    def report(self) -> Path:
        """``report.html``: composition and score distributions."""
        return self.path / self.REPORT

    @property
    def recipe(self) -> Path:
        """``recipe.yaml``: the recipe the release was built from, as given."""
        return self.path / self.RECIPE

    def files(self) -> list[str]:
        """Every file in the folder, as names relative to it, sorted."""
        return sorted(p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file())

    @classmethod
    def data_file(cls, config: str, index: int) -> str:
        """The name (relative, as the manifest lists it) of data file ``index`` of ``config``."""
        return f"{cls.DATA}/{config}/train-{index:05d}.parquet"

    @classmethod
    def data_pattern(cls, config: str) -> str:
        """The relative glob of ``config``'s data files (the dataset card's ``data_files``)."""
        return f"{cls.DATA}/{config}/*.parquet"

    @classmethod
    def config_of(cls, name: str) -> str | None:
        """The config a relative file name belongs to (``data/text/...`` -> ``text``), or None."""
        parts = name.split("/")
        return parts[1] if len(parts) == 3 and parts[0] == cls.DATA else None
