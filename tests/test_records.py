from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pytest

from curate.errors import RecordError
from curate.records import SCHEMA, conform, content_ids, record_id, validate_records, with_ids


def chat(user: str, assistant: str, **extra) -> dict:
    return {
        "id": None, "source": "s", "source_version": "1", "row": 0, "kind": "chat",
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}],
        **extra,
    }


def ids(*rows: dict) -> list[str]:
    return content_ids(conform(pa.Table.from_pylist(list(rows), schema=SCHEMA))).to_pylist()


def test_id_is_a_stable_content_hash():
    # The id of this record is part of the contract: it must not change across
    # machines, runs or versions of curate without a deliberate migration.
    assert ids(chat("What causes anemia?", "Low iron, among others.")) == [
        "51468323afd0397384127d54403f0b9b"
    ]
    canonical = (
        '{"kind":"chat","messages":[{"role":"user","content":"What causes anemia?"},'
        '{"role":"assistant","content":"Low iron, among others."}],"chosen":null,'
        '"rejected":null,"mcqa":{"question":null,"options":null,"answer":null},"images":null}'
    )
    assert hashlib.sha256(canonical.encode()).hexdigest()[:32] == "51468323afd0397384127d54403f0b9b"


def test_vectorised_ids_equal_the_plain_python_definition(data_root):
    lines = (data_root / "medical/medquad/medquad_sample_1500.jsonl").read_text().splitlines()
    rows = [chat(r["question"], r["answer"]) for r in map(json.loads, lines[:300])]
    rows += [
        chat('Quote " and \\ back\u00e9 \u2028 \x01 tab\t', "emoji \U0001f600 <b>&"),
        chat("q", "a", kind="mcqa", mcqa={"question": " Which  one? ", "options": ["x", "y "],
                                          "answer": 1}),
        chat("q", "a", kind="image_text", images=[{"bytes": b"\xff\xd8", "path": "a.jpg"}]),
    ]
    assert ids(*rows) == [record_id(r) for r in rows]


def test_whitespace_and_unicode_composition_do_not_change_the_id():
    a, b, c = ids(
        chat("What  causes\tanemia?", "Caf\u00e9 au lait spots."),
        chat(" What causes\u00a0anemia?\n", "Cafe\u0301 au lait spots."),
        chat("What causes anemia?", "Caf\u00e9 au lait  spots. "),
    )
    assert a == b == c


def test_provenance_does_not_change_the_id_but_content_and_roles_do():
    base = chat("q", "a")
    other_source = {**base, "source": "elsewhere", "row": 9, "domain": "general"}
    swapped = {**base, "messages": [{"role": "assistant", "content": "q"},
                                    {"role": "user", "content": "a"}]}
    edited = chat("q", "b")
    first, second, third, fourth = ids(base, other_source, swapped, edited)
    assert first == second
    assert len({first, third, fourth}) == 3


def test_image_bytes_are_hashed():
    image = lambda data: [{"bytes": data, "path": "same.jpg"}]  # noqa: E731
    a, b, c = ids(chat("q", "a", kind="image_text", images=image(b"one")),
                  chat("q", "a", kind="image_text", images=image(b"one")),
                  chat("q", "a", kind="image_text", images=image(b"two")))
    assert a == b != c


def test_validate_names_the_row_and_column():
    rows = [chat("fine", "fine"), chat("fine", "fine")]
    rows[1]["messages"][1]["role"] = "robot"
    table = with_ids(conform(pa.Table.from_pylist(rows, schema=SCHEMA)))
    with pytest.raises(RecordError, match=r"data.parquet: row 1 .*column `messages`.*role"):
        validate_records(table, where="data.parquet")


def test_validate_rejects_an_answer_outside_the_options():
    row = chat("q?", "A. x", kind="mcqa", mcqa={"question": "q?", "options": ["x", "y"], "answer": 2})
    table = with_ids(conform(pa.Table.from_pylist([row], schema=SCHEMA)))
    with pytest.raises(RecordError, match=r"row 0 .*column `mcqa`: `answer` must index"):
        validate_records(table)


def test_validate_accepts_hidden_mcqa_answers_and_good_rows():
    rows = [chat("q", "a"),
            chat("q?", "", kind="mcqa", mcqa={"question": "q?", "options": ["x", "y"], "answer": None})]
    rows[1]["messages"] = rows[1]["messages"][:1]
    validate_records(with_ids(conform(pa.Table.from_pylist(rows, schema=SCHEMA))))


def test_conform_names_a_missing_required_column():
    with pytest.raises(RecordError, match="column `kind` is missing"):
        conform(pa.table({"id": ["x"], "source": ["s"], "source_version": ["1"], "row": [0]}))
