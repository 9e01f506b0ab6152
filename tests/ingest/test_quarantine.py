"""Bad rows go to quarantine with their reason; a bad file fails its source only."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from conftest import ingest_into, source_from_yaml, write_yaml

from curate.cli import main


def counts(quarantine) -> dict[str, int]:
    return dict(quarantine.group_by("reason").len().sort("reason").iter_rows())


def test_broken_jsonl_lines_are_quarantined_by_reason(tmp_path):
    lines = [
        b'{"question": "What is gout?", "answer": "A form of arthritis."}',
        b'{"question": "Broken", "answer": ',
        b'{"question": "Latin-1 \xe9", "answer": "x"}',
        b'{"question": "No answer here"}',
        b'{"question": "Blank answer", "answer": "   "}',
        b'[1, 2, 3]',
        b'{"question": "What is a fever?", "answer": "A raised temperature."}',
    ]
    (tmp_path / "qa.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    source = source_from_yaml(tmp_path, """
        name: qa
        version: 1
        license: MIT
        domain: medical
        task: qa
        location: {path: qa.jsonl}
        mapping: {kind: chat, question: question, answer: answer}
    """)
    result, records, quarantine = ingest_into(source, tmp_path / "run", tmp_path)
    assert result.error is None
    assert records.get_column("row").to_list() == [0, 6]
    assert counts(quarantine) == {
        "empty_field:answer": 1, "invalid_json": 1, "invalid_utf8": 1,
        "missing_field:answer": 1, "not_an_object": 1,
    }
    assert result.quarantined == counts(quarantine)
    assert dict(quarantine.select("reason", "row").iter_rows()) == {
        "invalid_json": 1, "invalid_utf8": 2, "missing_field:answer": 3,
        "empty_field:answer": 4, "not_an_object": 5,
    }
    broken = quarantine.filter(reason="invalid_json").row(0, named=True)
    assert broken["raw"] == '{"question": "Broken", "answer": '
    assert broken["file"].endswith("qa.jsonl")


def test_bad_answers_are_quarantined(tmp_path):
    (tmp_path / "mcq.csv").write_text(
        "question,a,b,c,d,gold\n"
        "Which bone is longest?,femur,tibia,ulna,radius,0\n"
        "Index past the end?,w,x,y,z,7\n"
        "Not a number?,w,x,y,z,first\n"
        "Blank option?,w,,y,z,1\n"
    )
    source = source_from_yaml(tmp_path, """
        name: mcq
        version: 1
        license: MIT
        domain: medical
        task: mcqa
        location: {path: mcq.csv}
        mapping: {kind: mcqa, question: question, options: [a, b, c, d], answer: gold,
                  answer_format: index}
    """)
    result, records, quarantine = ingest_into(source, tmp_path / "run", tmp_path)
    assert records.height == 1
    assert counts(quarantine) == {"answer_out_of_range": 1, "empty_option": 1, "unknown_answer": 1}


@pytest.mark.parametrize(("answer_format", "answers", "expected"), [
    ("letter", ["B", "(c)", "F"], {"answer_out_of_range": 1}),
    ("text", ["tibia", "Ulna", "kneecap"], {"unknown_answer": 1}),
])
def test_letter_and_text_answers(tmp_path, answer_format, answers, expected):
    rows = "\n".join(
        f'{{"q": "Question {i}?", "opts": ["femur", "tibia", "ulna", "radius"], "gold": "{a}"}}'
        for i, a in enumerate(answers))
    (tmp_path / "mcq.jsonl").write_text(rows + "\n")
    source = source_from_yaml(tmp_path, f"""
        name: mcq
        version: 1
        license: MIT
        domain: medical
        task: mcqa
        location: {{path: mcq.jsonl}}
        mapping: {{kind: mcqa, question: q, options: opts, answer: gold, answer_format: {answer_format}}}
    """)
    _, records, quarantine = ingest_into(source, tmp_path / "run", tmp_path)
    assert records.get_column("mcqa").struct.field("answer").to_list() == [1, 2]
    assert counts(quarantine) == expected


def test_unreadable_images_are_quarantined(tmp_path, data_root):
    image = data_root / "multimodal/vqa_rad/images/synpic54610.jpg"
    (tmp_path / "img").mkdir()
    (tmp_path / "img/good.jpg").write_bytes(image.read_bytes())
    (tmp_path / "img/text.jpg").write_text("not an image")
    (tmp_path / "img/cut.jpg").write_bytes(image.read_bytes()[:200])
    (tmp_path / "vqa.jsonl").write_text("\n".join(
        f'{{"image": "img/{name}", "q": "Is this normal?", "a": "yes"}}'
        for name in ["good.jpg", "text.jpg", "missing.jpg", "cut.jpg", "good.jpg"]) + "\n")
    source = source_from_yaml(tmp_path, """
        name: vqa
        version: 1
        license: CC0-1.0
        domain: medical
        task: vqa
        location: {path: vqa.jsonl}
        mapping: {kind: image_text, image: image, question: q, answer: a}
    """)
    _, records, quarantine = ingest_into(source, tmp_path / "run", tmp_path)
    assert records.get_column("row").to_list() == [0, 4]
    assert counts(quarantine) == {"unreadable_image": 3}
    details = quarantine.sort("row").get_column("detail").to_list()
    assert "missing.jpg" in details[1] and "No such file" in details[1]


RECIPE = """
name: broken
version: 1
sources: [good, bad]
stages: {exact_dedup: {}}
"""


def test_an_unparsable_file_fails_its_source_only(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "good.jsonl").write_text('{"q": "a?", "a": "b"}\n{"q": "c?", "a": "d"}\n')
    (data / "bad.json").write_text('[\n  {"q": "a?", "a": "b"},\n  {"q": "c?" "a": "d"}\n]\n')
    for name, path in (("good", "good.jsonl"), ("bad", "bad.json")):
        write_yaml(tmp_path / f"cat/sources/{name}.yaml", f"""
            name: {name}
            version: 1
            license: MIT
            domain: general
            task: qa
            location: {{path: {path}}}
            mapping: {{kind: chat, question: q, answer: a}}
        """)
    recipe = write_yaml(tmp_path / "broken.yaml", RECIPE)
    result = CliRunner().invoke(main, [
        "build-mix", str(recipe), "--catalog", str(tmp_path / "cat"), "--data-root", str(data),
        "--runs", str(tmp_path / "runs")])
    assert result.exit_code == 1, result.output
    assert "bad.json: line 3, column 14: invalid JSON" in " ".join(result.output.split())
    assert "stages did not run" in result.output
    good = tmp_path / "runs/broken/1/ingest/good"
    assert (good / "records-00000.parquet").exists()
