"""The stage contract: score once, decide cheaply, resume, count reasons."""

from __future__ import annotations

from typing import ClassVar

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from conftest import ingest_into

from curate.catalog import switched_off
from curate.config import Config
from curate.curation import build_stages
from curate.engine.runner import run_stages
from curate.engine.stage import RowStage
from curate.errors import ConfigError
from curate.read.runs import RunReader
from curate.store import RunStore


class LengthConfig(Config):
    min_chars: int = 200


class AnswerLength(RowStage):
    """A toy row stage: scores answer length, drops short answers."""

    name = "answer_length"
    version = 1
    config_class = LengthConfig
    decision_fields = frozenset({"min_chars"})
    columns = ("messages",)
    calls: ClassVar[list[int]] = []

    def score(self, records: pa.Table, context) -> pa.Table:
        AnswerLength.calls.append(records.num_rows)
        answers = pc.list_element(records.column("messages"), 1)
        return pa.table({"answer_chars": pc.utf8_length(pc.struct_field(answers, "content"))})

    def decide(self, scores: pl.DataFrame) -> pl.DataFrame:
        keep = pl.col("answer_chars") >= self.config.min_chars
        return scores.with_columns(keep=keep, reason=pl.when(keep).then(None).otherwise(pl.lit("too_short")))


@pytest.fixture
def store(catalog, data_root, tmp_path):
    for name in ("dolly", "self_instruct"):
        ingest_into(catalog.source(name), tmp_path / "run", data_root, batch_rows=50)
    return RunStore(tmp_path / "run")


def run(store, *stages):
    return run_stages(list(stages), store, ["dolly", "self_instruct"], input_fingerprint="in")


def test_scores_persist_and_a_threshold_change_only_re_decides(store):
    AnswerLength.calls.clear()
    first = run(store, AnswerLength(LengthConfig(min_chars=200)))[0]
    assert sum(AnswerLength.calls) == 151 + 175 and len(AnswerLength.calls) == 4 + 4
    decisions = pl.read_parquet(store.stage("answer_length").path / "decisions.parquet")
    assert first.stats["dropped"] == first.stats["reasons"]["too_short"]
    assert first.stats["dropped"] == decisions.filter(pl.col("answer_chars") < 200).height

    AnswerLength.calls.clear()
    again = run(store, AnswerLength(LengthConfig(min_chars=200)))[0]
    assert (again.reused, AnswerLength.calls) == ("decisions", [])

    looser = run(store, AnswerLength(LengthConfig(min_chars=20)))[0]
    assert (looser.reused, AnswerLength.calls) == ("scores", [])
    assert looser.stats["dropped"] < first.stats["dropped"]


def test_exact_dedup_keeps_the_first_copy_by_source_and_row(store, catalog, data_root, tmp_path):
    # A second copy of dolly under another name: every record is a duplicate.
    ingest_into(catalog.source("dolly").model_copy(update={"name": "dolly_again"}),
                tmp_path / "run", data_root)
    stages = build_stages({"exact_dedup": {}}, where="test")
    result = run_stages(stages, store, ["dolly_again", "dolly", "self_instruct"],
                        input_fingerprint="in")[0]
    decisions = pl.read_parquet(store.stage("exact_dedup").path / "decisions.parquet")
    dropped = decisions.filter(~pl.col("keep"))
    assert set(dropped.get_column("source")) == {"dolly_again"}
    assert result.stats["reasons"] == {"duplicate_of": 151}
    first = dropped.row(0, named=True)
    assert (first["stage"], first["reason"], first["reason_ref"]) == (
        "exact_dedup", "duplicate_of", first["id"])
    kept = RunReader(store).kept(["dolly_again", "dolly", "self_instruct"], ["exact_dedup"]).collect()
    assert kept.height == 151 + 175 and kept.get_column("id").is_unique().all()


