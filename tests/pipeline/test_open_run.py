"""The run store made for queries: one stable-schema view over every stage's decisions."""

from __future__ import annotations

import json

import polars as pl
import pytest

import curate
from curate.errors import ConfigError

SCHEMA = {"stage": pl.String, "source": pl.String, "row": pl.Int64, "id": pl.String, "keep": pl.Boolean,
          "reason": pl.String, "reason_ref": pl.String}


@pytest.mark.slow
def test_the_demo_run_answers_group_by_reason_with_codes_and_duckdb_agrees(demo_build):
    run = curate.open_run(demo_build.run)
    decisions = run.decisions()
    assert decisions.collect_schema() == pl.Schema(SCHEMA)
    frame = decisions.collect()
    stats = {name: json.loads((demo_build.run / name / "stats.json").read_text())
             for name in run.stage_names()}
    assert run.stage_names() == ["clean", "image", "answers", "exact_dedup", "near_dedup", "decontam",
                                 "diversity"]
    for name, stage in stats.items():  # each stage's rows, and its counts by reason code, as in its stats
        mine = frame.filter(pl.col("stage") == name)
        assert mine.height == stage["rows"]
        assert dict(mine.drop_nulls("reason").group_by("reason").len().iter_rows()) == stage["reasons"]
    removed = frame.filter(~pl.col("keep"))
    assert removed.get_column("reason").n_unique() < 20  # codes, not 600 id-bearing strings
    refs = dict(removed.filter(pl.col("stage") == "decontam").group_by("reason", "reason_ref").len()
                .select(pl.concat_str("reason", "reason_ref", separator=":"), "len").iter_rows())
    assert sum(n for key, n in refs.items() if key.startswith("contaminated:")) == 6
    assert refs.keys() >= {"source_rejected:contamination"}
    ids = set(frame.get_column("id"))
    dups = removed.filter(pl.col("reason").is_in(["duplicate_of", "near_duplicate_of", "too_similar_to"]))
    assert dups.height > 300 and set(dups.get_column("reason_ref")) <= ids  # the ref is a record id

    con = run.duckdb()
    by_sql = con.sql("SELECT stage, reason, count(*) AS n FROM decisions WHERE NOT keep GROUP BY ALL").pl()
    by_polars = removed.group_by("stage", "reason").agg(n=pl.len())
    assert by_sql.sort("stage", "reason").equals(by_polars.sort("stage", "reason"), null_equal=True)
    records = run.records().select(pl.len()).collect().item()
    assert con.execute("SELECT count(*) FROM records").fetchone() == (records,)
    hits = "SELECT count(*) FROM scores_decontam WHERE contam_tier IS NOT NULL"
    assert con.execute(hits).fetchone() == (6,)
    assert con.execute("SELECT sum(contaminated) FROM contamination").fetchone() == (6,)


def _old_run(tmp_path):
    run = tmp_path / "runs/r/1"
    (run / "exact_dedup").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({
        "recipe": {"name": "r", "version": "1", "sources": ["dolly"], "stages": {"exact_dedup": {}}},
        "recipe_file": str(tmp_path / "gone.yaml"), "data_root": str(tmp_path), "stages": ["exact_dedup"]}))
    old = pl.DataFrame({"source": ["dolly", "dolly"], "row": [0, 1], "id": ["a" * 32, "a" * 32],
                        "keep": [True, False], "reason": [None, "duplicate_of:" + "a" * 32]})
    old.write_parquet(run / "exact_dedup/decisions.parquet")
    (run / "exact_dedup/stats.json").write_text("{}")
    return run


def test_decisions_of_an_older_curate_fail_naming_the_file_and_the_re_run(tmp_path):
    run = curate.open_run(_old_run(tmp_path))
    assert run.recipe.name == "r" and run.recipe_file is None and run.stage_names() == ["exact_dedup"]
    with pytest.raises(ConfigError, match=r"exact_dedup/decisions.parquet was written by an older curate.*"
                                          r"`curate build-mix RECIPE"):
        run.decisions()
    with pytest.raises(ConfigError, match="older curate"):
        run.duckdb()


def test_a_folder_that_is_not_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"is a folder but not a run folder \(no run.json\)"):
        curate.open_run(tmp_path)
    with pytest.raises(ConfigError, match=r"stage `quality` has no decisions"):
        curate.open_run(_old_run(tmp_path)).scores("quality")
