"""Property and fuzz tests (hypothesis): hostile bytes and shapes given to every reader
(JSON Lines, JSON, CSV, parquet, images) and to the catalog loader. The only outcomes
allowed are records, quarantined rows with a reason, or a one-line error; never a
traceback, never a lost row, never a hang."""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate.catalog import Catalog, Recipe, Source
from curate.config import load_model
from curate.errors import ConfigError
from curate.ingest import ingest_source
from curate.store import RunStore

TRIED: Counter[str] = Counter()
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

MAPPINGS = {
    "chat": {"kind": "chat", "question": "question", "answer": "answer", "meta": ["id"]},
    "messages": {"kind": "chat", "messages": "messages"},
    "mcqa": {"kind": "mcqa", "question": "question", "options": "options", "answer": "answer",
             "answer_format": "index"},
    "mcqa_letters": {"kind": "mcqa", "question": "question", "options": ["a", "b"], "answer": "answer",
                     "answer_format": "letter"},
    "preference": {"kind": "preference", "prompt": "question", "chosen": "answer", "rejected": "id"},
    "image": {"kind": "image_text", "image": "image", "question": "question", "answer": "answer"},
}
COLUMNS = ["question", "answer", "messages", "options", "id", "image", "a", "b"]

scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True)
           | st.text(max_size=30) | st.sampled_from(["\x00", "\ud7ff", "A", "0", "2.5", "\u202e", ""]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(["role", "content", "x", "0"]), inner, max_size=3),
                      max_leaves=12)
rows = st.lists(st.dictionaries(st.sampled_from(COLUMNS), values, max_size=6) | values, max_size=12)
turns = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "bot", ""]),
                                        "content": st.text(max_size=20) | st.none()}), max_size=4)
good_rows = st.lists(st.fixed_dictionaries({
    "question": st.text(min_size=1, max_size=20), "answer": st.text(max_size=20) | st.integers(),
    "messages": turns, "options": st.lists(st.text(max_size=8), max_size=5),
    "id": st.integers() | st.text(max_size=5), "a": st.text(max_size=5), "b": st.text(max_size=5),
    "image": st.sampled_from(["img.png", "bad.png", "empty.png", "../x.png", "/etc/passwd", "nope"])}),
    max_size=12)


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _mutate(data: bytes, how: str, cut: float) -> bytes:
    if how == "truncate":
        return data[: int(len(data) * cut)]
    if how == "latin-1":
        return data.decode("utf-8", "replace").encode("latin-1", "replace")
    if how == "utf-16":
        return data.decode("utf-8", "replace").encode("utf-16")
    if how == "nul":
        at = int(len(data) * cut)
        return data[:at] + b"\x00" + data[at:]
    if how == "bad-utf8":
        at = int(len(data) * cut)
        return data[:at] + b"\xff\xc3(" + data[at:]
    return data


def _encode(fmt: str, items: list) -> bytes:
    if fmt == "jsonl":
        return "".join(json.dumps(r, allow_nan=True) + "\n" for r in items).encode("utf-8", "surrogatepass")
    if fmt == "json":
        return json.dumps(items, allow_nan=True).encode("utf-8", "surrogatepass")
    if fmt == "csv":
        lines = ["question,answer,id,a,b,options,messages,image"]
        for r in items:
            r = r if isinstance(r, dict) else {"question": r}
            lines.append(",".join(json.dumps(r.get(c)) for c in ("question", "answer", "id", "a", "b",
                                                                   "options", "messages", "image")))
        return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
    table = _parquet_table(items)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _parquet_table(items: list) -> pa.Table:
    columns: dict[str, list] = {c: [] for c in COLUMNS}
    for r in items:
        r = r if isinstance(r, dict) else {"question": r}
        for c in COLUMNS:
            columns[c].append(r.get(c))
    table = {}
    for name, vals in columns.items():
        try:
            table[name] = pa.array(vals)
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            table[name] = pa.array([None if v is None else json.dumps(v) for v in vals], pa.string())
    return pa.table(table)


def _images(folder: Path) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (3, 3)).save(buffer, "PNG")
    (folder / "img.png").write_bytes(buffer.getvalue())
    (folder / "bad.png").write_bytes(buffer.getvalue()[:20] + b"garbage")
    (folder / "empty.png").write_bytes(b"")


def _ingest_one(fmt: str, mapping: str, data: bytes, batch_rows: int) -> None:
    """Ingest ``data`` as a file of ``fmt`` read with ``mapping``; check the outcome."""
    TRIED[f"{fmt}/{mapping}"] += 1
    if os.environ.get("CURATE_FUZZ_TRACE"):
        with open(os.environ["CURATE_FUZZ_TRACE"], "ab") as trace:
            trace.write(repr((fmt, mapping, data, batch_rows)).encode() + b"\n")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        root.mkdir()
        _images(root)
        (root / f"f.{fmt}").write_bytes(data)
        source = Source.model_validate({
            "name": "fuzz", "version": "1", "license": "MIT", "domain": "general", "task": "qa",
            "location": {"path": f"f.{fmt}", **({"key_field": "id"} if fmt == "json" else {})},
            "mapping": MAPPINGS[mapping]})
        store = RunStore(Path(tmp) / "run")
        result = ingest_source(source, store.source("fuzz"), data_root=root, batch_rows=batch_rows,
                               max_record_bytes=4096)
        if result.error is not None:
            assert "\n" not in result.error and "Traceback" not in result.error, result.error
            assert result.error.strip()
            return
        assert result.rows == result.records + sum(result.quarantined.values())
        for reason in result.quarantined:
            assert re.fullmatch(r"[a-z][a-z0-9_]*(:.+)?", reason), reason
        folder = store.source("fuzz")
        for path in folder.files("quarantine"):
            details = pq.read_table(path, columns=["detail"]).column("detail").to_pylist()
            assert not any(re.search(r" at 0x[0-9a-f]+", d or "") for d in details), details


