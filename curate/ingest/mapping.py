"""Turn a batch of raw rows into records, following a catalog mapping.

The mapping compiles to one DuckDB query over the Arrow batch: vectorised, no Python
loop over rows (but for reading image files). The query also gives each row its
first problem as a reason code; rows with a reason go to quarantine, not to records:

- ``missing_field:<column>``: the mapped column is absent or null;
- ``empty_field:<column>``: it holds only whitespace;
- ``invalid_messages:<column>``: a turn with an unknown role or no content;
- ``too_few_options``, ``empty_option``: an MCQA row with fewer than two options or a blank one;
- ``unknown_answer``: the gold answer names no option (a letter or text that matches none);
- ``answer_out_of_range``: the gold index (or letter) is past the last option;
- ``unreadable_image``: the image file is missing or is not an image;
- ``image_outside_root``: the image path leaves the data root and the image root;
- ``wrong_type:<column>``: the column holds a number where text is expected, or a
  ``messages`` value that is not a list of {role, content} objects;
- ``non_integer_answer``: an ``index`` answer that is not a whole number (``2.5``);
- ``unmappable``: the row's values break the mapping query in another way (detail says how).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from curate.catalog import ChatMapping, ImageTextMapping, McqaMapping, PreferenceMapping, Source
from curate.errors import ConfigError
from curate.ingest.readers import ROW
from curate.records import ROLES, SCHEMA, conform, content_ids

if TYPE_CHECKING:
    import duckdb

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("row", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string()),
        pa.field("raw", pa.string()),
        pa.field("file", pa.string()),
    ]
)

_REF = re.compile(r"^([^.\[\]]+)((?:\.[^.\[\]]+|\[\d+\])*)$")
_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")
_LABEL_PREFIX = r"^\s*\(?[A-Za-z0-9]{1,2}\s*[.):]\s+"
_NL2 = "chr(10) || chr(10)"


def mapped_refs(mapping: ChatMapping | McqaMapping | PreferenceMapping | ImageTextMapping) -> list[str]:
    """Every column reference a mapping makes, in the order fields are declared."""
    refs: list[str] = []
    for name in ("question", "context", "input", "answer", "messages", "prompt", "chosen",
                 "rejected", "image"):
        value = getattr(mapping, name, None)
        if isinstance(value, str):
            refs.append(value)
    options = getattr(mapping, "options", None)
    refs.extend([options] if isinstance(options, str) else options or [])
    return refs + list(mapping.meta)


def columns_used(mapping: ChatMapping | McqaMapping | PreferenceMapping | ImageTextMapping) -> set[str]:
    """The top-level raw columns a mapping reads (what the reader needs to load)."""
    return {_parse_ref(ref)[0] for ref in mapped_refs(mapping)}


def _parse_ref(ref: str) -> tuple[str, list[str | int]]:
    match = _REF.match(ref)
    if not match:
        raise ConfigError(
            f"bad column reference `{ref}`: use `name`, `name.field` or `name[0]` (0-based)"
        )
    steps: list[str | int] = [
        int(index) if index else name for name, index in _STEP.findall(match.group(2))
    ]
    return match.group(1), steps


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class _Col:
    sql: str
    type: pa.DataType | None  # None: the column is absent from this batch

    @property
    def text(self) -> str:
        """The value as text: lists of strings joined by newlines, scalars cast."""
        if self.type is None:
            return "NULL::VARCHAR"
        if pa.types.is_list(self.type) or pa.types.is_large_list(self.type):
            return f"array_to_string({self.sql}, chr(10))"
        if pa.types.is_string(self.type) or pa.types.is_large_string(self.type):
            return self.sql
        return f"CAST({self.sql} AS VARCHAR)"


def resolve_column(ref: str, schema: pa.Schema) -> _Col:
    """SQL for a column reference in a batch; ``type`` is None when the batch lacks it."""
    name, steps = _parse_ref(ref)
    if name not in schema.names:
        return _Col("NULL", None)
    sql, tp = f"r.{_quote(name)}", schema.field(name).type
    for step in steps:
        if isinstance(step, int):
            if not (pa.types.is_list(tp) or pa.types.is_large_list(tp)):
                raise ConfigError(f"column reference `{ref}`: `[{step}]` needs a list, found {tp}")
            sql, tp = f"{sql}[{step + 1}]", tp.value_type
        else:
            if not pa.types.is_struct(tp) or tp.get_field_index(step) < 0:
                return _Col("NULL", None)
            sql, tp = f"struct_extract({sql}, {_literal(step)})", tp.field(step).type
    return _Col(sql, tp)


class _Query:
    """Collects the select list and the ordered checks of one mapping query."""

    def __init__(self, schema: pa.Schema):
        self.schema = schema
        self.checks: list[tuple[str, str]] = []  # (SQL condition that is true when bad, reason)

    def col(self, ref: str) -> _Col:
        return resolve_column(ref, self.schema)

    def required_text(self, ref: str, *, textual: bool = False) -> str:
        """Text of a required column, with its missing/empty checks registered.
        ``textual``: a number or boolean there is ``wrong_type`` (a question is text)."""
        col = self.col(ref)
        text = col.text
        self.checks.append((f"({text}) IS NULL", f"missing_field:{ref}"))
        if textual and not _is_textual(col.type):
            self.checks.append(("TRUE", f"wrong_type:{ref}"))
        self.checks.append((_blank(text), f"empty_field:{ref}"))
        return text

    def optional_text(self, ref: str | None) -> str:
        if ref is None:
            return "NULL::VARCHAR"
        col = self.col(ref)
        text = col.text
        if not _is_textual(col.type):
            self.checks.append((f"({text}) IS NOT NULL", f"wrong_type:{ref}"))
        return f"CASE WHEN {_blank(text)} THEN NULL ELSE {text} END"

    def reason(self) -> str:
        if not self.checks:
            return "NULL::VARCHAR"
        cases = ", ".join(f"CASE WHEN {cond} THEN {_literal(reason)} END" for cond, reason in self.checks)
        return f"coalesce({cases})"


def _is_textual(tp: pa.DataType | None) -> bool:
    """Whether a column type can stand for text: a string, a list of them, or absent."""
    if tp is None or pa.types.is_null(tp):
        return True
    if pa.types.is_list(tp) or pa.types.is_large_list(tp):  # one level: lines of text
        tp = tp.value_type
        if pa.types.is_null(tp):
            return True
    return pa.types.is_string(tp) or pa.types.is_large_string(tp) or pa.types.is_dictionary(tp)


def _is_turns(tp: pa.DataType) -> bool:
    """Whether a column type is a list of structs with ``role`` and ``content`` fields."""
    if not (pa.types.is_list(tp) or pa.types.is_large_list(tp)):
        return False
    item = tp.value_type
    return (pa.types.is_struct(item) and item.get_field_index("role") >= 0
            and item.get_field_index("content") >= 0)


_TURNS_JSON = "'[{\"role\": \"VARCHAR\", \"content\": \"VARCHAR\"}]'"


def _blank(text: str) -> str:
    """SQL: true when ``text`` is empty or only whitespace (stops at the first other
    character, so it costs nothing on real text, unlike comparing a trimmed copy)."""
    return f"regexp_full_match({text}, '[\\t\\n\\x0B\\f\\r\\p{{Z}}]*')"


def _joined(*parts: str) -> str:
    """SQL joining the non-null parts with a blank line; a lone part is not copied."""
    present = [p for p in parts if p != "NULL::VARCHAR"]
    return present[0] if len(present) == 1 else f"concat_ws({_NL2}, {', '.join(present)})"


def _turn(role: str, content: str) -> str:
    return f"{{'role': '{role}', 'content': {content}}}"


def _chat(q: _Query, m: ChatMapping) -> dict[str, str]:
    if m.messages is not None:
        col = q.col(m.messages)
        if col.type is None:
            q.checks.append(("TRUE", f"missing_field:{m.messages}"))
            return {"messages": "NULL"}
        listed = col.sql
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            # JSON text (a file whose rows mix types is read as text): a JSON array of
            # {role, content} objects is the list, anything else is the wrong type
            q.checks.append((f"{col.sql} IS NULL", f"missing_field:{m.messages}"))
            # nested CASEs: DuckDB evaluates a branch only for the rows that reach it
            ok = (f"coalesce(CASE WHEN json_valid({col.sql}) THEN (CASE WHEN json_type({col.sql}::JSON) "
                  f"= 'ARRAY' THEN list_bool_and(list_transform(CAST(({col.sql})::JSON AS JSON[]), "
                  f"lambda t: coalesce(json_type(t) = 'OBJECT', false))) ELSE false END) "
                  f"ELSE false END, false)")
            q.checks.append((f"NOT {ok}", f"wrong_type:{m.messages}"))
            listed = f"(CASE WHEN {ok} THEN from_json({col.sql}, {_TURNS_JSON}) END)"
        elif not _is_turns(col.type):
            q.checks.append((f"{col.sql} IS NULL", f"missing_field:{m.messages}"))
            q.checks.append(("TRUE", f"wrong_type:{m.messages}"))
            return {"messages": "NULL"}
        col = _Col(listed, col.type)
        msgs = (
            f"list_transform({col.sql}, lambda t: {{'role': lower(trim(CAST(t.role AS VARCHAR))), "
            f"'content': CAST(t.content AS VARCHAR)}})"
        )
        roles = ", ".join(_literal(r) for r in ROLES)
        q.checks.append((f"{col.sql} IS NULL", f"missing_field:{m.messages}"))
        q.checks.append((f"len({col.sql}) = 0", f"empty_field:{m.messages}"))
        q.checks.append(
            (f"NOT list_bool_and(list_transform({msgs}, lambda t: t.role IN ({roles}) "
             f"AND NOT coalesce({_blank('t.content')}, true)))", f"invalid_messages:{m.messages}")
        )
        return {"messages": msgs}
    assert m.question is not None
    question = q.required_text(m.question, textual=True)
    user = _joined(q.optional_text(m.context), question, q.optional_text(m.input))
    turns = [_turn("user", user)]
    if m.answer is not None:
        turns.append(_turn("assistant", q.required_text(m.answer)))
    return {"messages": f"[{', '.join(turns)}]"}


def _options(q: _Query, m: McqaMapping) -> tuple[str, str | None]:
    """SQL for the options list, and for their labels when the data carries them."""
    if m.fixed_options is not None:
        return "[" + ", ".join(_literal(o) for o in m.fixed_options) + "]::VARCHAR[]", None
    if isinstance(m.options, list):
        texts = [q.col(ref).text for ref in m.options]
        q.checks.append((" OR ".join(f"coalesce({_blank(t)}, true)" for t in texts), "empty_option"))
        return "[" + ", ".join(texts) + "]", None
    assert isinstance(m.options, str)
    col = q.col(m.options)
    if col.type is None:
        q.checks.append(("TRUE", f"missing_field:{m.options}"))
        return "NULL::VARCHAR[]", None
    if pa.types.is_struct(col.type):  # {label: text}; labels in sorted order, absent ones dropped
        labels = sorted(col.type.field(i).name for i in range(col.type.num_fields))
        pairs = ", ".join(
            f"{{'label': {_literal(label)}, "
            f"'text': CAST(struct_extract({col.sql}, {_literal(label)}) AS VARCHAR)}}"
            for label in labels
        )
        present = f"list_filter([{pairs}], lambda p: p.text IS NOT NULL)"
        return (f"list_transform({present}, lambda p: p.text)",
                f"list_transform({present}, lambda p: upper(p.label))")
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        return f"CAST({col.sql} AS VARCHAR[])", None
    raise ConfigError(
        f"`options: {m.options}` is a {col.type} column; expected a list or a {{label: text}} object"
    )


def _mcqa(q: _Query, m: McqaMapping) -> dict[str, str]:
    question = q.required_text(m.question, textual=True)
    stem = _joined(q.optional_text(m.context), question)
    options, labels = _options(q, m)
    if m.strip_labels:
        options = f"list_transform({options}, lambda o: regexp_replace(o, {_literal(_LABEL_PREFIX)}, ''))"
    options = f"list_transform({options}, lambda o: trim(o))"
    q.checks.append((f"len({options}) < 2", "too_few_options"))
    q.checks.append((f"list_bool_or(list_transform({options}, lambda o: coalesce(o, '') = ''))",
                     "empty_option"))
    listing = (f"array_to_string(list_transform({options}, "
               f"lambda o, i: chr((64 + i)::INTEGER) || '. ' || o), chr(10))")
    user = _turn("user", f"{stem} || chr(10) || {listing}")
    if m.answer is None:  # hidden answers: the question alone, for decontamination
        return {
            "messages": f"[{user}]",
            "mcqa": f"{{'question': {stem}, 'options': {options}, 'answer': NULL::INTEGER}}",
        }
    index = _answer_index(q, m, options, labels)
    q.checks.append((f"({index}) IS NULL", "unknown_answer"))
    q.checks.append((f"NOT (({index}) BETWEEN 0 AND len({options}) - 1)", "answer_out_of_range"))
    gold = f"chr((65 + ({index}))::INTEGER) || '. ' || {options}[({index}) + 1]"
    return {
        "messages": f"[{user}, {_turn('assistant', gold)}]",
        "mcqa": f"{{'question': {stem}, 'options': {options}, 'answer': ({index})::INTEGER}}",
    }


def _answer_index(q: _Query, m: McqaMapping, options: str, labels: str | None) -> str:
    """SQL for the 0-based gold index (NULL when the answer names no option)."""
    assert m.answer is not None
    answer = q.required_text(m.answer)
    if m.answer_format in ("index", "index1"):  # a whole number only (2 or 2.0; 2.5 is not an index)
        whole = f"regexp_full_match(trim({answer}), '[+-]?[0-9]{{1,9}}(\\.0+)?')"
        number = f"regexp_full_match(trim({answer}), '[+-]?[0-9]*\\.?[0-9]+([eE][+-]?[0-9]+)?')"
        q.checks.append((f"coalesce({number} AND NOT {whole}, false)", "non_integer_answer"))
        base = 1 if m.answer_format == "index1" else 0
        return (f"CASE WHEN {whole} THEN CAST(regexp_extract(trim({answer}), '^([+-]?[0-9]+)', 1) "
                f"AS INTEGER) - {base} END")
    if m.answer_format == "text":
        return f"list_position(list_transform({options}, lambda o: lower(o)), lower({answer})) - 1"
    if labels is not None:
        letter = f"upper(regexp_extract({answer}, '^\\(?([A-Za-z0-9]+)\\)?\\.?$', 1))"
        return f"list_position({labels}, {letter}) - 1"
    letter = f"upper(regexp_extract({answer}, '^\\(?([A-Za-z])\\)?\\.?$', 1))"
    return f"CASE WHEN {letter} <> '' THEN ascii({letter}) - 65 END"


def _preference(q: _Query, m: PreferenceMapping) -> dict[str, str]:
    return {
        "messages": f"[{_turn('user', q.required_text(m.prompt, textual=True))}]",
        "chosen": f"[{_turn('assistant', q.required_text(m.chosen))}]",
        "rejected": f"[{_turn('assistant', q.required_text(m.rejected))}]",
    }


def _image_text(q: _Query, m: ImageTextMapping) -> dict[str, str]:
    user = q.required_text(m.question, textual=True)
    assistant = q.required_text(m.answer)
    image = q.col(m.image)
    q.checks.append((f"{image.sql} IS NULL", f"missing_field:{m.image}"))
    if image.type is None:
        path, data = "NULL::VARCHAR", "NULL::BLOB"
    elif pa.types.is_struct(image.type):  # the `datasets` Image layout: {bytes, path}
        path = f"CAST(struct_extract({image.sql}, 'path') AS VARCHAR)"
        data = f"CAST(struct_extract({image.sql}, 'bytes') AS BLOB)"
    elif pa.types.is_binary(image.type) or pa.types.is_large_binary(image.type):
        path, data = "NULL::VARCHAR", f"{image.sql}"
    else:
        path, data = image.text, "NULL::BLOB"
    return {
        "messages": f"[{_turn('user', user)}, {_turn('assistant', assistant)}]",
        "__image_path": path,
        "__image_bytes": data,
    }


_BUILDERS = {"chat": _chat, "mcqa": _mcqa, "preference": _preference, "image_text": _image_text}
_TYPES = {name: SCHEMA.field(name).type for name in ("messages", "chosen", "rejected", "mcqa")}


def map_batch(
    raw: pa.Table,
    source: Source,
    *,
    image_root: Path | None,
    con: duckdb.DuckDBPyConnection,
    file: str | None = None,
    image_roots: list[Path] | None = None,
) -> tuple[pa.Table, pa.Table]:
    """Map a raw batch (with ``__row``) to (records, quarantined rows).

    ``image_roots``: the folders an image file a row names must lie in (resolved,
    symlinks followed); None for anywhere. A batch whose values break the query is
    mapped again in halves, so only the rows that break it are quarantined.
    """
    m = source.mapping
    q = _Query(raw.schema)
    exprs = _BUILDERS[m.kind](q, m)  # type: ignore[operator]
    if m.meta:
        fields = ", ".join(f"{_literal(ref)}: {q.col(ref).sql}" for ref in m.meta)
        exprs["meta"] = f"to_json({{{fields}}})::VARCHAR"
    select = [f"r.{_quote(ROW)} AS row", f"{q.reason()} AS __reason"]
    select += [f"{sql} AS {_quote(name)}" for name, sql in exprs.items()]
    con.register("raw", raw)
    try:
        mapped = _query(con, raw, f"SELECT {', '.join(select)} FROM raw r")
        for name in exprs:  # rows the query could not map leave these out
            if name not in mapped.column_names:
                mapped = mapped.append_column(name, pa.nulls(mapped.num_rows))
        if m.kind == "image_text":
            mapped = _with_images(mapped, image_root, image_roots)
        reasons = mapped.column("__reason")
        bad_mask = reasons.is_valid()
        if "__detail" not in mapped.column_names:
            mapped = mapped.append_column("__detail", pa.nulls(mapped.num_rows, pa.string()))
        bad = mapped.filter(bad_mask).select(["row", "__reason", "__detail"])
        raws = _raw_json(con, bad.column("row")) if bad.num_rows else {}
    finally:
        con.unregister("raw")
    good = mapped.filter(pc.invert(bad_mask))
    quarantine = pa.table(
        {
            "source": pa.array([source.name] * bad.num_rows, pa.string()),
            "row": bad.column("row"),
            "reason": bad.column("__reason"),
            "detail": bad.column("__detail"),
            "raw": pa.array([raws.get(r) for r in bad.column("row").to_pylist()], pa.string()),
            "file": pa.array([file] * bad.num_rows, pa.string()),
        },
        schema=QUARANTINE_SCHEMA,
    )
    return _records(good, source, con), quarantine


def _query(con: duckdb.DuckDBPyConnection, raw: pa.Table, sql: str) -> pa.Table:
    """Run the mapping query over ``raw`` (registered as ``raw``); when a value breaks it,
    run it on halves of the batch, down to single rows, each failing row becoming a row
    with reason ``unmappable`` and the error's first line as its detail."""
    import duckdb

    try:
        return con.sql(sql).to_arrow_table()
    except duckdb.Error as exc:
        schema_level = isinstance(exc, duckdb.BinderException | duckdb.CatalogException)
        if raw.num_rows > 1 and not schema_level:
            half = raw.num_rows // 2
            parts = []
            for part in (raw.slice(0, half), raw.slice(half)):
                con.register("raw", part)
                parts.append(_query(con, part, sql))
            con.register("raw", raw)
            parts = [p for p in parts if p.num_rows] or parts[:1]
            return pa.concat_tables(parts, promote_options="permissive")
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        n = raw.num_rows
        return pa.table({"row": raw.column(ROW), "__reason": pa.array(["unmappable"] * n, pa.string()),
                         "__detail": pa.array([first] * n, pa.string())})


