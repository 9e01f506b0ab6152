"""The `curate` command: help everywhere, one-line user errors, the demo flow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import click
import polars as pl
import pytest
from click.testing import CliRunner
from conftest import write_yaml

from curate.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None
        path = f"{prefix}{name}"
        found.append((path, command))
        if isinstance(command, click.Group):
            found += commands(command, path + " ")
    return found


@pytest.mark.parametrize("path", [p for p, _ in commands(main)])
def test_every_command_has_help_and_a_readme_mention(path):
    result = CliRunner().invoke(main, [*path.split(), "--help"])
    assert result.exit_code == 0
    assert len(result.output.splitlines()) > 3
    assert f"curate {path}" in README.read_text(), f"README does not show `curate {path}`"


def test_help_answers_fast():
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "curate.cli", "--help"], check=True, capture_output=True)
    assert time.perf_counter() - started < 1.0


def test_user_errors_are_one_line_with_exit_code_2(tmp_path):
    recipe = write_yaml(tmp_path / "mix.yaml", "name: m\nversion: 1\nsourcs: [dolly]\n")
    result = CliRunner().invoke(main, ["build-mix", str(recipe), "--runs", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert "unknown key `sourcs`; did you mean `sources`?" in result.output
    assert "Traceback" not in result.output


def test_validate_reports_a_mapped_column_missing_from_the_data(tmp_path):
    entry = write_yaml(tmp_path / "cat/sources/oops.yaml", """
        name: oops
        version: 1
        license: MIT
        domain: general
        task: qa
        location: {path: general/dolly/dolly_151.jsonl}
        mapping: {kind: chat, question: instruction, answer: reply}
    """)
    result = CliRunner().invoke(main, ["catalog", "validate", str(entry)])
    assert result.exit_code == 1
    assert "mapped column(s) `reply` not in the first 100 rows" in result.output
    assert "instruction, context, response" in result.output


def test_catalog_ls_and_validate_all_shipped_entries():
    listing = CliRunner().invoke(main, ["catalog", "ls"], env={"COLUMNS": "200"})
    assert listing.exit_code == 0 and "medquad" in listing.output and "hf:qiaojin/PubMedQA" in listing.output
    result = CliRunner().invoke(main, ["catalog", "validate"])
    assert result.exit_code == 0, result.output
    assert "FAIL" not in result.output


def test_ingest_then_inspect(tmp_path):
    recipe = write_yaml(tmp_path / "mix.yaml", """
        name: small
        version: 1
        sources: [dolly, advbench]
    """)
    result = CliRunner().invoke(main, ["ingest", str(recipe), "--runs", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    shown = CliRunner().invoke(main, ["inspect", str(tmp_path / "runs/small/1")])
    assert shown.exit_code == 0
    for text in ("dolly", "advbench", "520", "151", "complete"):
        assert text in shown.output
    missing = CliRunner().invoke(main, ["inspect", str(tmp_path)])
    assert missing.exit_code == 2 and "is not a run folder" in missing.output


def test_adhoc_decontaminate_writes_every_row_and_the_report(tmp_path, data_root):
    import json

    import polars as pl

    item = json.loads((data_root / "benchmarks/mmlu_medical/mmlu_medical_test.jsonl").open().readline())
    rows = [{"messages": [{"role": "user", "content": f"What is fact number {i} about gout?"},
                          {"role": "assistant", "content": "Uric acid crystals."}]} for i in range(300)]
    rows.insert(5, {"messages": [
        {"role": "user", "content": item["question"] + "\n" + "\n".join(
            f"{k}) {v}" for k, v in item["options"].items())},
        {"role": "assistant", "content": item["answer"]}]})
    path = tmp_path / "chats.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")
    result = CliRunner().invoke(main, [
        "decontaminate", str(path), "--benchmark", "mmlu_medical", "--out", str(tmp_path / "out"),
        "--reject-source-above", "0.01"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = pl.read_parquet(tmp_path / "out/decisions.parquet")
    assert out.get_column("row").to_list() == list(range(302))
    assert sorted(out.group_by("reason", "reason_ref").len().iter_rows(), key=str) == sorted([
        (None, None, 300), ("contaminated", "mmlu_medical", 1), ("invalid_json", None, 1)], key=str)
    assert out.filter(pl.col("row") == 5).item(0, "contam_item") == {"benchmark": "mmlu_medical", "row": 0}
    assert (tmp_path / "out/contamination.parquet").exists()
    assert "contaminated" in result.output


def test_adhoc_dedup_needs_messages_or_a_source(tmp_path, data_root):
    plain = data_root / "general/dolly/dolly_151.jsonl"
    result = CliRunner().invoke(main, ["dedup", str(plain), "--out", str(tmp_path / "o.parquet")])
    assert result.exit_code == 2
    assert "`messages`" in result.output and "--source" in result.output
    mapped = CliRunner().invoke(main, ["dedup", str(plain), "--source", "dolly",
                                       "--out", str(tmp_path / "o.parquet")])
    assert mapped.exit_code == 0, mapped.output
    assert "151 rows" in mapped.output


def test_adhoc_clean_repairs_and_flags(tmp_path):
    rows = [("What is a cafÃ©?", "A small   restaurant that serves coffee."),
            ("Say hi", "I'm sorry, but I cannot help with that."),
            ("Same?", "Same?")]
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": q}, {"role": "assistant", "content": a}]}) + "\n" for q, a in rows))
    result = CliRunner().invoke(main, ["clean", str(path), "--out", str(tmp_path / "out.parquet")])
    assert result.exit_code == 0, result.output
    out = pl.read_parquet(tmp_path / "out.parquet").sort("row")
    assert out.get_column("reason").to_list() == [None, "refusal", "answer_equals_question"]
    assert out.get_column("clean_changed").to_list() == [True, False, False]


def test_score_runs_deita_scoring_with_local_models_and_fails_on_a_collapsed_scorer(tmp_path):
    pytest.importorskip("torch")
    from tiny_lm import build_tiny_lm

    rows = [("What is the capital of France?", "Paris is the capital of France."),
            ("How do I treat a cold?", "Rest, fluids and time; see a doctor if the fever is high."),
            ("Explain why the sky is blue.", "Sunlight scatters off air molecules."),
            ("Write a short poem about the sea.", "The sea is wide and grey and deep."),
            ("What are the symptoms of diabetes?", "Thirst, tiredness and blurred vision.")]
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": q}, {"role": "assistant", "content": a}]}) + "\n" for q, a in rows))
    model = str(build_tiny_lm(tmp_path / "lm"))
    args = ["score", str(path), "--out", str(tmp_path / "out.parquet"), "--device", "cpu",
            "--complexity-model", model, "--quality-model", model]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    out = pl.read_parquet(tmp_path / "out.parquet").sort("row")
    assert out.get_column("deita_score").is_between(1, 36).all()
    assert out.get_column("reason").to_list().count("low_quality") == 1  # 20% of 5 rows

    flat = str(build_tiny_lm(tmp_path / "flat", constant_logits=True))
    many = tmp_path / "many.jsonl"
    many.write_text(path.read_text() * 5)
    result = CliRunner().invoke(main, ["score", str(many), "--out", str(tmp_path / "flat.parquet"),
                                       "--device", "cpu", "--complexity-model", flat,
                                       "--quality-model", flat])
    assert result.exit_code == 2 and "collapse" in result.output.lower(), result.output


def test_vv_adds_curates_debug_log_to_v(tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"Question {i // 2}?"},
                          {"role": "assistant", "content": f"Answer {i // 2}."}]} for i in range(6)]
    path = tmp_path / "chats.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}

    def log(*flags: str) -> list[str]:
        done = subprocess.run([sys.executable, "-m", "curate.cli", *flags, "dedup", str(path), "--out",
                               str(tmp_path / f"out{len(flags[0])}.parquet")],
                              capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stderr.splitlines()

    info, debug = log("-v"), log("-vv")
    assert any(line.startswith("INFO curate.engine.runner: exact_dedup_v1") for line in info)
    assert not any(line.startswith("DEBUG") for line in info)
    ours = [line for line in debug if line.startswith("DEBUG curate.")]
    assert any("exact_dedup_v1: scoring (score fingerprint" in line for line in ours)
    assert any("shard 00000, 6 rows (6 records" in line for line in ours)
    assert not any(line.startswith("DEBUG") and not line.startswith("DEBUG curate.") for line in debug)


def test_one_file_commands_read_named_columns_inline(tmp_path):
    rows = [{"q": "What is gout?", "a": "Uric acid crystals in a joint."}] * 2 + [
        {"q": "Why is the sky blue?", "a": "Rayleigh scattering of sunlight."}]
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    plain = CliRunner().invoke(main, ["dedup", str(path), "--kept", str(tmp_path / "no.jsonl")])
    assert plain.exit_code == 2 and "--question COLUMN --answer COLUMN, or --text-key COLUMN" in plain.output
    named = CliRunner().invoke(main, ["dedup", str(path), "--question", "q", "--answer", "a",
                                      "--kept", str(tmp_path / "kept.jsonl")])
    assert named.exit_code == 0, named.output
    assert [json.loads(line) for line in (tmp_path / "kept.jsonl").read_text().splitlines()] == rows[1:]
    text = CliRunner().invoke(main, ["dedup", str(path), "--text-key", "a", "--out",
                                     str(tmp_path / "t.parquet")])
    assert text.exit_code == 0, text.output
    reasons = pl.read_parquet(tmp_path / "t.parquet").get_column("reason").to_list()
    assert reasons == [None, "duplicate_of", None]
    both = CliRunner().invoke(main, ["dedup", str(path), "--source", "dolly", "--question", "q",
                                     "--out", str(tmp_path / "x.parquet")])
    assert both.exit_code == 2 and "give --source or --question, not both" in both.output


def test_catalog_add_writes_a_checked_entry_from_a_file_or_a_pinned_hub_dataset(tmp_path):
    from curate.catalog import Catalog

    data = tmp_path / "data"
    (data / "mine").mkdir(parents=True)
    rows = [{"instruction": f"Name fruit {i}.", "output": f"Fruit {i}.", "id": i} for i in range(5)]
    (data / "mine/fruit.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    catalog = tmp_path / "catalog"
    added = CliRunner().invoke(main, ["catalog", "add", "fruit", str(data / "mine/fruit.jsonl"),
                                      "--license", "CC0-1.0", "--domain", "general",
                                      "--catalog", str(catalog),
                                      "--data-root", str(data), "--citation", "@misc{fruit, title={Fruit}}",
                                      "--json"])
    assert added.exit_code == 0, added.output
    entry = Catalog.load([catalog]).source("fruit")
    assert entry.location.path == "mine/fruit.jsonl"  # relative to the data root
    assert (entry.mapping.question, entry.mapping.answer) == ("instruction", "output")  # guessed
    assert entry.citation == "@misc{fruit, title={Fruit}}" and json.loads(added.output)["check"]["ok"]
    again = CliRunner().invoke(main, ["catalog", "add", "fruit", str(data / "mine/fruit.jsonl"), "--license",
                                      "MIT", "--domain", "general", "--catalog", str(catalog)])
    assert again.exit_code == 2 and "never overwritten" in again.output
    used = CliRunner().invoke(main, ["dedup", str(data / "mine/fruit.jsonl"), "--source", "fruit",
                                     "--catalog", str(catalog), "--out", str(tmp_path / "d.parquet")])
    assert used.exit_code == 0, used.output
    hub = ["catalog", "add", "chats", "--hf", "someone/chats", "--license", "MIT", "--domain", "general",
           "--catalog", str(catalog)]
    unpinned = CliRunner().invoke(main, [*hub, "--messages", "messages"])
    assert unpinned.exit_code == 2 and "pin the hub dataset: --revision SHA" in unpinned.output
    pinned = CliRunner().invoke(main, [*hub, "--messages", "messages", "--revision", "a" * 40])
    assert pinned.exit_code == 0, pinned.output
    hf = Catalog.load([catalog]).source("chats").location.hf
    assert hf is not None and (hf.repo, hf.revision, hf.split) == ("someone/chats", "a" * 40, "train")
    odd = tmp_path / "odd.jsonl"
    odd.write_text(json.dumps({"left": "x", "right": "y"}) + "\n")
    guessless = CliRunner().invoke(main, ["catalog", "add", "odd", str(odd), "--license", "MIT", "--domain",
                                          "general", "--catalog", str(catalog)])
    assert guessless.exit_code == 2 and "columns: left, right" in guessless.output
