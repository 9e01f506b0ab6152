"""Stream a recipe's sources into the run store, resumably, quarantining bad rows."""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa
from pydantic import Field

from curate.catalog import Source, confined, portable_path, resolve_files
from curate.config import Config
from curate.errors import ConfigError, SourceError
from curate.ingest.mapping import QUARANTINE_SCHEMA, columns_used, map_batch
from curate.ingest.readers import BadRow, one_line, read_batches
from curate.progress import Progress, Tick
from curate.records import id_connection
from curate.store import RunStore, ShardedFolder, fingerprint, merge_stats, sha256_file

log = logging.getLogger(__name__)
_CALLER_RAISES: contextvars.ContextVar[bool] = contextvars.ContextVar("curate_ingest_caller_raises",
                                                                       default=False)


@contextmanager
def failures_raised_by_caller() -> Iterator[None]:
    """Within this block a failed source is logged at debug level, not error: the caller
    (a one-benchmark read) raises the failure itself, so the user sees it once."""
    token = _CALLER_RAISES.set(True)
    try:
        yield
    finally:
        _CALLER_RAISES.reset(token)


def _failed(name: str, message: object) -> None:
    (log.debug if _CALLER_RAISES.get() else log.error)("source %s failed: %s", name, message)

DEFAULT_BATCH_ROWS = 20_000
DEFAULT_MAX_RECORD_BYTES = 16 << 20


class IngestConfig(Config):
    """How sources are read into a run: shard size and the largest row read."""

    batch_rows: int = Field(DEFAULT_BATCH_ROWS, ge=1,
                            description="Source rows per ingested shard (bounds memory).")
    max_record_bytes: int = Field(DEFAULT_MAX_RECORD_BYTES, ge=1, description=(
        "Largest raw row read (16 MiB of JSON or text); a larger one is quarantined as "
        "record_too_large."))


@dataclass
class SourceResult:
    """What ingesting one source did."""

    name: str
    rows: int = 0
    records: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    resumed_shards: int = 0
    error: str | None = None
    restarted: str | None = None
    """Why shards kept from an earlier run were dropped (settings or inputs changed)."""
    warning: str | None = None
    """Something the user should know though nothing failed (an empty input file)."""


@dataclass
class IngestResult:
    """What an ingestion did, per source and per benchmark."""
    run_dir: Path
    sources: list[SourceResult]
    benchmarks: list[SourceResult] = field(default_factory=list)

    @property
    def failed(self) -> list[SourceResult]:
        """The sources and benchmarks whose ingestion failed."""
        return [s for s in self.sources + self.benchmarks if s.error is not None]


_DIGESTS: dict[tuple[str, int, int, int, int], str] = {}