def _raw_json(con: duckdb.DuckDBPyConnection, rows: pa.ChunkedArray) -> dict[int, str]:
    con.register("bad_rows", pa.table({"row": rows}))
    try:
        found = con.execute(
            f"SELECT r.{_quote(ROW)}, left(to_json(r)::VARCHAR, 2000) FROM raw r "
            f"JOIN bad_rows b ON r.{_quote(ROW)} = b.row"
        ).fetchall()
    finally:
        con.unregister("bad_rows")
    return dict(found)


def _records(mapped: pa.Table, source: Source, con: duckdb.DuckDBPyConnection) -> pa.Table:
    n = mapped.num_rows

    def const(value: str | None) -> pa.Array:
        return pa.array([value] * n, pa.string())

    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        "source": const(source.name),
        "source_version": const(source.version),
        "row": mapped.column("row"),
        "kind": const(source.mapping.kind),
        "domain": const(source.domain),
        "origin": const(source.origin),
        "task": const(source.task),
        "license": const(source.license),
    }
    for name, tp in _TYPES.items():
        if name in mapped.column_names:
            columns[name] = mapped.column(name).cast(tp)
    for name in ("images", "meta"):
        if name in mapped.column_names:
            columns[name] = mapped.column(name)
    table = conform(pa.table(columns).add_column(0, "id", pa.nulls(n, pa.string())))
    return table.set_column(0, "id", content_ids(table, con=con))


