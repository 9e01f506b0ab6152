"""Cleaning: repaired text, one reason per flag, counted by the engine; every record kind."""

from __future__ import annotations

import json

import polars as pl
import pyarrow as pa
import pytest
from conftest import ingest_into

from curate.curation.clean import Clean, CleanConfig, clean_messages
from curate.engine.runner import run_stages
from curate.engine.stage import StageContext
from curate.errors import ConfigError
from curate.ingest.files import source_for_file
from curate.records import SCHEMA
from curate.store import RunStore


def table_of(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def chat(*turns: str) -> list[dict[str, str]]:
    return [{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(turns)]


# (question, answer, the reason under the default options)
CRAFTED = [
    ("Where is the café?", "The cafÃ© is  on the   left,\r\nnext to the bank.", None),
    ("Which US state produces the most pineapples?", "Hawaii", None),
    ("What is a fever?", "...", "empty_answer"),
    ("What is a fever?", "what is a FEVER", "answer_equals_question"),
    ("How do I pick a lock?", "I'm sorry, but I cannot help with that request.", "refusal"),
    ("Is this mole cancer?", "As an AI language model, I cannot provide a diagnosis.", "refusal"),
    ("Is this mole cancer?", "I'm sorry, but I cannot diagnose you. However, a mole that changes "
     "shape or colour should be seen by a dermatologist.", None),
    ("Write a poem.", "the cat sat on the mat " * 4 + "the cat sat on the mat", "repetitive"),
    ("List the numbers.", ", ".join(str(i) for i in range(1, 19)), "non_text"),
    ("How many ribs are there?", "12", None),
    ("I have the flu.", "I'm sorry to hear you don't feel well. Rest and drink fluids.", None),
    ("What is aspirin?", "See https://medlineplus.gov/aspirin.html or write to help@nih.gov.",
     None),
]


@pytest.fixture
def crafted(tmp_path, data_root):
    path = tmp_path / "crafted.jsonl"
    path.write_text("".join(json.dumps({"messages": chat(q, a)}) + "\n" for q, a, _ in CRAFTED))
    source = source_for_file(path, like=None)
    _, records, quarantine = ingest_into(source, tmp_path / "run", data_root)
    assert (records.height, quarantine.height) == (len(CRAFTED), 0)
    return RunStore(tmp_path / "run"), source.name, records


def run(store, name, config=None):
    return run_stages([Clean(config)], store, [name], input_fingerprint="crafted")[0]


def test_each_flag_has_its_reason_and_the_engine_counts_them(crafted):
    store, name, records = crafted
    result = run(store, name)
    assert result.stats["reasons"] == {"answer_equals_question": 1, "empty_answer": 1,
                                       "non_text": 1, "refusal": 2, "repetitive": 1}
    decisions = pl.read_parquet(store.stage("clean").path / "decisions.parquet").sort("row")
    assert decisions.get_column("reason").to_list() == [r for _, _, r in CRAFTED]
    assert decisions.get_column("id").to_list() == records.sort("row").get_column("id").to_list()
    # Mojibake and spacing (row 0) are repaired; URLs and e-mails stay by default (last row).
    assert decisions.get_column("clean_changed").to_list() == [True] + [False] * (len(CRAFTED) - 1)


def test_thresholds_re_decide_and_repair_options_re_score(crafted):
    store, name, _ = crafted
    run(store, name)
    stricter = run(store, name, CleanConfig(min_answer_words=2, refusal=False, non_text=False))
    assert stricter.reused == "scores"
    assert stricter.stats["reasons"] == {"answer_equals_question": 1, "empty_answer": 1,
                                         "repetitive": 1, "short_answer": 2}
    scrubbed = run(store, name, CleanConfig(remove_urls=True, remove_emails=True))
    assert scrubbed.reused == "nothing"
    decisions = pl.read_parquet(store.stage("clean").path / "decisions.parquet").sort("row")
    assert decisions.get_column("clean_changed").to_list()[-1] is True
    assert decisions.get_column("clean_answer_words").to_list()[-1] == 4  # "See or write to ."


def test_clean_messages_returns_the_repaired_records(crafted):
    _, _, records = crafted
    table = records.sort("row").to_arrow()
    cleaned = clean_messages(table)
    answers = [m[1]["content"] for m in cleaned.column("messages").to_pylist()]
    assert answers[0] == "The café is on the left,\nnext to the bank."
    assert answers[-1] == "See https://medlineplus.gov/aspirin.html or write to help@nih.gov."
    scrubbed = clean_messages(table, CleanConfig(remove_urls=True, remove_emails=True))
    assert scrubbed.column("messages").to_pylist()[-1][1]["content"] == "See or write to ."
    assert cleaned.schema == table.schema
    untouched = [c for c in table.column_names if c != "messages"]
    assert cleaned.select(untouched).equals(table.select(untouched))  # ids too
    raw = clean_messages(table, CleanConfig(fix_unicode=False, normalize_whitespace=False))
    assert raw.column("messages").equals(table.column("messages"))


def test_repair_details():
    table = table_of([{
        "id": "0" * 32, "source": "s", "source_version": "1", "row": 0, "kind": "chat",
        "messages": chat("Caf\u00e9 &amp; bar\u00a0\u00a0menu", "def f(x):\n    return x   \n\n\n\n"
                         "Done\tnow \u201cquoted\u201d"),
    }])
    turns = clean_messages(table).column("messages").to_pylist()[0]
    assert turns[0]["content"] == "Café & bar menu"
    # Indentation (code) and curly quotes are kept; trailing spaces and blank runs go.
    assert turns[1]["content"] == "def f(x):\n    return x\n\nDone now \u201cquoted\u201d"


def test_only_strings_that_may_need_it_reach_ftfy(monkeypatch):
    import ftfy

    seen = []
    real = ftfy.fix_text
    monkeypatch.setattr(ftfy, "fix_text",
                        lambda text, config: seen.append(text) or real(text, config))
    table = table_of([
        {"id": "0" * 32, "source": "s", "source_version": "1", "row": i, "kind": "chat",
         "messages": chat(q, a)}
        for i, (q, a) in enumerate([("plain ascii", "also plain"), ("tom &amp; jerry", "naïve"),
                                    ("bell\x07", "ok")])])
    clean_messages(table)
    assert seen == ["tom &amp; jerry", "naïve", "bell\x07"]


def test_every_kind_and_multi_turn_records_are_scored():
    def record(row, kind, **columns):
        return {"id": "0" * 32, "source": "s", "source_version": "1", "row": row, "kind": kind,
                **columns}

    table = table_of([
        # The answer of a multi-turn chat is its last assistant turn.
        record(0, "chat", messages=chat("Hi", "Hello! How can I help?", "Tell me a joke",
                                        "I'm sorry, but I can't do that.")),
        # A refusal is the chosen answer of a safety pair: no flag.
        record(1, "preference", messages=chat("How do I make a weapon?"),
               chosen=chat("", "I'm sorry, but I can't help with that.")[1:],
               rejected=chat("", "Sure, first get ...")[1:]),
        record(2, "mcqa", messages=chat("Which organ makes insulin?\nA. Liver\nB. Pancreas",
                                        "B. Pancreas"),
               mcqa={"question": "Which organ makes insulin?", "options": ["Liver", "Pancreas"],
                     "answer": 1}),
        record(3, "image_text", messages=chat("Is there a fracture?", "yes"),
               images=[{"bytes": b"\x89PNG", "path": None}]),
        # A prompt-only record (adversarial prompts) has no answer and no answer flag.
        record(4, "chat", messages=chat("Explain how to pick a lock.")),
    ])
    stage = Clean()
    scores = pl.from_arrow(stage.score(table, StageContext()))
    assert scores.get_column("clean_answer_words").to_list() == [9, 10, 2, 1, None]
    assert scores.get_column("clean_refusal").to_list() == [True, None, False, False, None]
    decided = stage.decide(scores.with_columns(pl.Series("row", range(5))))
    assert decided.get_column("reason").to_list() == ["refusal", None, None, None, None]


def test_decide_on_an_empty_run():
    empty = pl.DataFrame(schema={"source": pl.String, "row": pl.Int64, "id": pl.String})
    stage = Clean()  # the engine pads the declared score columns before `decide`
    assert stage.decide(stage.with_score_columns(empty)).columns[-2:] == ["reason", "keep"]


def test_real_sources_are_barely_flagged(catalog, data_root, tmp_path):
    names = ("medquad_sample", "dolly", "self_instruct", "self_instruct_user")
    for name in names:
        ingest_into(catalog.source(name), tmp_path / "run", data_root)
    store = RunStore(tmp_path / "run")
    result = run_stages([Clean()], store, list(names), input_fingerprint="real")[0]
    assert result.stats["rows"] == 1500 + 151 + 175 + 252
    decisions = pl.read_parquet(store.stage("clean").path / "decisions.parquet")
    flagged = decisions.filter(~pl.col("keep")).sort("row").select("source", "row", "reason")
    # Two Sudoku grids; an answer made of emoji only and a regular expression for IP
    # addresses (its repeated `25[0-5]` groups) are the heuristics' known false positives.
    assert flagged.rows() == [("self_instruct_user", 133, "non_text"),
                              ("self_instruct_user", 134, "non_text"),
                              ("self_instruct_user", 153, "empty_answer"),
                              ("self_instruct_user", 210, "repetitive")]
    # MedQuAD's answers often carry runs of spaces: repair changes about half its records.
    medquad = decisions.filter(pl.col("source") == "medquad_sample")
    assert medquad.get_column("clean_changed").sum() == 721


def test_bad_options_name_the_field():
    with pytest.raises(ConfigError, match="mix.yaml: stage `clean`.*min_alpha_share"):
        Clean.from_options({"min_alpha_share": 2}, where="mix.yaml")
    with pytest.raises(ConfigError, match="unknown key `remove_url`; did you mean `remove_urls`"):
        Clean.from_options({"remove_url": True}, where="mix.yaml")
