"""Read a source's raw rows, in bounded batches, whatever its format.

Every reader yields ``RawBatch``es: the rows it could parse, as an Arrow table with a
``__row`` column (the row's 0-based position in the source; files of a glob are
counted in sorted order, one after the other), and the rows it could not parse, as
``BadRow``s with a reason. A file that cannot be parsed at all raises SourceError
naming the file and the line.

Batch ``i`` holds exactly the rows ``i * batch_rows <= row < (i + 1) * batch_rows``,
whatever the files, so an interrupted ingestion resumes at a batch boundary.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa

from curate.catalog import Location, resolve_files
from curate.errors import SourceError

ROW = "__row"
RAW_PREVIEW_CHARS = 2000


@dataclass(frozen=True)
class BadRow:
    """A row that could not be read at all."""

    row: int
    reason: str
    detail: str
    raw: str | None = None
    file: str | None = None


@dataclass
class RawBatch:
    """One batch of raw rows read from a file: its index, the table, where it came from."""
    index: int
    table: pa.Table
    bad: list[BadRow] = field(default_factory=list)


@dataclass
class _Chunk:
    table: pa.Table  # has the ROW column
    bad: list[BadRow]


def read_batches(
    location: Location,
    data_root: Path,
    *,
    batch_rows: int,
    columns: set[str] | None = None,
    start_batch: int = 0,
    entry: str | None = None,
    max_record_bytes: int | None = None,
) -> Iterator[RawBatch]:
    """Yield the raw rows of ``location`` in batches of ``batch_rows`` source rows.

    ``columns`` limits the columns read (top-level names); ``start_batch`` skips the
    batches before it (for resuming). A batch range with no rows at all is not yielded.
    ``entry`` names the catalog entry in errors. A row of more than ``max_record_bytes``
    (its line in a JSON Lines or CSV file, its JSON text in a JSON document) is not
    parsed: it becomes a bad row with reason ``record_too_large``.
    """
    skip = start_batch * batch_rows
    if location.hf is not None:
        chunks = _hub_chunks(location, batch_rows, columns)
    else:
        chunks = _file_chunks(location, data_root, batch_rows, columns, skip, entry,
                              max_record_bytes or (1 << 62))
    kept = (rest for chunk in chunks if (rest := _rows_from(chunk, skip)) is not None)
    yield from _rebatch(kept, batch_rows)


def _rebatch(chunks: Iterator[_Chunk], batch_rows: int) -> Iterator[RawBatch]:
    """Regroup chunks (rows in increasing order) into batches by ``row // batch_rows``."""
    current: int | None = None
    tables: list[pa.Table] = []
    bad: list[BadRow] = []
    for chunk in chunks:
        rows = chunk.table.column(ROW).to_numpy()
        ids = rows // batch_rows
        for index in sorted({*ids.tolist(), *(b.row // batch_rows for b in chunk.bad)}):
            if current is not None and index != current:
                yield _batch(current, tables, bad)
                tables, bad = [], []
            current = index
            same = ids[0] == ids[-1] == index if len(ids) else False
            tables.append(chunk.table if same else chunk.table.filter(pa.array(ids == index)))
            bad.extend(b for b in chunk.bad if b.row // batch_rows == index)
    if current is not None:
        yield _batch(current, tables, bad)


def _batch(index: int, tables: list[pa.Table], bad: list[BadRow]) -> RawBatch:
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # parts of the batch (two files of a glob) typed a column differently: rebuild it
        # from the values, a column whose values mix types becoming text
        rows = [row for t in tables for row in t.to_pylist()]
        table = _table_from_objects([{k: v for k, v in r.items() if k != ROW} for r in rows])
        table = table.append_column(ROW, pa.array([r[ROW] for r in rows], pa.int64()))
    return RawBatch(index=index, table=table, bad=sorted(bad, key=lambda b: b.row))


# -- local files ------------------------------------------------------------------------


def _file_chunks(
    location: Location, data_root: Path, batch_rows: int, columns: set[str] | None, skip: int,
    entry: str | None = None, limit: int = 1 << 62,
) -> Iterator[_Chunk]:
    """Chunks of every file in turn; each file's reader returns how many rows it had."""
    fmt = location.file_format
    offset = 0
    for path in resolve_files(location, data_root, entry=entry):
        if fmt == "jsonl":
            chunks = _jsonl_chunks(path, offset, batch_rows, columns, skip, limit)
        elif fmt == "json":
            chunks = _json_chunks(path, offset, columns, location.key_field, limit)
        elif fmt == "csv":
            chunks = _csv_chunks(path, offset, batch_rows, columns, limit)
        else:
            chunks = _parquet_chunks(path, offset, batch_rows, columns)
        offset += yield from chunks


def _rows_from(chunk: _Chunk, skip: int) -> _Chunk | None:
    """The part of a chunk at or after row ``skip`` (None when nothing is left)."""
    if skip <= 0:
        return chunk
    first = int((chunk.table.column(ROW).to_numpy() < skip).sum())
    table = chunk.table.slice(first)
    bad = [b for b in chunk.bad if b.row >= skip]
    return _Chunk(table, bad) if table.num_rows or bad else None


def _select(table: pa.Table, columns: set[str] | None) -> pa.Table:
    if columns is None:
        return table
    return table.select([c for c in table.column_names if c in columns or c == ROW])


def _preview(raw: bytes | str) -> str:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return text.rstrip("\r\n")[:RAW_PREVIEW_CHARS]


def _jsonl_chunks(
    path: Path, offset: int, batch_rows: int, columns: set[str] | None, skip: int,
    limit: int = 1 << 62,
) -> Generator[_Chunk, None, int]:
    """JSON Lines: one object per line; line ``n`` (0-based) is row ``offset + n``.

    Blocks of ``batch_rows`` lines parse with pyarrow's vectorised JSON reader straight
    from the file's bytes; a block with a blank or bad line falls back to line-by-line
    parsing, so only the bad line is quarantined.
    """
    import pyarrow.json as pajson

    options = pajson.ReadOptions(block_size=1 << 24)
    line_no = 0
    with path.open("rb") as handle:
        for block, count in _line_blocks(handle, batch_rows):
            first = offset + line_no
            line_no += count
            if first + count <= skip:
                continue  # before the resume point: counted, not parsed
            plain = (b"\n\n" not in block and not block.startswith(b"\n") and b"\n\r\n" not in block
                     and b"\x00" not in block and (len(block) <= limit or _longest_line(block) <= limit)
                     and _objects_only(block))
            if plain:
                try:
                    block.decode("utf-8")  # pyarrow would take bad bytes into the strings
                    table = pajson.read_json(io.BytesIO(block), read_options=options)
                except (UnicodeDecodeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    table = None
                if table is not None and table.num_rows == count:
                    rows = pa.array(range(first, first + count), pa.int64())
                    yield _Chunk(_select(table, columns).append_column(ROW, rows), [])
                    continue
            lines = block.split(b"\n")[:count]
            numbered = [(first + i, line) for i, line in enumerate(lines) if line.strip()]
            if numbered:
                yield _jsonl_fallback(path, [line for _, line in numbered],
                                      [row for row, _ in numbered], columns, limit)
    return line_no


def _objects_only(block: bytes) -> bool:
    """Whether every line of ``block`` (newline-terminated, no blank line) starts with
    ``{`` and ends with ``}``: only then does the vectorised reader see it, since pyarrow
    crashes (SIGSEGV, pyarrow 26.0.1) on a first line of ``null`` and reads a ``null`` line
    as a row of nulls."""
    import numpy as np

    data = np.frombuffer(block, np.uint8)
    ends = np.flatnonzero(data == 10)
    if not len(ends):
        return False
    starts = np.concatenate([[0], ends[:-1] + 1])
    last = ends - 1 - (data[np.maximum(ends - 1, 0)] == 13)
    return bool((data[starts] == ord("{")).all() and (data[np.maximum(last, 0)] == ord("}")).all())


def _longest_line(block: bytes) -> int:
    import numpy as np

    ends = np.flatnonzero(np.frombuffer(block, np.uint8) == 10)
    if not len(ends):
        return len(block)
    return int(max(ends[0] + 1, np.diff(ends).max(initial=0), len(block) - ends[-1] - 1))


def _too_large(row: int, size: int, limit: int, path: Path, where: str = "") -> BadRow:
    return BadRow(row, "record_too_large", f"{where}{size:,} bytes, more than the limit of {limit:,}",
                  None, str(path))


def _line_blocks(handle: BinaryIO, lines: int) -> Iterator[tuple[bytes, int]]:
    """Blocks of ``lines`` whole lines (the last may hold fewer), each ending in a newline,
    with their line counts. Newlines are found with numpy, 16 MiB at a time."""
    import numpy as np

    pending: list[bytes] = []
    count = 0
    while more := handle.read(1 << 24):
        ends = np.flatnonzero(np.frombuffer(more, np.uint8) == 10)
        used = start = 0
        while len(ends) - used >= lines - count:
            used += lines - count
            cut = int(ends[used - 1]) + 1
            pending.append(more[start:cut])
            yield b"".join(pending), lines
            pending, count, start = [], 0, cut
        pending.append(more[start:])
        count += len(ends) - used
    tail = b"".join(pending)
    if tail.strip():
        whole = tail.endswith(b"\n")
        yield (tail if whole else tail + b"\n"), count + (not whole)
    elif count:
        yield tail, count


def _jsonl_fallback(
    path: Path, lines: list[bytes], rows: list[int], columns: set[str] | None,
    limit: int = 1 << 62,
) -> _Chunk:
    good: list[dict] = []
    good_rows: list[int] = []
    bad: list[BadRow] = []
    for line, row in zip(lines, rows):
        if len(line) > limit:
            bad.append(_too_large(row, len(line), limit, path))
            continue
        if b"\x00" in line:
            bad.append(BadRow(row, "invalid_json", f"byte {line.index(0)}: a NUL byte", _preview(line),
                              str(path)))
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad.append(BadRow(row, "invalid_utf8", f"byte {exc.start}: {exc.reason}", _preview(line),
                              str(path)))
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            bad.append(BadRow(row, "invalid_json", f"column {exc.colno}: {exc.msg}", _preview(text),
                              str(path)))
            continue
        except RecursionError:
            bad.append(BadRow(row, "invalid_json", "nested too deeply", _preview(text), str(path)))
            continue
        if not isinstance(value, dict):
            bad.append(BadRow(row, "not_an_object", f"a JSON {type(value).__name__}, not an object",
                              _preview(text), str(path)))
            continue
        good.append(value if columns is None else {k: v for k, v in value.items() if k in columns})
        good_rows.append(row)
    table = _table_from_objects(good)
    return _Chunk(table.append_column(ROW, pa.array(good_rows, pa.int64())), bad)


def _json_chunks(
    path: Path, offset: int, columns: set[str] | None, key_field: str | None,
    limit: int = 1 << 62,
) -> Generator[_Chunk, None, int]:
    """A JSON document: a list of objects, or an object of objects keyed by id.

    The file is read whole; use JSON Lines for data that does not fit in memory.
    """
    try:
        with path.open("rb") as handle:
            document = json.load(handle)
    except json.JSONDecodeError as exc:
        raise SourceError(
            f"{path}: line {exc.lineno}, column {exc.colno}: invalid JSON ({exc.msg})"
        ) from None
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: byte {exc.start}: not UTF-8 ({exc.reason})") from None
    except RecursionError:
        raise SourceError(f"{path}: JSON nested too deeply to read") from None
    big = path.stat().st_size > limit
    if isinstance(document, dict):
        if key_field is None:
            raise SourceError(
                f"{path}: the file is a JSON object of records; set `location.key_field` "
                "to name the column that receives each key"
            )
        items = [
            {key_field: key, **value} if isinstance(value, dict) else value
            for key, value in document.items()
        ]
    elif isinstance(document, list):
        items = document
    else:
        raise SourceError(f"{path}: expected a JSON list or object of records, got a scalar")
    good, good_rows, bad = [], [], []
    for i, item in enumerate(items):
        size = len(json.dumps(item)) if big else 0
        if size > limit:
            bad.append(_too_large(offset + i, size, limit, path))
        elif isinstance(item, dict):
            good.append(item if columns is None else {k: v for k, v in item.items() if k in columns})
            good_rows.append(offset + i)
        else:
            bad.append(BadRow(offset + i, "not_an_object", f"a JSON {type(item).__name__}",
                              _preview(json.dumps(item)), str(path)))
    table = _table_from_objects(good)
    yield _Chunk(table.append_column(ROW, pa.array(good_rows, pa.int64())), bad)
    return len(items)


def _table_from_objects(objects: list[dict]) -> pa.Table:
    """Columns from parsed JSON objects; a field whose values mix types becomes text."""
    names = list(dict.fromkeys(key for obj in objects for key in obj))
    columns = {}
    for name in names:
        values = [obj.get(name) for obj in objects]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowException, OverflowError, TypeError, ValueError, RecursionError):
            columns[name] = pa.array(
                [v if v is None or isinstance(v, str) else json.dumps(v) if isinstance(v, dict | list)
                 else str(v) for v in values],
                pa.string(),
            )
    if columns:
        return pa.table(columns)
    return pa.table({"__empty": pa.nulls(len(objects))}).drop_columns(["__empty"])


def _csv_chunks(
    path: Path, offset: int, batch_rows: int, columns: set[str] | None, limit: int = 1 << 62,
) -> Generator[_Chunk, None, int]:
    """CSV with a header row; every value is read as text. Row ``n`` is the n-th record."""
    # a field past 4x the record limit is a one-line error naming the line (csv cannot skip it)
    csv.field_size_limit(max(min(4 * limit + 1, (1 << 31) - 1), 131_072))
    with path.open(newline="", encoding="utf-8", errors="surrogateescape") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            return 0
        except csv.Error as exc:
            raise SourceError(f"{path}: line 1: unreadable CSV header ({exc})") from None
        keep = [i for i, name in enumerate(header) if columns is None or name in columns]
        names = [header[i] for i in keep]
        row = offset
        while True:
            values: dict[str, list[str]] = {name: [] for name in names}
            rows: list[int] = []
            bad: list[BadRow] = []
            try:
                for record in itertools.islice(reader, batch_rows):
                    line = f"line {reader.line_num}"
                    size = sum(len(v) for v in record)
                    if size > limit:
                        bad.append(_too_large(row, size, limit, path, f"{line}: "))
                    elif len(record) != len(header):
                        bad.append(BadRow(row, "invalid_csv_row",
                                          f"{line}: {len(record)} fields, header has {len(header)}",
                                          _preview(",".join(record)), str(path)))
                    elif any(_has_surrogates(record[i]) for i in keep):
                        bad.append(BadRow(row, "invalid_utf8", f"{line}: bytes that are not UTF-8",
                                          None, str(path)))
                    else:
                        for name, i in zip(names, keep):
                            values[name].append(record[i])
                        rows.append(row)
                    row += 1
            except csv.Error as exc:
                raise SourceError(f"{path}: line {reader.line_num}: unreadable CSV ({exc})") from None
            if not rows and not bad:
                return row - offset
            table = pa.table({**{n: pa.array(v, pa.string()) for n, v in values.items()},
                              ROW: pa.array(rows, pa.int64())})
            yield _Chunk(table, bad)


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _parquet_chunks(
    path: Path, offset: int, batch_rows: int, columns: set[str] | None
) -> Generator[_Chunk, None, int]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        wanted = None if columns is None else [c for c in parquet.schema_arrow.names if c in columns]
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise SourceError(f"{path}: not a readable parquet file ({one_line(exc)})") from None
    row = offset
    batches = parquet.iter_batches(batch_size=batch_rows, columns=wanted)
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise SourceError(
                f"{path}: row {row - offset}: unreadable parquet data ({one_line(exc)})") from None
        if batch is None:
            return row - offset
        table = pa.Table.from_batches([batch])
        rows = pa.array(range(row, row + table.num_rows), pa.int64())
        row += table.num_rows
        yield _Chunk(table.append_column(ROW, rows), [])


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (whitespace runs folded), at most 1,000 characters
    (a catalog error names two paths and its fix; cut at 300 it lost the fix)."""
    return " ".join(str(exc).split())[:1000] or type(exc).__name__


# -- the hub ------------------------------------------------------------------------------


def _hub_chunks(location: Location, batch_rows: int, columns: set[str] | None) -> Iterator[_Chunk]:
    """Stream a dataset through ``datasets.load_dataset`` (a hub id or a local folder)."""
    import datasets

    hub = location.hf
    assert hub is not None
    try:
        dataset = datasets.load_dataset(
            hub.repo,
            name=hub.config,
            split=hub.split,
            revision=hub.revision,
            data_files=hub.data_files,
            streaming=True,
        )
    except Exception as exc:  # datasets raises many types; all mean "this source failed"
        raise SourceError(
            f"hub dataset `{hub.repo}` (split `{hub.split}`, revision `{hub.revision}`): {exc}"
        ) from None
    row = 0
    for table in dataset.with_format("arrow").iter(batch_size=batch_rows):
        table = _select(table, columns)
        rows = pa.array(range(row, row + table.num_rows), pa.int64())
        row += table.num_rows
        yield _Chunk(table.append_column(ROW, rows), [])
