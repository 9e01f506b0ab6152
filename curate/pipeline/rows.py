"""The rows of a user's file, written back in its own format: the kept rows, the removed rows.

``write_rows`` is how a one-file command hands back data rather than decisions: JSON Lines
in, JSON Lines out (an unchanged row is its input line byte for byte); a JSON list, a CSV
or a parquet file likewise. Rows keep their original columns. A row whose turns a stage
rewrote (``clean``'s text repair, ``boxes``' box format) carries the repaired text in the
columns the mapping read it from (a `messages` column, or plain `question` / `answer` /
`prompt` / `chosen` / `rejected` columns); when the mapping built the turns from several
columns (a context before the question, say) the repaired turns are added as a `messages`
(and `chosen`, `rejected`) column instead. Removed rows get a `reason` column; a row that
could not be read at all (invalid JSON) is written as ``{"reason": ..., "raw": <its text>}``.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.catalog import Source
from curate.errors import ConfigError

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
NAMES = {"jsonl": "JSON Lines", "json": "JSON", "csv": "CSV", "parquet": "parquet"}
_PLAIN = re.compile(r"^[A-Za-z_][\w\- ]*$")  # a column name, not `a.b` or `a[0]`

Turns = list[dict[str, Any]]
Extract = Callable[[Turns | None], Any]


@dataclass(frozen=True)
class Repairs:
    """Rewritten records: row -> {turn column: (original turns, repaired turns)}."""

    rows: dict[int, dict[str, tuple[Turns | None, Turns | None]]]


def file_format(path: Path) -> str:
    """``jsonl``, ``json``, ``csv`` or ``parquet``, from the suffix; a ConfigError otherwise."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{path}: cannot write rows in this format; INPUT must end in "
                          f"{', '.join(FORMATS)}")
    return fmt


def check_target(input_path: Path, target: Path, option: str) -> None:
    """``target`` must name the input's own format (a .jsonl file for a .jsonl input)."""
    fmt = file_format(input_path)
    if FORMATS.get(target.suffix.lower()) != fmt:
        wanted = [s for s, f in FORMATS.items() if f == fmt]
        raise ConfigError(f"{option} {target}: rows are written in INPUT's own format "
                          f"({NAMES[fmt]}); name the file {target.stem}{wanted[0]}")


NOT_READ = ("not_read", None)
"""The decision of an input row that never became a record nor a quarantined row."""


@dataclass(frozen=True)
class Written:
    """Rows written to KEPT and to REMOVED, and kept rows whose text was repaired."""

    kept: int = 0
    removed: int = 0
    repaired: int = 0


def write_rows(input_path: Path, entry: Source, decisions: Mapping[int, tuple[str, str | None] | None],
               repairs: Repairs, *, kept: Path | None, removed: Path | None) -> Written:
    """Write INPUT's kept rows (``decisions[row] is None``) to ``kept`` and the others, with
    their ``reason`` and ``reason_ref`` (``decisions[row]``), to ``removed``; rows per file
    written, and rows whose text was repaired."""
    fmt = file_format(input_path)
    rows, header = _read(input_path, fmt)
    columns = _writeback(entry, rows, repairs)
    kept_rows: list[_Row] = []
    removed_rows: list[_Row] = []
    for index, row in enumerate(rows):
        reason = decisions.get(index, NOT_READ)
        if reason is None:
            fixed = repairs.rows.get(index)
            kept_rows.append(_repair(row, fixed, columns) if fixed else row)
        else:
            removed_rows.append(row.update({"reason": reason[0], "reason_ref": reason[1]}))
    for target, chosen in ((kept, kept_rows), (removed, removed_rows)):
        if target is not None:
            _write(target, fmt, chosen, header)
    repaired = sum(1 for index in repairs.rows if decisions.get(index, NOT_READ) is None)
    return Written(kept=len(kept_rows), removed=len(removed_rows), repaired=repaired)


# -- one row of any format ------------------------------------------------------------------


@dataclass
class _Row:
    """A row as read: its JSON Lines bytes (written back as they were when nothing changed),
    its fields (None for a row that is not an object), its key (a keyed JSON document)."""

    raw: bytes | None = None
    fields: dict[str, Any] | None = None
    key: str | None = None
    values: list[str] | None = None  # a CSV record that does not fit the header
    changed: bool = False

    def object(self) -> dict[str, Any] | None:
        if self.fields is None and self.raw is not None:
            try:
                value = json.loads(self.raw)
            except (ValueError, UnicodeDecodeError):
                value = None
            self.fields = value if isinstance(value, dict) else None
        return self.fields

    def update(self, values: dict[str, Any]) -> _Row:
        fields = self.object()
        if fields is None:  # not an object: keep what it was, beside the new fields
            text = self.raw.decode("utf-8", "replace") if self.raw is not None else (
                ",".join(self.values) if self.values is not None else None)
            return _Row(fields={**values, "raw": text}, key=self.key, changed=True)
        return _Row(fields={**fields, **values}, key=self.key, changed=True)


