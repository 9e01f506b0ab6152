"""The record schema every stage reads and writes, and the content id.

One Arrow schema (``SCHEMA``) is spoken everywhere: ingestion produces it, stages
read it, releases convert it to the column shapes TRL reads at their edge.

The id is a content hash: the same conversation gets the same id on any machine, in
any run, from any source. It hashes the normalized content only (kind, turns with
their roles, preference answers, the MCQA gold, the image bytes), never provenance,
so two sources that ship the same record share its id, which is what exact dedup
groups on. Normalization: Unicode NFC, runs of whitespace (ASCII whitespace and
Unicode separators, category Z) folded to one space, ends trimmed; roles lower-cased.

Precisely: the id is the first 32 hex digits of the SHA-256 of the compact JSON
(``json.dumps(..., separators=(",", ":"), ensure_ascii=False)``) of
``{"kind", "messages", "chosen", "rejected", "mcqa": {"question", "options", "answer"},
"images"}``, texts normalized as above, each image replaced by the SHA-256 hex of its
bytes. ``record_id`` states the same definition in plain Python for one record; the
vectorised ``content_ids`` is what ingestion uses, and a test keeps the two equal.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from curate.errors import RecordError

if TYPE_CHECKING:
    import duckdb

KINDS = ("chat", "mcqa", "preference", "image_text")
ROLES = ("system", "user", "assistant")
ORIGINS = ("real", "synthetic")
POSITION = ("source", "row")
"""Where a record came from: unique in a run, the key stages and releases join on."""
KEYS = (*POSITION, "id")
"""The columns every stage's scores and decisions start with."""

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
MESSAGES = pa.list_(MESSAGE)
IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
MCQA = pa.struct(
    [("question", pa.string()), ("options", pa.list_(pa.string())), ("answer", pa.int32())]
)

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("source_version", pa.string(), nullable=False),
        pa.field("row", pa.int64(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("messages", MESSAGES),
        pa.field("chosen", MESSAGES),
        pa.field("rejected", MESSAGES),
        pa.field("images", pa.list_(IMAGE)),
        pa.field("mcqa", MCQA),
        pa.field("domain", pa.string()),
        pa.field("origin", pa.string()),
        pa.field("task", pa.string()),
        pa.field("license", pa.string()),
        pa.field("meta", pa.string()),
    ]
)

ID_LENGTH = 32  # hex characters of sha256: 128 bits

# The id, in SQL so that it runs vectorised (and multi-threaded) over whole batches.
# Runs of whitespace fold to one space. Matching only what must change (a run of two or
# more, or one character other than a plain space) is 5x faster than matching every run;
# trimming only strings that need it saves a copy of every string. The one-element
# list_transform binds the folded text once (a nested macro would evaluate it thrice).
_WHITESPACE = (
    r"[\t\n\x0B\f\r\p{Z}]{2,}"
    r"|[\t\n\x0B\f\r\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]"
)
_ID_MACROS = f"""
CREATE OR REPLACE MACRO curate_norm(s) AS list_transform(
    [regexp_replace(nfc_normalize(s), '{_WHITESPACE}', ' ', 'g')],
    lambda t: CASE WHEN starts_with(t, ' ') OR ends_with(t, ' ') THEN trim(t) ELSE t END)[1];
CREATE OR REPLACE MACRO curate_turns(ms) AS
    list_transform(ms, lambda m: {{'role': lower(trim(m.role)), 'content': curate_norm(m.content)}});
"""
# DuckDB builds the canonical JSON (vectorised, multi-threaded); Python's hashlib hashes
# it (OpenSSL's SHA-256 runs 2.5x faster here than DuckDB's own).
_CANONICAL_SQL = """
SELECT to_json({
    'kind': kind,
    'messages': curate_turns(messages),
    'chosen': curate_turns(chosen),
    'rejected': curate_turns(rejected),
    'mcqa': {
        'question': curate_norm(mcqa.question),
        'options': list_transform(mcqa.options, lambda o: curate_norm(o)),
        'answer': mcqa.answer
    },
    'images': list_transform(images, lambda i: coalesce(sha256(i.bytes), 'path:' || i.path))
})::VARCHAR AS canonical
FROM records
"""


_SPACE_RUN = re.compile(
    "[\t\n\x0b\f\r\u0020\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+"
)


def _norm(text: str) -> str:
    return _SPACE_RUN.sub(" ", unicodedata.normalize("NFC", text)).strip(" ")


def _turns(turns: list[dict[str, str]] | None) -> list[dict[str, str]] | None:
    if turns is None:
        return None
    return [{"role": t["role"].strip().lower(), "content": _norm(t["content"])} for t in turns]


def record_id(record: dict[str, Any]) -> str:
    """The content id of one record given as a dict (the same as ``content_ids``)."""
    mcqa = record.get("mcqa") or {}
    options = mcqa.get("options")
    canonical = {
        "kind": record["kind"],
        "messages": _turns(record.get("messages")),
        "chosen": _turns(record.get("chosen")),
        "rejected": _turns(record.get("rejected")),
        "mcqa": {
            "question": None if mcqa.get("question") is None else _norm(mcqa["question"]),
            "options": None if options is None else [_norm(o) for o in options],
            "answer": mcqa.get("answer"),
        },
        "images": None if record.get("images") is None else [
            hashlib.sha256(i["bytes"]).hexdigest() if i.get("bytes") is not None
            else f"path:{i['path']}" for i in record["images"]
        ],
    }
    text = json.dumps(canonical, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH]


def empty_records() -> pa.Table:
    """A table with the record schema and no rows."""
    return SCHEMA.empty_table()