@pytest.mark.slow
@FUZZ
@given(fmt=st.sampled_from(["jsonl", "json", "csv", "parquet"]), mapping=st.sampled_from(sorted(MAPPINGS)),
       items=rows | good_rows,
       how=st.sampled_from(["none", "truncate", "latin-1", "utf-16", "nul", "bad-utf8"]),
       cut=st.floats(0, 1), batch_rows=st.sampled_from([1, 3, 1000]))
def test_readers_take_hostile_rows(fmt, mapping, items, how, cut, batch_rows):
    try:
        data = _encode(fmt, items)
    except (ValueError, UnicodeEncodeError, pa.ArrowException):
        data = repr(items).encode()
    _ingest_one(fmt, mapping, _mutate(data, how, cut), batch_rows)


@pytest.mark.slow
@FUZZ
@given(fmt=st.sampled_from(["jsonl", "json", "csv", "parquet"]), mapping=st.sampled_from(sorted(MAPPINGS)),
       data=st.binary(max_size=300) | st.sampled_from([
           b"", b"\n\n\n", b"\x00" * 50, _deep(5000).encode(),
           b'{"question": ' + _deep(3000).encode() + b"}\n", b"null\n",
           b"PAR1" + b"\x00" * 20 + b"PAR1", b"\xef\xbb\xbf{}\n"]))
def test_readers_take_random_bytes(fmt, mapping, data):
    _ingest_one(fmt, mapping, data, 2)


PNG_HEAD = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@FUZZ
@given(image=st.binary(max_size=400) | st.binary(max_size=400).map(lambda b: PNG_HEAD + b)
       | st.binary(max_size=200).map(lambda b: b"\xff\xd8\xff\xe0" + b) | st.just(b""),
       inline=st.booleans())
def test_images_that_are_not_images_are_quarantined(image, inline):
    """An image file (or inline bytes in a parquet column) of random bytes."""
    TRIED["image"] += 1
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "x.png").write_bytes(image)
        column = pa.array([image], pa.binary()) if inline else pa.array(["x.png"])
        pq.write_table(pa.table({"image": column, "question": ["What?"], "answer": ["That."]}),
                       root / "f.parquet")
        source = Source.model_validate({
            "name": "img", "version": "1", "license": "MIT", "domain": "general", "task": "vqa",
            "location": {"path": "f.parquet"}, "mapping": MAPPINGS["image"]})
        result = ingest_source(source, RunStore(root / "run").source("img"), data_root=root)
        assert result.error is None and result.rows == 1
        assert result.records + result.quarantined.get("unreadable_image", 0) == 1


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=15),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10)
ENTRY = {"name": "x", "version": "1", "license": "MIT", "domain": "d", "task": "qa",
         "location": {"path": "a.jsonl"}, "mapping": {"kind": "chat", "question": "q", "answer": "a"}}


@pytest.mark.slow
@settings(FUZZ, max_examples=150)
@given(text=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
       key=st.sampled_from([None, *ENTRY, "location.path", "mapping.kind", "version", "name"]),
       value=yaml_values, model=st.sampled_from([Source, Recipe]))
def test_the_catalog_loader_takes_hostile_yaml(text, key, value, model):
    import yaml

    TRIED["catalog"] += 1
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "entry.yaml"
        if key is None:
            path.write_bytes(text.encode("utf-8", "surrogatepass"))
        else:
            document = json.loads(json.dumps(ENTRY))
            target, _, leaf = key.rpartition(".")
            (document[target] if target else document)[leaf] = value
            path.write_text(yaml.safe_dump(document, allow_unicode=True), "utf-8")
        try:
            load_model(model, path)
        except ConfigError as exc:
            assert "\n" not in str(exc), str(exc)
            assert str(exc).startswith(str(path))
        folder = Path(tmp) / "cat"
        (folder / "sources").mkdir(parents=True)
        (folder / "sources/entry.yaml").write_bytes(path.read_bytes())
        try:
            Catalog.load([folder])
        except ConfigError as exc:
            assert str(path.name) in str(exc)


def test_zz_fuzz_inputs_tried():
    """Print how many inputs the fuzz tests tried (run after them, in file order)."""
    total = sum(TRIED.values())
    print(f"\nfuzz inputs tried: {total} ({', '.join(f'{k} {v}' for k, v in sorted(TRIED.items()))})")
    assert total >= 0