def test_decisions_written_before_stage_and_reason_ref_are_re_decided_from_stored_scores(store):
    stages = build_stages({"exact_dedup": {}}, where="test")
    run(store, *stages)
    path = store.stage("exact_dedup").decisions
    current = pl.read_parquet(path)
    old = current.drop("stage", "reason_ref").with_columns(  # the layout of curate before the split
        reason=pl.when(pl.col("keep")).then(None).otherwise(pl.lit("duplicate_of:") + pl.col("id")))
    old.write_parquet(path)
    with pytest.raises(ConfigError, match=r"decisions.parquet was written by an older curate .*build-mix"):
        RunReader(store).decisions(["exact_dedup"]).collect()
    again = run(store, *stages)[0]
    assert again.reused == "scores"  # re-decided, never re-scored
    assert pl.read_parquet(path).equals(current)


def test_reasons_split_into_code_and_ref_and_every_decision_names_its_stage(store):
    AnswerLength.calls.clear()
    stages = [AnswerLength(LengthConfig(min_chars=200)), *build_stages({"exact_dedup": {}}, where="test")]
    run(store, *stages)
    view = RunReader(store).decisions(["answer_length", "exact_dedup"]).collect()
    assert view.columns == ["stage", "source", "row", "id", "keep", "reason", "reason_ref"]
    counts = dict(view.group_by("stage").len().iter_rows())
    assert counts["answer_length"] == 151 + 175
    assert counts["exact_dedup"] == pl.read_parquet(store.stage("exact_dedup").decisions).height
    assert set(view.get_column("reason").drop_nulls()) <= {"too_short", "duplicate_of"}
    assert view.filter(pl.col("reason") == "too_short").get_column("reason_ref").null_count() == view.filter(
        pl.col("reason") == "too_short").height


def test_a_later_stage_sees_only_what_earlier_stages_kept(store):
    length = AnswerLength(LengthConfig(min_chars=200))
    dedup = build_stages({"exact_dedup": {}}, where="test")[0]
    results = run(store, length, dedup)
    assert results[1].stats["rows"] == results[0].stats["kept"]


def test_recipe_stage_options_are_strict():
    with pytest.raises(ConfigError, match="unknown stage `exact_dedupe`; did you mean `exact_dedup`"):
        build_stages({"exact_dedupe": {}}, where="mix.yaml")
    with pytest.raises(ConfigError, match="mix.yaml: stage `exact_dedup`: unknown key `threshold`"):
        build_stages({"exact_dedup": {"threshold": 0.8}}, where="mix.yaml")


def test_a_switched_off_stage_is_checked_but_not_built():
    recipe = {"exact_dedup": {}, "near_dedup": {"enabled": False, "minhash": {"threshold": 0.7}}}
    assert [s.name for s in build_stages(recipe, where="mix.yaml")] == ["exact_dedup"]
    assert switched_off(recipe) == ["near_dedup"]
    with pytest.raises(ConfigError, match="mix.yaml: stage `near_dedup`.*thresold"):
        build_stages({"near_dedup": {"enabled": False, "thresold": 0.7}}, where="mix.yaml")
    with pytest.raises(ConfigError, match="`enabled` must be true or false"):
        build_stages({"near_dedup": {"enabled": "no"}}, where="mix.yaml")


def test_a_shard_emptied_by_an_earlier_stage_does_not_break_the_next(tmp_path, catalog, data_root):
    """Every record of one source is a copy of another source's: exact dedup empties its
    shard, and the row stage after it still reads the scores of the other shards."""
    import json as _json

    from curate.catalog import Source

    rows = [{"question": f"Question {i}?", "answer": f"Answer number {i}."} for i in range(5)]
    for name in ("a", "b"):
        (tmp_path / f"{name}.jsonl").write_text("".join(_json.dumps(r) + "\n" for r in rows))
    sources = [Source.model_validate({
        "name": name, "version": "1", "license": "MIT", "domain": "general", "task": "qa",
        "location": {"path": str(tmp_path / f"{name}.jsonl"), "allow_outside_data_root": True},
        "mapping": {"kind": "chat", "question": "question", "answer": "answer"}}) for name in ("a", "b")]
    store = RunStore(tmp_path / "run")
    from curate.ingest import ingest

    ingest(sources, store, data_root=data_root)
    stages = build_stages({"exact_dedup": {}, "clean": {}}, where="test")
    results = run_stages(stages, store, ["b", "a"], input_fingerprint="x")  # the empty shard first
    assert results[0].stats["kept"] == 5 and results[1].stats["rows"] == 5