def _read(path: Path, fmt: str) -> tuple[list[_Row], Any]:
    """The rows, and what writing needs: a CSV's header, a parquet file's schema."""
    if fmt == "jsonl":
        lines = path.read_bytes().split(b"\n")
        if lines and lines[-1].strip() == b"":
            lines.pop()  # after the newline that ends the file (the reader counts no row there)
        return [_Row(raw=line) for line in lines], None
    if fmt == "json":
        document = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(document, dict):
            return [_Row(fields=v if isinstance(v, dict) else None, key=k) for k, v in document.items()], None
        return [_Row(fields=v if isinstance(v, dict) else None) for v in document], None
    if fmt == "csv":
        with path.open(newline="", encoding="utf-8", errors="surrogateescape") as handle:
            records = list(csv.reader(handle))
        header = records[0] if records else []
        return [_Row(fields=dict(zip(header, r))) if len(r) == len(header) else _Row(values=r)
                for r in records[1:]], header
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return [_Row(fields=r) for r in table.to_pylist()], table.schema


def _write(target: Path, fmt: str, chosen: list[_Row], header: Any) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        with target.open("wb") as handle:
            for row in chosen:
                raw = row.raw if row.raw is not None and not row.changed else json.dumps(
                    row.object(), ensure_ascii=False).encode()
                handle.write(raw.rstrip(b"\r") + b"\n")
    elif fmt == "json":
        if chosen and all(row.key is not None for row in chosen):
            document: Any = {row.key: row.object() for row in chosen}
        else:
            document = [row.object() for row in chosen]
        target.write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    elif fmt == "csv":
        names = list(dict.fromkeys([*(header or []), *(k for r in chosen for k in (r.object() or {}))]))
        with target.open("w", newline="", encoding="utf-8", errors="surrogateescape") as handle:
            writer = csv.writer(handle)
            writer.writerow(names)
            for row in chosen:
                fields = row.object() or {}
                writer.writerow([_cell(fields.get(name)) for name in names])
    else:
        import pyarrow as pa

        from curate.store import write_parquet

        values = [row.object() or {} for row in chosen]
        schema = header
        for name in dict.fromkeys(k for v in values for k in v if k not in header.names):
            added = pa.Table.from_pylist([{name: v.get(name)} for v in values]).schema.field(0)
            schema = schema.append(pa.field(name, pa.string()) if name in ("reason", "reason_ref") else added)
        try:  # the input's own column types (a list of turns stays a list of structs)
            table = pa.Table.from_pylist(values, schema=schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            table = pa.Table.from_pylist(values)
        write_parquet(table, target)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# -- repaired turns back into the columns they came from ------------------------------------


def _content(turns: Turns | None, role: str, last: bool = False) -> str | None:
    chosen = [t.get("content") for t in turns or [] if t.get("role") == role]
    return (chosen[-1] if last else chosen[0]) if chosen else None


def _extractors(entry: Source) -> dict[str, tuple[str, Extract]]:
    """Column -> (turn column, how its value is read off the record's turns), for every
    mapping field that reads a plain column; empty when a turn is built from several."""
    m = entry.mapping
    out: dict[str, tuple[str, Extract]] = {}
    if m.kind == "chat":
        if m.messages is not None:
            out[m.messages] = ("messages", lambda t: t)
        elif m.context is None and m.input is None and m.question is not None:
            out[m.question] = ("messages", lambda t: _content(t, "user"))
            if m.answer is not None:
                out[m.answer] = ("messages", lambda t: _content(t, "assistant", last=True))
    elif m.kind == "preference":
        out[m.prompt] = ("messages", lambda t: _content(t, "user"))
        out[m.chosen] = ("chosen", lambda t: _content(t, "assistant", last=True))
        out[m.rejected] = ("rejected", lambda t: _content(t, "assistant", last=True))
    elif m.kind == "image_text":
        out[m.question] = ("messages", lambda t: _content(t, "user"))
        out[m.answer] = ("messages", lambda t: _content(t, "assistant", last=True))
    if not all(_PLAIN.match(column) for column in out):
        return {}
    return out


def _writeback(entry: Source, rows: list[_Row], repairs: Repairs) -> dict[str, tuple[str, Extract]] | None:
    """The columns repaired text goes back into, or None (add `messages` etc. instead) when
    some repaired row's original column does not hold exactly what the record was read as."""
    if not repairs.rows:
        return {}
    columns = _extractors(entry)
    if not columns:
        return None
    for index, fixed in repairs.rows.items():
        fields = rows[index].object() if index < len(rows) else None
        if fields is None:
            return None
        for column, (turn_column, extract) in columns.items():
            if turn_column in fixed and (
                    _normal(fields.get(column)) != _normal(extract(fixed[turn_column][0]))):
                return None
    return columns


def _normal(value: Any) -> Any:
    if isinstance(value, list):
        return [{"role": t.get("role"), "content": t.get("content")} if isinstance(t, dict) else t
                for t in value]
    return value


def _repair(row: _Row, fixed: dict[str, tuple[Turns | None, Turns | None]],
            columns: dict[str, tuple[str, Extract]] | None) -> _Row:
    if columns is None:
        return row.update({name: new for name, (_, new) in fixed.items()})
    return row.update({column: extract(fixed[turn][1]) for column, (turn, extract) in columns.items()
                       if turn in fixed})
