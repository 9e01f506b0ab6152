"""The release report: a self-contained page, opened in headless Chromium, that escapes data."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import write_chat_source, write_yaml

from curate.mixes.report import REPORT
from curate.pipeline.build import build_mix
from curate.pipeline.run import open_run

HOSTILE = "<script>document.title='owned';console.error('xss')</script><img src=x onerror=alert(1)>"
RECIPE = """
name: hostile-mix
version: "1"
sources: [hostile]
benchmarks: [mmlu_medical]
stages:
  exact_dedup: {}
  decontam: {reject_source_above: 1.0}
mix:
  targets: {general: 1.0}
"""
CHROMIUM = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking"]


@pytest.fixture(scope="module")
def hostile_release(tmp_path_factory) -> Path:
    """A small release whose removed rows hold markup: a record copied twice (exact_dedup
    removes the copy), its question `<script>...`."""
    tmp = tmp_path_factory.mktemp("report")
    rows = [{"q": f"{HOSTILE} question {i}?", "a": f"An answer with </pre><b>bold</b> {i}."}
            for i in range(3)]
    rows += rows[:1]
    catalog = write_chat_source(tmp, "hostile", rows)
    recipe = write_yaml(tmp / "recipe.yaml", RECIPE)
    run = open_run(recipe, catalog_dirs=[catalog], runs_dir=tmp / "runs")
    return build_mix(run, releases_dir=tmp / "releases").release.path


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("Debian's `chromium` is not installed: `make test` installs it "
                    "(apt-get install chromium)")
    return subprocess.run([binary, *CHROMIUM, "--enable-logging=stderr", "--v=1", *args],
                          capture_output=True, text=True, timeout=120, check=True)


def console_messages(stderr: str) -> list[str]:
    """The page's console messages (errors, CSP refusals) as Chromium logs them."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.slow
def test_the_console_check_sees_a_script_error(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><p>x</p><script>console.error('boom'); missing()</script>")
    messages = console_messages(chromium("--dump-dom", page.as_uri()).stderr)
    assert any("boom" in m for m in messages) and any("missing is not defined" in m for m in messages)


@pytest.mark.slow
def test_the_report_renders_in_chromium_with_no_console_error_and_markup_as_text(hostile_release, tmp_path):
    page = hostile_release / REPORT
    manifest = json.loads((hostile_release / "manifest.json").read_text())
    assert REPORT in manifest["files"]  # hashed like every file of the release
    source = page.read_text()
    offline = source.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "http://" not in offline and "https://" not in offline
    assert "<script" not in source.lower() and "&lt;script&gt;document.title" in source

    dumped = chromium("--dump-dom", "--virtual-time-budget=2000", page.as_uri())
    assert console_messages(dumped.stderr) == []
    dom = dumped.stdout
    assert '<svg id="composition-chart"' in dom and '<svg id="contamination-heatmap"' in dom
    assert "<script" not in dom.lower() and "<img" not in dom.lower()  # no element made from data
    assert "&lt;script&gt;document.title='owned';console.error('xss')&lt;/script&gt;" in dom  # shown as text
    assert "<title>hostile-mix 1</title>" in dom  # the script never ran
    assert "exact_dedup: duplicate_of" in dom

    shot = tmp_path / "report.png"
    taken = chromium(f"--screenshot={shot}", "--window-size=1200,2400", "--hide-scrollbars", page.as_uri())
    assert console_messages(taken.stderr) == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


@pytest.mark.slow
def test_the_demo_report_shows_what_the_manifest_says(demo_build):
    manifest = json.loads((demo_build.release / "manifest.json").read_text())
    page = (demo_build.release / REPORT).read_text()
    for row in manifest["composition"]:
        cells = f"<td>{row['category']}</td><td class=n>{row['target']:.1%}</td>"
        assert cells + f"<td class=n>{row['realised']:.2%}" in page
    for benchmark in manifest["benchmarks"]:
        assert f">{benchmark}</text>" in page
    for stage in ("clean", "image", "answers", "exact_dedup", "near_dedup", "decontam", "diversity"):
        assert f"<h3>{stage}: " in page or stage in ("image",)
    rejected = next(c for c in manifest["contamination"] if c["source"] == "medquad_contaminated_demo")
    assert f"medquad_contaminated_demo x {rejected['benchmark']}: {rejected['contaminated']:,} rows" in page
    assert "decontam.embedding_score" in page and "diversity.diversity_max_sim" in page
    assert "offline template backend" in page