def _stat_key(path: Path) -> tuple[str, int, int, int, int]:
    """What says a file is unchanged without reading it: path, size, mtime, ctime, inode.
    (ctime moves on any write or ``touch``, so a file rewritten and given its old mtime
    back is read again.)"""
    st = path.stat()
    return (str(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def file_digest(path: Path, known: dict[str, Any] | None = None, *, name: str | None = None) -> str:
    """The SHA-256 of a file's bytes, computed once per identity (``_stat_key``): cached in
    the process, and taken from ``known`` (``{name: {"key": [...], "sha256": ...}}``, as a
    source folder's state records it, ``name`` defaulting to the path) when the identity
    matches."""
    key = _stat_key(path)
    if key in _DIGESTS:
        return _DIGESTS[key]
    seen = (known or {}).get(name or str(path))
    if isinstance(seen, dict) and seen.get("key") == list(key[1:]) and isinstance(seen.get("sha256"), str):
        digest: str = seen["sha256"]
    else:
        digest = sha256_file(path)
    _DIGESTS[key] = digest
    return digest


def file_name(path: Path, data_root: Path) -> str:
    """How a source folder's state names an input file: as its catalog entry does, relative
    to the data root (``catalog:<path>`` for a shipped file), so moving the data folder (or
    the project) changes no name; the absolute path for a file outside both."""
    return portable_path(path, data_root) or str(path)


def source_files(source: Source, data_root: Path, known: dict[str, Any] | None = None
                 ) -> dict[str, dict[str, Any]]:
    """Each local file of ``source`` by ``file_name``: its identity and the SHA-256 of its
    bytes (what a resume is keyed on: the content, wherever the data root is)."""
    if source.location.hf is not None:
        return {}
    files = {}
    for path in resolve_files(source.location, data_root, entry=source.name):
        name = file_name(path, data_root)
        files[name] = {"key": list(_stat_key(path)[1:]), "sha256": file_digest(path, known, name=name)}
    return files


def source_fingerprint(source: Source, data_root: Path, *, batch_rows: int = DEFAULT_BATCH_ROWS,
                       known: dict[str, Any] | None = None) -> str:
    """Identity of what ingesting ``source`` makes: its entry, the shard size and the
    bytes of its files (a content hash; a file's size and mtime alone are not trusted)."""
    try:
        files: object = sorted((path, info["sha256"]) for path, info in
                               source_files(source, data_root, known).items())
    except (ConfigError, OSError) as exc:
        files = str(exc)
    return fingerprint("ingest_v2", source.ingest_identity(), batch_rows, files)


def _restart_reason(source: Source, state: dict[str, Any], batch_rows: int,
                    files: dict[str, dict[str, Any]]) -> str:
    """One line saying why the shards in a source folder cannot be resumed."""
    before = state.get("batch_rows")
    if before is not None and before != batch_rows:
        return f"--batch-rows is {batch_rows}, the kept shards were cut at {before} rows"
    old = state.get("files")
    if isinstance(old, dict):
        digests = sorted(str((v or {}).get("sha256")) for v in old.values())
        if old.keys() != files.keys() and digests == sorted(str(v.get("sha256")) for v in files.values()):
            return ("its files are named differently, with the same content (renamed, or named by "
                    "an older curate)")
        changed = sorted(p for p in files.keys() | old.keys()
                         if (files.get(p) or {}).get("sha256") != (old.get(p) or {}).get("sha256"))
        if changed:
            return f"the content of {', '.join(changed[:3])}{' ...' if len(changed) > 3 else ''} changed"
    if state.get("entry") not in (None, source.ingest_identity(), source.model_dump(mode="json")):
        return "its catalog entry changed"
    return "its inputs changed"


def ingest_source(
    source: Source,
    folder: ShardedFolder,
    *,
    data_root: Path,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Progress | None = None,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> SourceResult:
    """Ingest one source into ``folder``; resume from its finished shards."""
    started = time.perf_counter()
    result = SourceResult(name=source.name)
    state = folder.state() or {}
    try:
        files = source_files(source, data_root, state.get("files"))
    except (ConfigError, OSError) as exc:
        result.error = one_line(exc)
        if folder.path.exists():
            folder.mark_failed(result.error)
        _failed(source.name, exc)
        return _summarise(result, folder, started)
    fp = source_fingerprint(source, data_root, batch_rows=batch_rows, known=files)
    log.debug("source %s: files %s, fingerprint %s", source.name,
              {name: info["sha256"][:12] for name, info in files.items()}, fp[:12])
    if folder.is_complete(fp):
        return _summarise(result, folder, started, resumed=True)
    if state.get("fingerprint") not in (None, fp) and folder.done():
        result.restarted = _restart_reason(source, state, batch_rows, files)
        log.warning("source %s starts over: %s", source.name, result.restarted)
    folder.open(fp, batch_rows=batch_rows, files=files, entry=source.ingest_identity())
    read = 0  # rows read by this run, for progress
    done = folder.done()
    result.resumed_shards = len(done)
    start = max((int(name) for name in done), default=-1) + 1
    try:
        image_root = _image_root(source, data_root)
    except ConfigError as exc:
        result.error = one_line(exc)
        folder.mark_failed(result.error)
        return _summarise(result, folder, started)
    roots = _allowed_roots(source, data_root, image_root)
    con = id_connection()
    # Three steps overlap: a thread parses the next batch and another writes the last
    # one while this thread maps the current one (pyarrow and DuckDB release the GIL).
    writer = ThreadPoolExecutor(1, thread_name_prefix="curate-write")
    pending: Future[None] | None = None
    try:
        batches = read_batches(source.location, data_root, batch_rows=batch_rows,
                               columns=columns_used(source.mapping), start_batch=start,
                               entry=source.name, max_record_bytes=max_record_bytes)
        for batch in prefetch(batches):
            records, quarantine = map_batch(batch.table, source, image_root=image_root, con=con,
                                            image_roots=roots)
            quarantine = pa.concat_tables([_bad_rows(source.name, batch.bad), quarantine])
            quarantine = quarantine.sort_by("row")
            reasons = Counter(quarantine.column("reason").to_pylist())
            rows = records.num_rows + quarantine.num_rows
            if pending is not None:
                pending.result()
            pending = writer.submit(
                folder.write_shard,
                f"{batch.index:05d}",
                {"quarantine": quarantine, "records": records},
                {"rows": rows, "records": records.num_rows, "quarantined": dict(reasons)},
            )
            log.debug("source %s: shard %05d, %d rows (%d records, quarantined %s)", source.name,
                      batch.index, rows, records.num_rows, dict(reasons) or "none")
            del records, quarantine, batch
            pa.default_memory_pool().release_unused()
            read += rows
            if progress is not None:
                progress(Tick("ingest", source.name, read))
        if pending is not None:
            pending.result()
    except (SourceError, ConfigError) as exc:
        result.error = one_line(exc)
        folder.mark_failed(result.error)
        _failed(source.name, exc)
        return _summarise(result, folder, started)
    except (pa.ArrowException, duckdb.Error, OSError, ValueError, TypeError, LookupError,
            ArithmeticError, RecursionError, RuntimeError) as exc:
        # a last resort: one bad source never stops the others
        result.error = f"unreadable data ({type(exc).__name__}: {one_line(exc)})"
        folder.mark_failed(result.error)
        _failed(source.name, result.error)
        return _summarise(result, folder, started)
    finally:
        writer.shutdown(wait=True)
        con.close()
    folder.mark_complete()
    if progress is not None:  # the rows read are all the rows: the total is known now
        progress(Tick("ingest", source.name, read, read))
    result = _summarise(result, folder, started)
    if result.rows == 0:
        paths = ([str(p) for p in resolve_files(source.location, data_root, entry=source.name)]
                 if files else [])
        result.warning = f"no rows: {', '.join(paths) or 'the source'} is empty"
        log.warning("source %s: %s", source.name, result.warning)
    return result


T = TypeVar("T")
_END = object()


def prefetch(items: Iterator[T]) -> Iterator[T]:
    """Iterate ``items`` in a background thread, one item ahead; errors surface here."""
    slot: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def fill() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slot.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slot.put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            slot.put(exc)

    thread = threading.Thread(target=fill, name="curate-read", daemon=True)
    thread.start()
    try:
        while (item := slot.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _summarise(result: SourceResult, folder: ShardedFolder, started: float,
               resumed: bool = False) -> SourceResult:
    stats = merge_stats(folder.done().values())
    result.rows = stats.get("rows", 0)
    result.records = stats.get("records", 0)
    result.quarantined = dict(sorted(stats.get("quarantined", {}).items()))
    result.seconds = time.perf_counter() - started
    if resumed:
        result.resumed_shards = len(folder.done())
    return result


def _image_root(source: Source, data_root: Path) -> Path | None:
    """The folder the image paths of ``source``'s rows are relative to (resolved); an
    ``image_root`` outside the data root needs the entry's opt-in."""
    mapping = source.mapping
    if mapping.kind != "image_text":
        return None
    if mapping.image_root is not None:
        root = Path(mapping.image_root).expanduser()
        root = root if root.is_absolute() else data_root / root
        if not source.allow_outside_data_root:
            confined(root, data_root, what=f"`{source.name}`: `mapping.image_root`")
        return root.resolve()
    if source.location.path is not None:
        try:
            return resolve_files(source.location, data_root, entry=source.name)[0].parent.resolve()
        except ConfigError:
            return None
    return None


def _allowed_roots(source: Source, data_root: Path, image_root: Path | None) -> list[Path] | None:
    """Where the image files a row names may lie: the data root and the image root;
    None (anywhere) when the entry opted in to reading outside the data root."""
    if source.allow_outside_data_root:
        return None
    return [Path(data_root).resolve(), *([image_root] if image_root is not None else [])]


def _bad_rows(source: str, bad: list[BadRow]) -> pa.Table:
    return pa.table(
        {
            "source": pa.array([source] * len(bad), pa.string()),
            "row": pa.array([b.row for b in bad], pa.int64()),
            "reason": pa.array([b.reason for b in bad], pa.string()),
            "detail": pa.array([b.detail for b in bad], pa.string()),
            "raw": pa.array([b.raw for b in bad], pa.string()),
            "file": pa.array([b.file for b in bad], pa.string()),
        },
        schema=QUARANTINE_SCHEMA,
    )


def ingest(
    sources: list[Source],
    store: RunStore,
    *,
    data_root: Path,
    benchmarks: list[Source] = (),  # type: ignore[assignment]
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Progress | None = None,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> IngestResult:
    """Ingest every source (and benchmark) into ``store``; a failure does not stop the others."""
    def run(entry: Source, folder: ShardedFolder) -> SourceResult:
        return ingest_source(entry, folder, data_root=data_root, batch_rows=batch_rows,
                             progress=progress, max_record_bytes=max_record_bytes)

    return IngestResult(
        run_dir=store.root,
        sources=[run(s, store.source(s.name)) for s in sources],
        benchmarks=[run(b, store.benchmark(b.name)) for b in benchmarks],
    )