def _with_images(mapped: pa.Table, image_root: Path | None,
                 roots: list[Path] | None = None) -> pa.Table:
    """Load and verify each image once; mark rows whose image cannot be read, or whose
    path leaves ``roots`` (resolved, symlinks followed; None: anywhere)."""
    from PIL import Image, UnidentifiedImageError

    cache: dict[str, tuple[bytes | None, str | None, str | None]] = {}

    def load(path: str | None, data: bytes | None) -> tuple[bytes | None, str | None, str | None]:
        """(bytes, reason, detail) of one row's image."""
        if data is None:
            if path is None:
                return None, None, None
            if path in cache:
                return cache[path]
            file = Path(path) if Path(path).is_absolute() or image_root is None else image_root / path
            try:
                resolved = file.resolve()
            except (OSError, RuntimeError, ValueError) as exc:
                cache[path] = (None, "unreadable_image", f"{path}: {_problem(exc)}")
                return cache[path]
            if roots is not None and not any(resolved.is_relative_to(r) for r in roots):
                cache[path] = (None, "image_outside_root",
                               f"{path} resolves to {resolved}, outside "
                               f"{' and '.join(str(r) for r in roots)}; refused")
                return cache[path]
            try:
                data = resolved.read_bytes()
            except (OSError, ValueError) as exc:
                cache[path] = (None, "unreadable_image", f"{file}: {_problem(exc)}")
                return cache[path]
        result: tuple[bytes | None, str | None, str | None]
        if not data:
            result = (None, "unreadable_image", f"{path or 'image bytes'}: empty (0 bytes)")
        else:
            try:
                with Image.open(io.BytesIO(data)) as image:
                    image.verify()
            except UnidentifiedImageError:
                result = (None, "unreadable_image", f"{path or 'image bytes'}: not an image "
                          "(no known image format)")
            except Exception as exc:  # PIL raises many types for damaged files
                result = (None, "unreadable_image", f"{path or 'image bytes'}: {_problem(exc)}")
            else:
                result = (data, None, None)
        if path is not None:
            cache[path] = result
        return result

    images, reasons, details = [], [], []
    old_details = (mapped.column("__detail").to_pylist() if "__detail" in mapped.column_names
                   else [None] * mapped.num_rows)
    for path, data, reason, detail in zip(
        mapped.column("__image_path").to_pylist(),
        mapped.column("__image_bytes").to_pylist(),
        mapped.column("__reason").to_pylist(),
        old_details,
    ):
        loaded, problem, why = (None, None, detail) if reason is not None else load(path, data)
        if reason is None and problem is not None:
            reason = problem
        reasons.append(reason)
        details.append(why)
        images.append([{"bytes": loaded, "path": path}] if loaded is not None else None)
    drop = [c for c in ("__image_path", "__image_bytes", "__reason", "__detail") if c in mapped.column_names]
    mapped = mapped.drop_columns(drop)
    return (
        mapped.append_column("__reason", pa.array(reasons, pa.string()))
        .append_column("__detail", pa.array(details, pa.string()))
        .append_column("images", pa.array(images, SCHEMA.field("images").type))
    )


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _problem(exc: BaseException) -> str:
    """An exception as a stable one-line detail: no object addresses, no second line."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return _ADDRESS.sub("", str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__)
