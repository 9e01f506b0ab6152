"""Honest denominators: every row of a benchmark is scored or dropped with the audit's code,
on the terminal, in results.json and in the lm-eval export; drops refuse a benchmark unless
allowed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import write_mcqa_benchmark, write_yaml

from curate.cli import main
from curate.errors import ConfigError
from curate.evaluate.audit import audit
from curate.evaluate.config import McqaConfig
from curate.evaluate.lm_eval_export import export_lm_eval
from curate.evaluate.mcqa import evaluate_mcqa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import tiny_model  # noqa: E402

ROWS = [
    {"q": "Which organ pumps blood?", "opts": {"A": "Heart", "B": "Liver", "C": "Lung", "D": "Skin"},
     "a": "A"},
    {"q": "Which organ filters blood?", "opts": {"A": "Kidney", "B": "Heart", "C": "Lung", "D": "Skin"},
     "a": "A"},
    {"q": "Which bone is longest?", "opts": {"A": "Femur", "B": "Tibia", "C": "Ulna", "D": "Rib"}},
    {"q": "Which gland makes insulin?", "opts": {"A": "Pancreas", "B": "Liver", "C": "Lung", "D": "Skin"},
     "a": ""},
    {"q": "Which cell carries oxygen?", "opts": {}, "a": "A"},
    {"q": "Which vessel leaves the heart?", "opts": {"A": "Aorta", "B": "Vein", "C": "Lung", "D": "Skin"},
     "a": "E"},
]
DROPPED = {"missing_answer": 2, "answer_not_in_options": 1, "empty_option": 1}


@pytest.fixture
def bad(tmp_path) -> Path:
    """A benchmark of 2 good rows and 4 bad ones (no answer, empty answer, `options: {}`, `E`)."""
    return write_mcqa_benchmark(tmp_path, "bad", ROWS)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("tiny") / "lm")


def config(model_dir: Path, **options) -> McqaConfig:
    return McqaConfig(model={"backend": "transformers", "model": str(model_dir), "device": "cpu"}, **options)


def test_dropped_rows_refuse_a_benchmark_before_any_model_loads(bad, tmp_path, data_root):
    with pytest.raises(ConfigError, match=r"benchmark `bad`: 4 of 6 rows cannot be scored "
                       r"\(2 missing_answer, "
                       r"1 answer_not_in_options, 1 empty_option.*--allow-dropped 4"):
        evaluate_mcqa(["bad"], config(tmp_path / "no-model"), out=tmp_path / "out",
                      catalog_dirs=[bad], data_root=data_root)
    with pytest.raises(ConfigError, match="--allow-dropped 4"):
        evaluate_mcqa(["bad"], config(tmp_path / "no-model", allow_dropped=3), out=tmp_path / "out",
                      catalog_dirs=[bad], data_root=data_root)


def test_results_count_rows_read_scored_and_dropped_by_reason(bad, tmp_path, data_root, model_dir):
    result = evaluate_mcqa(["bad"], config(model_dir, allow_dropped=4), out=tmp_path / "out",
                           catalog_dirs=[bad], data_root=data_root)
    d = json.loads((tmp_path / "out/results.json").read_text())["benchmarks"]["bad"]["denominator"]
    assert (d["read"], d["scored"], d["dropped"], d["not_evaluated"]) == (6, 2, 4, 0)
    assert d["dropped_by_reason"] == DROPPED
    assert d["dropped_items"] == {"missing_answer": ["bad:2", "bad:3"], "answer_not_in_options": ["bad:5"],
                                  "empty_option": ["bad:4"]}
    assert result.summary.rows[0].read == 6
    report = (tmp_path / "out/report.md").read_text()
    assert "| bad | 2 | 6 | 4 (2 missing_answer, 1 answer_not_in_options, 1 empty_option) |" in report
    # the audit names the same rows with the same codes
    flaws = audit(["bad"], catalog_dirs=[bad], data_root=data_root).benchmarks["bad"]["flaws"]
    assert {code: flaws[code] for code in DROPPED} == d["dropped_items"]


def test_the_terminal_says_what_was_dropped(bad, tmp_path, data_root, model_dir):
    args = ["eval", "mcqa", "bad", "--backend", "transformers", "--model", str(model_dir), "--device", "cpu",
            "--out", str(tmp_path / "out"), "--catalog", str(bad), "--data-root", str(data_root)]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 2 and "4 of 6 rows cannot be scored" in refused.output
    shown = CliRunner().invoke(main, [*args, "--allow-dropped", "4"])
    assert shown.exit_code == 0, shown.output
    assert "4 (2 missing_answer, 1 answer_not_in_options, 1 empty_option)" in shown.output


def test_limit_is_counted_apart_from_drops(tmp_path, data_root, model_dir):
    result = evaluate_mcqa(["pubmedqa"], config(model_dir, limit=3), out=tmp_path / "out",
                           data_root=data_root)
    d = result.results["benchmarks"]["pubmedqa"]["denominator"]
    assert (d["read"], d["scored"], d["dropped"], d["not_evaluated"]) == (1000, 3, 0, 997)


def test_the_lm_eval_export_carries_the_denominator(bad, tmp_path, data_root):
    with pytest.raises(ConfigError, match="4 of 6 rows cannot be scored"):
        export_lm_eval("bad", tmp_path / "tasks", catalog_dirs=[bad], data_root=data_root)
    task = export_lm_eval("bad", tmp_path / "tasks", allow_dropped=4, catalog_dirs=[bad], data_root=data_root)
    meta = yaml.safe_load(task.config.read_text())["metadata"]
    assert meta["items"] == 2 and meta["curate_denominator"] == {
        "read": 6, "scored": 2, "dropped": 4, "dropped_by_reason": DROPPED, "not_evaluated": 0}
    out = CliRunner().invoke(main, ["eval", "export-lm-eval", "bad", "--out", str(tmp_path / "t2"),
                                    "--allow-dropped", "4", "--catalog", str(bad),
                                    "--data-root", str(data_root)])
    assert out.exit_code == 0, out.output
    assert "2 items of 6 rows read, 4 (2 missing_answer" in out.output


def test_a_benchmark_outside_the_data_root_is_one_whole_error_naming_no_missing_option(tmp_path, data_root,
                                                                                       caplog):
    data = tmp_path / "outside.jsonl"
    data.write_text(json.dumps(ROWS[0]) + "\n")
    write_yaml(tmp_path / "cat/benchmarks/outside.yaml", f"""
        name: outside
        version: 1
        license: MIT
        domain: medical
        task: mcqa
        location: {{path: {data}}}
        mapping: {{kind: mcqa, question: q, options: opts, answer: a, answer_format: letter}}
    """)
    caplog.set_level("DEBUG")
    out = CliRunner().invoke(main, ["audit", "outside", "--catalog", str(tmp_path / "cat"),
                                    "--data-root", str(data_root)])
    assert out.exit_code == 2
    assert out.output.count("outside the data root") == 1
    assert "benchmark `outside`: `location.path:" in out.output  # the name once, not twice
    assert "(or --allow-outside-data-root)" not in out.output  # `audit` has no such option
    assert out.output.rstrip().endswith("(or --allow-outside-data-root of `curate ingest` and "
                                        "`curate build-mix`)")
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
