"""A record's fate in one query: ``run.fate()``, the DuckDB views ``fate`` and
``contamination_pairs``, benchmark items as structured values, quality scores kept vs removed."""

from __future__ import annotations

import json

import polars as pl
import pytest
from conftest import write_chat_source, write_yaml
from tiny_lm import build_tiny_lm

import curate
from curate.errors import ConfigError
from curate.pipeline.build import build_mix
from curate.pipeline.run import open_run
from curate.read.releases import Release
from curate.read.runs import FATE_SCHEMA, ITEM_REF, PAIRS_SCHEMA

RECIPE = """
name: fates
version: "1"
sources: [medquad_contaminated_demo, dolly, odd]
benchmarks: [mmlu_medical, medmcqa, pubmedqa]
stages:
  exact_dedup: {{}}
  decontam: {{reject_source_above: 1.0}}
  quality: {{complexity_model: "{lm}", quality_model: "{lm}", device: cpu, max_length: 64, batch_size: 32,
             drop_fraction: 0.2}}
mix:
  targets: {{medical: 0.5, general: 0.5}}
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fates")
    lines = [json.dumps({"q": f"What does general question {i} ask?", "a": f"It asks about topic {i}."})
             for i in range(30)]
    lines += [lines[0], lines[1], "{not json", json.dumps({"q": "no answer here"})]
    catalog = write_chat_source(tmp, "odd", lines)
    recipe = write_yaml(tmp / "fates.yaml", RECIPE.format(lm=build_tiny_lm(tmp / "lm")))
    run = open_run(recipe, catalog_dirs=[catalog], runs_dir=tmp / "runs")
    return run, build_mix(run, releases_dir=tmp / "releases")


def test_fate_gives_every_ingested_row_once_and_agrees_with_the_releases_audit_trail(built):
    run, result = built
    fate = run.fate()  # the release the run last wrote
    assert fate.schema == pl.Schema(FATE_SCHEMA)
    ingested = run.records().select(pl.len()).collect().item()
    quarantined = run.quarantined(run.store.ingested_sources()).select(pl.len()).collect().item()
    assert fate.height == ingested + quarantined == fate.unique(["source", "row"]).height
    # every row the release left out, with the same stage and reason as its removed.parquet
    trail = result.release.path / "removed.parquet"
    removed = pl.read_parquet(trail).select("source", "row", "stage", "reason", "reason_ref")
    out = fate.filter(~pl.col("in_release")).select(removed.columns)
    assert out.sort("source", "row").equals(removed.sort("source", "row"), null_equal=True)
    stages = dict(fate.group_by("stage").len().iter_rows())
    assert stages.keys() == {None, "ingest", "exact_dedup", "decontam", "quality", "mix"}
    assert stages["mix"] > 0
    assert fate.filter(pl.col("stage") == "mix").get_column("reason").unique().to_list() == ["not_selected"]
    assert fate.filter(pl.col("stage").is_null()).get_column("in_release").all()
    # the release holds exactly the rows fate says are in it
    in_release = fate.filter(pl.col("in_release")).get_column("id").unique().sort()
    assert in_release.equals(Release(result.release.path).ids().get_column("id").sort(), check_names=False)


def test_fate_resolves_a_duplicates_twin_and_a_contaminated_rows_item(built):
    run, _ = built
    fate = run.fate()
    twins = fate.filter(pl.col("source") == "odd", pl.col("reason") == "duplicate_of")
    assert twins.get_column("row").to_list() == [30, 31]
    kept = fate.filter(pl.col("source") == "odd", pl.col("row").is_in([0, 1])).get_column("id").to_list()
    assert twins.get_column("twin_id").to_list() == kept
    bad = fate.filter(pl.col("stage") == "ingest").select("source", "row", "in_release").rows()
    assert bad == [("odd", 32, False), ("odd", 33, False)]
    hits = fate.filter(pl.col("reason") == "contaminated").sort("row")
    assert hits.height == 6
    first = hits.row(0, named=True)
    assert first["item"] == {"benchmark": first["reason_ref"], "row": first["item"]["row"]}
    items = sorted(f"{i['benchmark']}:{i['row']}" for i in hits.get_column("item").to_list())
    assert items == ["medmcqa:231", "medmcqa:719", "mmlu_medical:187", "mmlu_medical:60", "pubmedqa:172",
                     "pubmedqa:55"]
    mmlu = hits.filter(pl.col("item").struct.field("row") == 60).item(0, "item_text")
    assert "accessory organ" in mmlu  # locally, the item's text is one column away
    others = fate.filter(pl.col("reason").fill_null("") != "contaminated")
    assert others.get_column("item").null_count() == others.height


def test_fate_without_a_release_leaves_in_release_unknown(built):
    run, _ = built
    record = run.store.root / "release.json"
    saved = record.read_text()
    record.unlink()
    try:
        fate = run.fate()
    finally:
        record.write_text(saved)
    assert fate.get_column("in_release").null_count() == fate.height
    assert "mix" not in fate.get_column("stage").to_list()


def test_duckdb_answers_which_items_contaminated_which_rows_in_one_line(built):
    run, _ = built
    con = run.duckdb()
    pairs = con.sql("SELECT source, row, item.benchmark AS benchmark, item.row AS item_row, item_text "
                    "FROM contamination_pairs ORDER BY source, row").pl()
    assert pairs.height == 6 and pairs.get_column("item_text").str.len_chars().min() > 20
    polars_pairs = run.contamination_pairs()
    assert polars_pairs.schema == pl.Schema(PAIRS_SCHEMA)
    item_rows = polars_pairs.get_column("item").struct.field("row")
    assert pairs.get_column("item_row").equals(item_rows, check_names=False)
    # the fate view is run.fate(), and contam_item is a struct in SQL as in Polars
    by_sql = con.sql("SELECT stage, reason, count(*) AS n FROM fate GROUP BY ALL").pl()
    by_polars = run.fate().group_by("stage", "reason").agg(n=pl.len())
    assert by_sql.sort("stage", "reason").equals(by_polars.sort("stage", "reason"), null_equal=True)
    sql_items = con.sql("SELECT contam_item.benchmark, contam_item.row FROM scores_decontam "
                        "WHERE contam_item IS NOT NULL ORDER BY source, row").fetchall()
    scores = run.scores("decontam").filter(pl.col("contam_item").is_not_null()).sort("source", "row")
    scores = scores.collect()
    assert scores.schema["contam_item"] == ITEM_REF
    assert sql_items == [(i["benchmark"], i["row"]) for i in scores.get_column("contam_item").to_list()]


def test_quality_scores_answer_kept_versus_removed_when_the_stage_ran(built):
    run, _ = built
    con = run.duckdb()
    rows = con.sql("SELECT keep, count(*), avg(deita_score) FROM scores_quality GROUP BY keep ORDER BY keep")
    rows = rows.fetchall()
    (removed, n_removed, low), (kept, n_kept, high) = rows
    assert (removed, kept) == (False, True) and n_removed > 0 and n_kept > 0 and low < high


def test_scores_of_a_stage_that_did_not_run_say_why(built, tmp_path):
    run, _ = built
    with pytest.raises(ConfigError, match=r"stage `diversity` has no decisions .*recipe has no such stage"):
        run.scores("diversity")
    info = json.loads((run.store.root / "run.json").read_text())
    info["recipe"]["stages"]["quality"] = {"enabled": False}
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps(info))
    with pytest.raises(ConfigError, match=r"no decisions .*switches it off \(`enabled: false`\)"):
        curate.open_run(folder).scores("quality")


def test_latest_pair_gives_the_two_newest_versions_or_says_how_to_make_a_second(tmp_path):
    from curate.read.releases import latest_pair

    def release(name: str, version: str) -> None:
        folder = tmp_path / name / version
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text(json.dumps({
            "name": name, "version": version, "composition": [],
            "budget": {"unit": "rows", "amount": 0, "counting": "rows"}, "modality": {}}))

    release("demo", "0.9.0")
    with pytest.raises(ConfigError, match=r"two releases of `demo` .*found: 0.9.0.*build another version"):
        latest_pair(tmp_path)
    for version in ("0.10.0", "0.2.0"):
        release("demo", version)
    release("other", "1")
    assert latest_pair(tmp_path) == (tmp_path / "demo/0.9.0", tmp_path / "demo/0.10.0")  # 10 after 9
    with pytest.raises(ConfigError, match="found: 1"):
        latest_pair(tmp_path, "other")


def test_a_producers_source_has_no_quarantine_and_fate_still_reads_it(tmp_path):
    # synth_cot's folder holds records and rejected parents, no quarantine files (the demo)
    from curate.read.runs import RunReader
    from curate.records import empty_records
    from curate.store import RunStore

    store = RunStore(tmp_path / "run")
    folder = store.source("synth_cot")
    folder.open("fp")
    folder.write_shard("00000", {"records": empty_records(), "rejected": empty_records()}, {"rows": 0})
    folder.mark_complete()
    reader = RunReader(store)
    assert reader.quarantined(["synth_cot"]).collect().height == 0
    assert reader.fate().height == 0
