"""Stream a recipe's sources into the run store, resumably, quarantining bad rows."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pyarrow as pa

from curate.catalog import Source, resolve_files
from curate.errors import ConfigError, SourceError
from curate.ingest.mapping import QUARANTINE_SCHEMA, columns_used, map_batch
from curate.ingest.readers import BadRow, read_batches
from curate.records import id_connection
from curate.store import RunStore, ShardedFolder, fingerprint, merge_stats

log = logging.getLogger(__name__)

DEFAULT_BATCH_ROWS = 20_000
Progress = Callable[[str, int], None]  # (source name, rows read so far)


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


def source_fingerprint(source: Source, data_root: Path) -> str:
    """Identity of what ingesting ``source`` reads: its entry and its files (size, mtime)."""
    if source.location.hf is not None:
        files: list[object] = []
    else:
        try:
            files = [(str(p), p.stat().st_size, p.stat().st_mtime_ns)
                     for p in resolve_files(source.location, data_root)]
        except ConfigError as exc:
            files = [str(exc)]
    return fingerprint("ingest_v1", source.model_dump(mode="json"), files)


def ingest_source(
    source: Source,
    folder: ShardedFolder,
    *,
    data_root: Path,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Progress | None = None,
) -> SourceResult:
    """Ingest one source into ``folder``; resume from its finished shards."""
    started = time.perf_counter()
    result = SourceResult(name=source.name)
    fp = source_fingerprint(source, data_root)
    if folder.is_complete(fp):
        return _summarise(result, folder, started, resumed=True)
    folder.open(fp)
    done = folder.done()
    result.resumed_shards = len(done)
    start = max((int(name) for name in done), default=-1) + 1
    image_root = _image_root(source, data_root)
    con = id_connection()
    # Three steps overlap: a thread parses the next batch and another writes the last
    # one while this thread maps the current one (pyarrow and DuckDB release the GIL).
    writer = ThreadPoolExecutor(1, thread_name_prefix="curate-write")
    pending: Future[None] | None = None
    try:
        batches = read_batches(source.location, data_root, batch_rows=batch_rows,
                               columns=columns_used(source.mapping), start_batch=start)
        for batch in prefetch(batches):
            records, quarantine = map_batch(batch.table, source, image_root=image_root, con=con)
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
            del records, quarantine, batch
            pa.default_memory_pool().release_unused()
            if progress is not None:
                progress(source.name, rows)
        if pending is not None:
            pending.result()
    except (SourceError, ConfigError) as exc:
        result.error = str(exc)
        folder.mark_failed(result.error)
        log.error("source %s failed: %s", source.name, exc)
        return _summarise(result, folder, started)
    finally:
        writer.shutdown(wait=True)
        con.close()
    folder.mark_complete()
    return _summarise(result, folder, started)


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
    mapping = source.mapping
    if mapping.kind != "image_text":
        return None
    if mapping.image_root is not None:
        root = Path(mapping.image_root).expanduser()
        return root if root.is_absolute() else data_root / root
    if source.location.path is not None:
        try:
            return resolve_files(source.location, data_root)[0].parent
        except ConfigError:
            return None
    return None


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
) -> IngestResult:
    """Ingest every source (and benchmark) into ``store``; a failure does not stop the others."""
    def run(entry: Source, folder: ShardedFolder) -> SourceResult:
        return ingest_source(entry, folder, data_root=data_root, batch_rows=batch_rows,
                             progress=progress)

    return IngestResult(
        run_dir=store.root,
        sources=[run(s, store.source(s.name)) for s in sources],
        benchmarks=[run(b, store.benchmark(b.name)) for b in benchmarks],
    )
