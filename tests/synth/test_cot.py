"""synth_cot_v1 with the offline backend: lineage, attempts, reasons, cache, files."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fake_openai import make_chat, make_mcqa  # noqa: F401 (fixtures)

from curate.config import validate_model
from curate.errors import ConfigError
from curate.records import SCHEMA, record_id, validate_records
from curate.synth.config import SynthCotConfig
from curate.synth.cot import enhance, enhance_file
from curate.synth.templates import Template

OFFLINE = {"backend": "offline"}


def test_lineage_fields_are_exact(tmp_path, make_mcqa):
    parents = make_mcqa(5)
    synthetic, rejected, stats = enhance(parents, SynthCotConfig(generator=OFFLINE, seed=11),
                                         tmp_path / "cache")
    assert synthetic.schema == SCHEMA and rejected.num_rows == 0
    validate_records(synthetic)
    template = Template("mcqa", "given")
    for record, parent in zip(synthetic.to_pylist(), parents.to_pylist()):
        meta = json.loads(record["meta"])
        assert set(meta) == {"stage", "parent_id", "parent_source", "parent_row", "generator",
                             "offline_backend", "template", "template_hash", "gold_answer",
                             "seed", "attempt", "temperature"}
        assert meta["stage"] == "synth_cot_v1" and meta["parent_id"] == parent["id"]
        assert (meta["parent_source"], meta["parent_row"]) == ("medmcqa", parent["row"])
        assert meta["generator"] == {"backend": "offline", "model": "curate-offline-template",
                                     "revision": None}
        assert meta["offline_backend"] is True
        assert (meta["template"], meta["template_hash"]) == ("mcqa_given", template.hash)
        assert meta["gold_answer"] == "given" and meta["attempt"] == 1 and meta["temperature"] == 0.7
        assert isinstance(meta["seed"], int) and 0 <= meta["seed"] < 2**31
        assert record["origin"] == "synthetic" and record["source"] == "synth_cot"
        assert record["source_version"] == "synth_cot_v1" and record["row"] == parent["row"]
        for name in ("kind", "domain", "license", "task", "mcqa"):
            assert record[name] == parent[name]
        assert record["messages"][0] == parent["messages"][0]
        assert record["messages"][1]["role"] == "assistant"
        assert record["messages"][1]["content"].endswith(f"Answer: {chr(65 + parent['mcqa']['answer'])}")
        assert record["id"] == record_id(record) != parent["id"]
    assert stats["attempts"] == {"1": 5} and stats["rows"] == 5 and stats["synthetic"] == 5
    assert stats["offline_backend"] is True and stats["requests"] == {"sent": 5, "cached": 0}
    assert stats["completion_tokens_per_row"] == round(stats["tokens"]["completion"] / 5, 2)


def test_withheld_gold_retries_with_a_temperature_step(tmp_path, make_mcqa):
    config = SynthCotConfig(generator=OFFLINE, gold_answer="withheld", max_attempts=3,
                            temperature=0.5, temperature_step=0.25)
    synthetic, rejected, stats = enhance(make_mcqa(40), config, tmp_path / "cache")
    attempts = {int(k): v for k, v in stats["attempts"].items()}
    assert sum(attempts.values()) == synthetic.num_rows and set(attempts) == {1, 2, 3}
    for record in synthetic.to_pylist():
        meta = json.loads(record["meta"])
        assert meta["temperature"] == 0.5 + 0.25 * (meta["attempt"] - 1)
        assert meta["template"] == "mcqa_withheld"
    assert set(rejected.column("reason").to_pylist()) == {"wrong_answer"}
    assert rejected.column("attempts").to_pylist() == [3] * rejected.num_rows
    assert rejected.column("attempt_reasons").to_pylist() == [["wrong_answer"] * 3] * rejected.num_rows
    assert stats["rejected"] == {"wrong_answer": rejected.num_rows}
    assert stats["failed_attempts"]["wrong_answer"] == (
        attempts.get(2, 0) + 2 * attempts.get(3, 0) + 3 * rejected.num_rows)
    assert stats["requests"]["sent"] == synthetic.num_rows + sum(
        (a - 1) for a in [json.loads(m)["attempt"] for m in synthetic.column("meta").to_pylist()]
    ) + 3 * rejected.num_rows


def test_open_qa_and_unsupported_records(tmp_path, make_chat):
    rows = [
        make_chat("What causes scurvy in sailors?", "A lack of vitamin C in the diet. It heals fast.", row=0),
        make_chat("What causes scurvy in sailors?", None, row=1),
        {**make_chat("Compare these two answers.", "The first.", row=2), "kind": "preference",
         "chosen": [{"role": "assistant", "content": "x"}],
         "rejected": [{"role": "assistant", "content": "y"}]},
    ]
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    synthetic, rejected, stats = enhance(table, SynthCotConfig(generator=OFFLINE), tmp_path / "c")
    [record] = synthetic.to_pylist()
    assert record["messages"][-1]["content"].endswith("Answer: A lack of vitamin C in the diet.")
    assert json.loads(record["meta"])["template"] == "open_qa_given"
    assert rejected.select(["row", "reason", "attempts"]).to_pylist() == [
        {"row": 1, "reason": "no_gold_answer", "attempts": 0},
        {"row": 2, "reason": "unsupported_record", "attempts": 0},
    ]
    assert stats["rows"] == 3 and stats["rejected"] == {"no_gold_answer": 1, "unsupported_record": 1}


def test_a_second_run_sends_nothing_and_gives_the_same_records(tmp_path, make_mcqa):
    config = SynthCotConfig(generator=OFFLINE, gold_answer="withheld")
    first = enhance(make_mcqa(20), config, tmp_path / "cache")
    second = enhance(make_mcqa(20), config, tmp_path / "cache")
    assert second.stats["requests"] == {"sent": 0, "cached": first.stats["requests"]["sent"]}
    assert second.synthetic.equals(first.synthetic) and second.rejected.equals(first.rejected)
    assert second.stats["tokens"] == first.stats["tokens"]


def test_changing_the_template_mode_or_seed_misses_the_cache(tmp_path, make_mcqa):
    enhance(make_mcqa(4), SynthCotConfig(generator=OFFLINE), tmp_path / "cache")
    again = enhance(make_mcqa(4), SynthCotConfig(generator=OFFLINE, seed=1), tmp_path / "cache")
    assert again.stats["requests"]["sent"] == 4


def test_sources_and_max_rows_select_parents(tmp_path, make_mcqa):
    table = pa.concat_tables([make_mcqa(3), make_mcqa(3, source="other")])
    config = SynthCotConfig(generator=OFFLINE, sources=["other"], max_rows=2)
    synthetic, _, stats = enhance(table, config, tmp_path / "cache")
    parents = [json.loads(m)["parent_source"] for m in synthetic.column("meta").to_pylist()]
    assert parents == ["other", "other"] and stats["rows"] == 2
    assert synthetic.column("row").to_pylist() == [3, 4]  # positions in the input table


def test_config_is_strict():
    with pytest.raises(ConfigError, match="max_attempt"):
        validate_model(SynthCotConfig, {"generator": OFFLINE, "max_attempt": 2}, where="recipe")
    with pytest.raises(ConfigError, match="recipe: `generator`: backend `openai`: `base_url`: Field req"):
        validate_model(SynthCotConfig, {"generator": {"backend": "openai", "model": "m"}},
                       where="recipe")
    config = validate_model(SynthCotConfig, {"generator": {"backend": "vllm", "model": "m",
                                                           "tensor_parallel_size": 8}}, where="r")
    assert config.generator.tensor_parallel_size == 8


def test_enhance_file_reads_a_benchmark_file_with_its_catalog_mapping(tmp_path, data_root):
    lines = (data_root / "benchmarks/medmcqa/medmcqa_dev_full.jsonl").read_text().splitlines()[:6]
    path = tmp_path / "six.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = enhance_file(path, tmp_path / "out.parquet", config=SynthCotConfig(generator=OFFLINE),
                          cache_dir=tmp_path / "cache", source="medmcqa")
    assert result.synthetic == tmp_path / "out.parquet"
    assert pq.read_table(result.synthetic).num_rows == 6
    assert result.rejected == tmp_path / "out.rejected.parquet"
    assert json.loads((tmp_path / "out.stats.json").read_text())["synthetic"] == 6
    again = enhance_file(result.synthetic, tmp_path / "folder", config=SynthCotConfig(generator=OFFLINE),
                         cache_dir=tmp_path / "cache")  # a records parquet is read as it is
    assert (tmp_path / "folder/synthetic.parquet").is_file() and again.stats["rows"] == 6
