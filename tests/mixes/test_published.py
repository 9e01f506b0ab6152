"""What a release publishes: never a benchmark item, never a path of the machine that built it."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import write_chat_source, write_yaml

from curate.catalog import shipped_catalog_dir
from curate.mixes.card import escape
from curate.pipeline.build import build_mix
from curate.pipeline.run import open_run

MIN_WORDS = 5
"""Item texts shorter than this (``Skeletal muscles``, ``Autosomal dominant``) are everyday
medical phrases that clean rows hold too; longer ones name one item."""

RECIPE = """
name: leaky
version: "1"
sources: [medquad_contaminated_demo, dolly, outside]
benchmarks: [mmlu_medical, medmcqa, pubmedqa]
stages:
  exact_dedup: {}
  decontam: {reject_source_above: 1.0}
mix:
  targets: {medical: 0.5, general: 0.5}
"""


def strings(array: pa.Array | pa.ChunkedArray) -> list[str]:
    """Every string a column holds, nested lists and structs included (binary skipped)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return [s for s in array.to_pylist() if s]
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return strings(array.flatten())
    if pa.types.is_struct(kind):
        return [s for i in range(kind.num_fields) for s in strings(array.field(i))]
    return []


def decoded(path: Path) -> str:
    """A release file as text: a parquet file's strings, any other file's bytes (HTML
    entities undone, so an escaped quote still counts)."""
    import html

    if path.suffix == ".parquet":
        table = pq.read_table(path)
        return "\n".join(s for column in table.columns for s in strings(column))
    return html.unescape(path.read_bytes().decode("utf-8", "replace"))


def item_texts(run: Path) -> list[tuple[str, str]]:
    """(item id, text) for every benchmark item's question lines (a PubMedQA item's context
    lines too) and its gold answer, when they have ``MIN_WORDS`` words or more."""
    items = pl.concat([pl.read_parquet(p) for p in sorted(run.glob("benchmarks/*/records-*.parquet"))])
    mcqa = items.select("source", "row", question=pl.col("mcqa").struct.field("question"),
                        answer=pl.col("mcqa").struct.field("options").list.get(
                            pl.col("mcqa").struct.field("answer").cast(pl.Int64), null_on_oob=True))
    texts = []
    for source, row, question, answer in mcqa.iter_rows():
        for text in [*(question or "").split("\n"), answer or ""]:
            if len(text.split()) >= MIN_WORDS:
                texts.append((f"{source}:{row}", text.strip()))
    return texts


def leaks(release: Path, run: Path) -> dict[str, list[str]]:
    """File -> the benchmark items whose text it holds."""
    texts = item_texts(run)
    found = {}
    for path in sorted(p for p in release.rglob("*") if p.is_file()):
        body = decoded(path)
        hits = sorted({item for item, text in texts if text in body})
        if hits:
            found[path.relative_to(release).as_posix()] = hits
    return found


@pytest.fixture(scope="module")
def leaky(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("leaky")
    catalog = write_chat_source(tmp, "outside", [
        {"q": f"What is general question {i} about?", "a": f"It is about topic {i}."} for i in range(40)])
    recipe = write_yaml(tmp / "leaky.yaml", RECIPE)
    run = open_run(recipe, catalog_dirs=[catalog], runs_dir=tmp / "runs")
    return tmp, run, build_mix(run, releases_dir=tmp / "releases", local_report=True)


def test_the_checker_finds_planted_items_in_the_run(leaky):
    # the check is real: the contaminated rows of the run hold the items it looks for
    _, run, _ = leaky
    ingested = run.store.source("medquad_contaminated_demo").files("records")
    body = "\n".join(s for f in ingested for c in pq.read_table(f).columns for s in strings(c))
    texts = item_texts(run.store.root)
    assert {item for item, text in texts if text in body} >= {"mmlu_medical:60", "medmcqa:231"}


def test_no_file_of_a_release_holds_a_benchmark_items_text(leaky):
    _, run, built = leaky
    assert leaks(built.release.path, run.store.root) == {}
    report = (built.release.path / "report.html").read_text()
    card = (built.release.path / "README.md").read_text()
    contaminated = built.release.manifest["contamination"]
    items = sorted(i for c in contaminated for i in c["items"])
    assert items == ["medmcqa:231", "medmcqa:719", "mmlu_medical:187", "mmlu_medical:60",
                     "pubmedqa:172", "pubmedqa:55"]
    for item in items:  # named by id in the report and the card
        assert f"<td>{item}</td>" in report and escape(item) in card
    assert "(text not shown: it holds a benchmark item)" in report


def test_the_local_report_quotes_items_and_stays_in_the_run_folder(leaky, tmp_path):
    tmp, run, built = leaky
    local = run.store.local_report
    assert local == run.store.root / "report.local.html"
    texts = dict(item_texts(run.store.root))
    page = local.read_text()
    import html

    assert "Local report" in page and texts["mmlu_medical:60"] in html.unescape(page)
    # the option changes nothing in the release: built again without it, byte for byte the same
    rerun = open_run(tmp / "leaky.yaml", catalog_dirs=[tmp / "catalog"], runs_dir=tmp_path / "runs")
    again = build_mix(rerun, releases_dir=tmp_path / "releases")
    assert again.release.manifest == built.release.manifest
    assert not (tmp_path / "runs/leaky/1/report.local.html").exists()


def test_the_manifest_holds_paths_relative_to_the_data_root_or_the_catalog(leaky):
    tmp, run, built = leaky
    text = (built.release.path / "manifest.json").read_text()
    for machine in (str(run.data_root), str(shipped_catalog_dir()), str(tmp)):
        assert machine not in text
    inputs = built.release.manifest["inputs"]
    planted = inputs["medquad_contaminated_demo"]["files"][0]["path"]
    assert planted == "catalog:data/medquad_contaminated_demo.jsonl"
    assert inputs["dolly"]["files"][0]["path"] == "general/dolly/dolly_151.jsonl"
    assert {k: v for k, v in inputs["outside"]["files"][0].items() if k != "sha256"} == {
        "path": "outside.jsonl", "outside_data_root": True}
    assert built.release.manifest["benchmarks"]["mmlu_medical"]["files"][0]["path"].startswith("benchmarks/")


@pytest.mark.slow
def test_the_demo_release_publishes_no_benchmark_item(demo_build):
    assert leaks(demo_build.release, demo_build.run) == {}
    report = (demo_build.release / "report.html").read_text()
    assert "<td>mmlu_medical:60</td>" in report
    assert "Which of the following is an accessory organ" not in report