def conform(table: pa.Table) -> pa.Table:
    """Return ``table`` with exactly the record columns, in order, cast to their types.

    Missing nullable columns are added as nulls; extra columns are dropped.
    Raises RecordError when a required column is missing or a column cannot be cast.
    """
    columns = []
    for field in SCHEMA:
        if field.name in table.column_names:
            column = table.column(field.name)
            if column.type != field.type:
                try:
                    column = column.cast(field.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise RecordError(
                        f"column `{field.name}` has type {column.type}, expected {field.type}: {exc}"
                    ) from None
            columns.append(column)
        elif field.nullable:
            columns.append(pa.nulls(table.num_rows, field.type))
        else:
            raise RecordError(f"column `{field.name}` is missing; every record table needs it")
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def id_connection() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the id macros defined (reuse it across batches)."""
    import duckdb

    con = duckdb.connect()
    con.execute(_ID_MACROS)
    return con


def content_ids(table: pa.Table, *, con: duckdb.DuckDBPyConnection | None = None) -> pa.Array:
    """The content id of every row of a table that has the record content columns."""
    content = table.select(["kind", "messages", "chosen", "rejected", "mcqa", "images"])
    own = con is None
    con = id_connection() if con is None else con
    try:
        con.register("records", content)
        canonical = con.sql(_CANONICAL_SQL).to_arrow_table().column("canonical")
        con.unregister("records")
    finally:
        if own:
            con.close()
    return pa.array(_sha256_prefixes(canonical.combine_chunks()), pa.string())


def _sha256_prefixes(texts: pa.Array) -> list[str]:
    """The first ID_LENGTH hex digits of the SHA-256 of each UTF-8 string, hashed in
    place from the Arrow buffers (no per-row decode or copy)."""
    import numpy as np

    width = np.int64 if pa.types.is_large_string(texts.type) else np.int32
    _, offsets_buffer, data_buffer = texts.buffers()
    offsets = np.frombuffer(offsets_buffer, width)[texts.offset : texts.offset + len(texts) + 1]
    data = memoryview(data_buffer) if data_buffer is not None else memoryview(b"")
    sha256 = hashlib.sha256
    bounds = offsets.tolist()
    return [sha256(data[a:b]).hexdigest()[:ID_LENGTH] for a, b in zip(bounds, bounds[1:])]


def with_ids(table: pa.Table) -> pa.Table:
    """Return ``table`` with its ``id`` column (re)computed from content."""
    ids = content_ids(table)
    if "id" in table.column_names:
        return table.set_column(table.column_names.index("id"), "id", ids)
    return table.add_column(0, "id", ids)


def validate_records(table: pa.Table, *, where: str = "records") -> None:
    """Check a record table row by row; raise RecordError naming the first bad row and column.

    ``where`` names the table in the message (a file path, usually).
    """
    import polars as pl

    missing = [f.name for f in SCHEMA if f.name not in table.column_names]
    if missing:
        names = ", ".join(f"`{m}`" for m in missing)
        raise RecordError(f"{where}: missing column(s) {names}; expected the curate record schema")
    frame = pl.from_arrow(conform(table))
    assert isinstance(frame, pl.DataFrame)

    def turns_ok(column: str) -> pl.Expr:
        col = pl.col(column)
        roles_ok = col.list.eval(pl.element().struct.field("role").is_in(ROLES)).list.all()
        text_ok = col.list.eval(
            pl.element().struct.field("content").str.strip_chars().str.len_chars() > 0
        ).list.all()
        return col.is_null() | (roles_ok & text_ok)

    kind = pl.col("kind")
    checks: list[tuple[str, pl.Expr, str]] = [
        ("id", pl.col("id").str.len_chars() == ID_LENGTH, f"must be a {ID_LENGTH}-character hex id"),
        ("kind", kind.is_in(KINDS), f"must be one of {', '.join(KINDS)}"),
        ("origin", pl.col("origin").is_null() | pl.col("origin").is_in(ORIGINS),
         f"must be one of {', '.join(ORIGINS)}"),
        ("messages", pl.col("messages").list.len() > 0, "must hold at least one turn"),
        ("messages", turns_ok("messages"),
         f"every turn needs a role in {', '.join(ROLES)} and non-empty content"),
        ("chosen", turns_ok("chosen"), "every turn needs a known role and non-empty content"),
        ("rejected", turns_ok("rejected"), "every turn needs a known role and non-empty content"),
        ("chosen", (kind != "preference") | (pl.col("chosen").list.len() > 0),
         "a `preference` record needs a chosen answer"),
        ("rejected", (kind != "preference") | (pl.col("rejected").list.len() > 0),
         "a `preference` record needs a rejected answer"),
        ("mcqa", (kind != "mcqa") | pl.col("mcqa").is_not_null(),
         "an `mcqa` record needs its question, options and answer"),
        ("mcqa", pl.col("mcqa").is_null()
         | pl.col("mcqa").struct.field("answer").is_null()
         | pl.col("mcqa").struct.field("answer").is_between(
             0, pl.col("mcqa").struct.field("options").list.len() - 1),
         "`answer` must index into `options`"),
        ("images", (kind != "image_text") | (pl.col("images").list.len() > 0),
         "an `image_text` record needs at least one image"),
    ]
    for column, ok, message in checks:
        bad = frame.with_row_index("_i").filter(~ok.fill_null(False)).select("_i", "row", "source")
        if bad.height:
            i, row, source = bad.row(0)
            raise RecordError(
                f"{where}: row {i} (source `{source}`, row {row}), column `{column}`: {message}"
                f" ({bad.height} row(s) fail this check)"
            )
