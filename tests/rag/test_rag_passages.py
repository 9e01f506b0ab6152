"""Passage retrieval: real MedQuAD answers chunked with ids and provenance, searched for open
questions, a grounded prompt, and the same contamination guard."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import write_mcqa_benchmark, write_yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.cli import main
from curate.errors import ConfigError
from curate.rag.build import index_passages, open_index
from curate.rag.config import PassageConfig
from curate.rag.index import Index
from curate.rag.passages import Passage, chunk_words, grounded_prompt


@settings(max_examples=60, deadline=None)
@given(words=st.lists(st.text(alphabet="abcxyz", min_size=1, max_size=6), max_size=60),
       size=st.integers(2, 12), overlap=st.integers(0, 11))
def test_windows_cover_every_word_with_the_overlap_asked(words, size, overlap):
    overlap = min(overlap, size - 1)
    text = "  ".join(words)
    chunks = chunk_words(text, size, overlap)
    if not words:
        assert chunks == []
        return
    for start, end, chunk in chunks:
        assert text[start:end] == chunk and len(chunk.split()) <= size
    assert chunks[0][0] == 0 and chunks[-1][1] == len(text)
    for (_, _, a), (_, _, b) in zip(chunks, chunks[1:], strict=False):
        assert a.split()[len(a.split()) - overlap:] == b.split()[:overlap]
    assert sum(len(c.split()) for _, _, c in chunks) - overlap * (len(chunks) - 1) == len(words)


@pytest.fixture(scope="module")
def medquad(tmp_path_factory, data_root):
    """Eight MedQuAD pairs as a file read with the `medquad_sample` mapping, indexed as passages
    of 60 words (10 overlapping)."""
    folder = tmp_path_factory.mktemp("passages")
    lines = (data_root / "medical/medquad/medquad_sample_1500.jsonl").read_text().splitlines()[:8]
    (folder / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    built = index_passages(str(folder / "pairs.jsonl"), folder / "index", source="medquad_sample",
                           passages=PassageConfig(chunk_words=60, chunk_overlap=10), data_root=data_root)
    return {"folder": folder, "built": built, "pairs": [json.loads(line) for line in lines]}


@pytest.mark.slow
def test_passages_keep_ids_and_provenance(medquad, data_root):
    built = medquad["built"]
    index = Index.open(built.index.path)
    assert index.kind == "passages" and built.part["stats"]["passages"]["records"] == 8
    assert len(index) == built.part["stats"]["passages"]["chunks"] > 8  # long answers give several
    for record in index.records.to_dicts():
        p = json.loads(record["meta"])
        answer = medquad["pairs"][p["row"]]["answer"]
        assert answer[p["start"]:p["end"]] == record["question"]  # the span in the source text
        assert p["record_meta"]["url"] == medquad["pairs"][p["row"]]["url"]
    again = index_passages(str(medquad["folder"] / "pairs.jsonl"), built.index.path, source="medquad_sample",
                           passages=PassageConfig(chunk_words=60, chunk_overlap=10), data_root=data_root)
    assert again.added == 0  # same record, same chunk: same id


@pytest.mark.slow
def test_an_open_question_retrieves_its_passage_and_a_grounded_prompt(medquad):
    index = Index.open(medquad["built"].index.path)
    pair = medquad["pairs"][2]
    hits = index.search([pair["question"]], k=3)[0]
    best = Passage.of(hits[0])
    assert best.record is not None and best.chunk is not None
    assert best.text in pair["answer"] and best.meta is not None and best.meta["focus"] == pair["focus"]
    messages = grounded_prompt(pair["question"], [Passage.of(h) for h in hits])
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "[1] (medquad_sample, record" in messages[1]["content"] and best.text in messages[1]["content"]
    assert messages[1]["content"].endswith(f"Question: {pair['question']}")
    with pytest.raises(ConfigError, match="holds passages; appending examples"):
        from curate.rag.index import build_index

        build_index(index.as_records(), index.path, input_name="x")


@pytest.mark.slow
def test_a_passage_quoting_a_benchmark_item_is_never_returned(tmp_path, data_root, medquad):
    """A textbook page that quotes a test question with its options is left out of an index
    opened for that benchmark, whatever the query."""
    item = {"question": "A 45-year-old man has crushing chest pain radiating to the left arm with ST "
                        "elevation in leads II, III and aVF. Which artery is most likely occluded?",
            "options": ["Right coronary artery", "Left anterior descending artery", "Left circumflex artery",
                        "Left main coronary artery"], "answer": 0}
    write_mcqa_benchmark(tmp_path, "mi", [item], question="question", options="options", answer="answer",
                         answer_format="index")
    page = ("Inferior myocardial infarction. " + item["question"] + " " + " ".join(item["options"]) +
            " The right coronary artery supplies the inferior wall in most people, so ST elevation in "
            "the inferior leads points to it.")
    (tmp_path / "book.jsonl").write_text(json.dumps({"question": "Inferior MI", "answer": page}) + "\n")
    write_yaml(tmp_path / "cat/sources/book.yaml", f"""
        name: book
        version: 1
        license: MIT
        domain: medical
        task: qa
        location: {{path: {tmp_path / "book.jsonl"}}}
        allow_outside_data_root: true
        mapping: {{kind: chat, question: question, answer: answer}}
    """)
    catalogs = [tmp_path / "cat"]
    built = index_passages("book", tmp_path / "ix", catalog_dirs=catalogs, data_root=data_root)
    raw = Index.open(built.index.path)
    assert raw.search(["which coronary artery is occluded in an inferior infarction"], k=1)[0]
    guarded = open_index(built.index.path, benchmarks=["mi"], catalog_dirs=catalogs, data_root=data_root)
    assert len(guarded) == 0 and all(r.startswith(("contaminated:mi:", "similar:mi:"))
                                     for r in guarded.excluded.values())
    with pytest.raises(ConfigError, match="`mi` is a benchmark"):
        index_passages("mi", tmp_path / "ix2", catalog_dirs=catalogs, data_root=data_root)


@pytest.mark.slow
def test_the_command_line_indexes_passages_and_prints_a_grounded_prompt(medquad, tmp_path, data_root):
    out = CliRunner().invoke(main, ["rag", "passages", str(medquad["folder"] / "pairs.jsonl"), "--source",
                                    "medquad_sample", "--out", str(tmp_path / "ix"), "--chunk-words", "80",
                                    "--chunk-overlap", "20", "--data-root", str(data_root)])
    assert out.exit_code == 0, out.output
    assert "8 records cut into" in out.output and "passages of up to 80 words (20 overlapping)" in out.output
    question = medquad["pairs"][0]["question"]
    shown = CliRunner().invoke(main, ["rag", "search", str(tmp_path / "ix"), question, "--k", "2",
                                      "--grounded"])
    assert shown.exit_code == 0, shown.output
    assert shown.output.startswith("system\nAnswer the question using only the numbered passages")
    assert "[2] (medquad_sample, record" in shown.output and f"Question: {question}" in shown.output
    as_json = CliRunner().invoke(main, ["rag", "search", str(medquad["built"].index.path), question,
                                        "--grounded", "--json"])
    assert as_json.exit_code == 0 and json.loads(as_json.output)[0]["prompt"][0]["role"] == "system"


@pytest.mark.slow
def test_a_grounded_prompt_needs_a_passage_index(tmp_path):
    import pyarrow as pa

    from curate.rag.index import RECORD_SCHEMA, build_index

    rows = [{"id": "q1", "question": "Which nerve supplies the deltoid?", "options": ["Axillary", "Radial"],
             "answer": 0}]
    build_index(pa.Table.from_pylist(rows, schema=RECORD_SCHEMA), tmp_path / "examples", input_name="test")
    out = CliRunner().invoke(main, ["rag", "search", str(tmp_path / "examples"), "deltoid", "--grounded"])
    assert out.exit_code == 2
    assert "is an index of examples; --grounded builds prompts from passages" in out.output
