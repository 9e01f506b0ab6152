"""What a release tells about its own making: score histograms that split kept from removed
rows and mark thresholds, no rank columns, and the category that bound the budget named in
`release show`, the card and the report."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from conftest import write_chat_source, write_yaml

from curate.cli import main
from curate.pipeline.build import build_mix
from curate.pipeline.run import open_run
from curate.read.releases import Release

RECIPE = """
name: analysed
version: "1"
sources: [medquad_contaminated_demo, dolly, echo]
benchmarks: [mmlu_medical, medmcqa, pubmedqa]
stages:
  exact_dedup: {}
  near_dedup: {minhash: {threshold: 0.7}}
  decontam: {reject_source_above: 1.0}
mix:
  targets: {medical: 0.5, general: 0.5}
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("analysed")
    words = ("the river carries cold water from the high mountains down to the wide green valley every "
             "spring where farmers open small gates so that the fields of barley and beans drink slowly "
             "while children count fish under the old stone bridge near the mill and the church")
    rows = [{"q": "Describe the valley in spring.", "a": f"{words} {tail}."}
            for tail in ("today", "tonight", "at dawn", "in May", "each year")]
    rows += [{"q": f"What is general question {i} about?", "a": f"It is about topic {i}."} for i in range(8)]
    rows += rows[:3]  # exact copies
    catalog = write_chat_source(tmp, "echo", rows)
    run = open_run(write_yaml(tmp / "analysed.yaml", RECIPE), catalog_dirs=[catalog], runs_dir=tmp / "runs")
    return build_mix(run, releases_dir=tmp / "releases").release.path


def figures(report: str) -> dict[str, str]:
    """Each histogram's column (``stage.column``) -> its caption."""
    return dict(re.findall(r"<figcaption><code>([\w.]+)</code> \(([^)]*)\)</figcaption>", report))


def test_histograms_split_kept_from_removed_mark_thresholds_and_leave_out_ranks(built):
    report = (built / "report.html").read_text()
    charts = figures(report)
    assert "exact_dedup.dup_rank" not in charts and not any(c.endswith("_rank") for c in charts)
    assert "exact_dedup.dup_copies" in charts
    assert charts["near_dedup.near_dup_jaccard"].endswith("; threshold 0.7")
    containment = charts["decontam.containment_score"]
    assert re.fullmatch(r"[\d,]+ kept, [1-9]\d* removed; threshold 0\.6", containment)
    assert "removed</title></rect>" in report and 'stroke-dasharray="4 3"' in report
    decontam = next(s for s in Release(built).stages if s.stage.startswith("decontam"))
    kept, removed = (int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", containment)[:2])
    assert kept <= decontam.kept and removed == decontam.dropped


def test_release_show_the_card_and_the_report_name_the_binding_category(built):
    manifest = Release(built).manifest
    bound = manifest["budget"]["bound_by"]
    assert bound["kind"] == "category" and bound["name"] in {"medical", "general"}
    binding = next(c for c in manifest["composition"] if c["category"] == bound["name"])
    other = next(c for c in manifest["composition"] if c["category"] != bound["name"])
    assert binding["rows"] == binding["kept_rows"]  # every kept row of the binding category is in
    assert other["rows"] < other["kept_rows"]  # the other's surplus is what the mix did not select
    sentence = f"the category `{bound['name']}` binds it"
    assert sentence in (built / "README.md").read_text()
    assert f"the category <code>{bound['name']}</code> binds it" in (built / "report.html").read_text()
    shown = CliRunner().invoke(main, ["release", "show", str(built)], env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    assert sentence in " ".join(shown.output.split()) and "of rows kept" in shown.output
