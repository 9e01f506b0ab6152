"""One-file commands hand back data (issue 16, items 1 and 2): `--kept` and `--removed`
write the rows themselves in INPUT's own format, and one file is decontaminated row by row."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from newcomer import MEDQUAD, chat, newcomer_rows, write_jsonl

from curate.cli import main


def curate(*args: str | Path, code: int = 0) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


@pytest.mark.slow
def test_the_readme_chain_gives_a_file_to_train_on(tmp_path):
    rows, planted = newcomer_rows()
    mine = write_jsonl(tmp_path / "my.jsonl", rows)
    curate("clean", mine, "--kept", tmp_path / "clean.jsonl", "--removed", tmp_path / "weak.jsonl")
    curate("dedup", tmp_path / "clean.jsonl", "--kept", tmp_path / "dedup.jsonl",
           "--removed", tmp_path / "dups.jsonl")
    out = curate("decontaminate", tmp_path / "dedup.jsonl", "--benchmark", "mmlu_medical",
                 "--kept", tmp_path / "final.jsonl", "--removed", tmp_path / "contaminated.jsonl")

    final = [json.loads(line) for line in lines(tmp_path / "final.jsonl")]
    gone = {"empty", "refusal", "duplicate", "mmlu0", "mmlu1", "mmlu2"}
    assert len(final) == len(rows) - len(gone)
    assert sum(set(r) == {"messages", "origin"} for r in final) == 24  # the input's own columns
    assert all(set(r) <= {"messages", "origin"} for r in final)
    # The mojibake row carries clean's repair; rows clean left alone are the input's bytes.
    repaired = [r for r in final if "au lait" in r["messages"][0]["content"]]
    assert repaired[0]["messages"][0]["content"] == "What is a café au lait spot?"
    original = {line for line in lines(mine)}
    assert lines(tmp_path / "final.jsonl")[-1] in original  # the URL row: nothing to repair

    weak = {(r["reason"], r["reason_ref"]) for r in map(json.loads, lines(tmp_path / "weak.jsonl"))}
    assert weak == {("refusal", None), ("invalid_messages", "messages")}  # the blank answer: no record
    dups = [json.loads(line) for line in lines(tmp_path / "dups.jsonl")]
    assert [d["reason"] for d in dups] == ["duplicate_of"] and len(dups[0]["reason_ref"]) == 32
    contaminated = [json.loads(line) for line in lines(tmp_path / "contaminated.jsonl")]
    assert [(c["reason"], c["reason_ref"]) for c in contaminated] == [("contaminated", "mmlu_medical")] * 3
    # Row by row: 3 of 26 + 3 rows are contaminated, and the summary says what the rule would do.
    assert "contaminated: 3 of 29 rows (10.34%)" in out
    assert "0.5% rule would have rejected the whole file; --reject-source-above applies it" in out
    assert "source_rejected" not in out


def test_the_source_rule_applies_when_asked_for(tmp_path):
    rows, _ = newcomer_rows()
    mine = write_jsonl(tmp_path / "my.jsonl", rows)
    out = curate("decontaminate", mine, "--benchmark", "mmlu_medical", "--reject-source-above", "0.005",
                 "--removed", tmp_path / "removed.jsonl")
    reasons = [(r["reason"], r["reason_ref"]) for r in map(json.loads, lines(tmp_path / "removed.jsonl"))]
    assert reasons.count(("contaminated", "mmlu_medical")) == 3
    assert reasons.count(("source_rejected", "contamination")) == len(reasons) - 3 - 1  # 1: not a record
    assert "--reject-source-above 0.005" in out


def test_parquet_in_parquet_out_with_original_columns(tmp_path):
    rows, planted = newcomer_rows()
    mine = tmp_path / "my.parquet"
    pl.DataFrame([r | {"n": i} for i, r in enumerate(rows)]).write_parquet(mine)
    curate("clean", mine, "--kept", tmp_path / "kept.parquet", "--removed", tmp_path / "removed.parquet",
           "--remove-urls", "--out", tmp_path / "decisions.parquet")
    kept = pl.read_parquet(tmp_path / "kept.parquet")
    removed = pl.read_parquet(tmp_path / "removed.parquet")
    assert kept.columns == ["messages", "origin", "n"]
    assert kept.schema == pl.read_parquet(mine).schema  # the input's own column types
    assert removed.columns == ["messages", "origin", "n", "reason", "reason_ref"]
    assert sorted(removed.get_column("n")) == sorted([planted["empty"], planted["refusal"]])
    url = kept.filter(pl.col("n") == planted["url"]).get_column("messages")[0]
    assert "https://" not in url[1]["content"] and "anemia" in url[1]["content"]
    # The decisions file is still there, as before.
    assert pl.read_parquet(tmp_path / "decisions.parquet").height == len(rows)


COLUMNS = ["id", "question", "answer", "focus", "source", "qtype", "url"]


def test_a_mapped_file_gets_its_repairs_in_its_own_columns(tmp_path):
    with MEDQUAD.open(encoding="utf-8") as handle:
        rows = [json.loads(next(handle)) for _ in range(5)]
    rows[1]["answer"] = "CafÃ© au lait spots are flat, light brown patches of skin."
    mine = tmp_path / "qa.csv"
    with mine.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    curate("clean", mine, "--source", "medquad", "--kept", tmp_path / "kept.csv")
    with (tmp_path / "kept.csv").open(newline="", encoding="utf-8") as handle:
        kept = list(csv.DictReader(handle))
    assert list(kept[0]) == COLUMNS
    assert kept[1]["answer"] == "Café au lait spots are flat, light brown patches of skin."
    assert [k["id"] for k in kept] == [r["id"] for r in rows]


def test_a_json_list_file_comes_back_as_a_json_list(tmp_path):
    mine = tmp_path / "rows.json"
    mine.write_text(json.dumps([chat("Is a cafÃ© open?", "Yes, it opens at nine."),
                                chat("Is it sunny?", "Yes.")]), encoding="utf-8")
    curate("clean", mine, "--kept", tmp_path / "kept.json")
    kept = json.loads((tmp_path / "kept.json").read_text(encoding="utf-8"))
    assert kept[0]["messages"][0]["content"] == "Is a café open?" and kept[1] == json.loads(
        mine.read_text())[1]


def test_one_line_errors_for_what_to_write(tmp_path):
    rows, _ = newcomer_rows()
    mine = write_jsonl(tmp_path / "my.jsonl", rows[:3])
    out = curate("clean", mine, code=2)
    assert out.strip() == ("error: nothing to write: give --kept PATH (the kept rows), --removed PATH "
                           "or --out PATH (every row's decision)")
    out = curate("clean", mine, "--kept", tmp_path / "kept.parquet", code=2)
    assert "rows are written in INPUT's own format (JSON Lines); name the file kept.jsonl" in out


@pytest.mark.parametrize("name", ["clean", "dedup", "decontaminate", "score", "diversify",
                                  "check-images", "check-answers", "check-relevance", "check-boxes"])
def test_every_one_file_command_takes_kept_and_removed(name):
    out = curate(name, "--help")
    assert "--kept" in out and "--removed" in out


def test_the_library_keeps_the_recipe_rule_unless_told_to_judge_rows(tmp_path):
    from curate.pipeline.adhoc import run_on_file

    rows, _ = newcomer_rows()
    mine = write_jsonl(tmp_path / "my.jsonl", rows)
    by_rule = run_on_file(mine, None, {"decontam": {}}, removed=tmp_path / "r.jsonl",
                          benchmarks=["mmlu_medical"])
    assert by_rule.kept == 0 and by_rule.contamination.reject_source_above == 0.005
    by_row = run_on_file(mine, None, {"decontam": {}}, kept=tmp_path / "k.jsonl",
                         benchmarks=["mmlu_medical"], source_rejection=False)
    assert by_row.reasons == {"contaminated": 3, "invalid_messages": 1}
    assert asdict(by_row.contamination) == {"contaminated": 3, "rows": 31, "share": 3 / 31,
                                    "reject_source_above": None, "recipe_rule": 0.005,
                                    "recipe_would_reject": True}
    assert asdict(by_row.written) == {"kept": 28, "removed": 4, "repaired": 0}
