"""Progress: stages report the parts of their work through their context (the engine prefixes
the stage's name), one-file commands report ingestion against a total taken from the file,
and the command line draws every bar on stderr, never on stdout."""

from __future__ import annotations

import json
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ingest_into

from curate.curation import diversity
from curate.curation.config import NearDedupConfig
from curate.curation.diversity import select_diverse
from curate.curation.embed import embed
from curate.curation.near_dedup import NearDedup
from curate.engine.runner import run_stages
from curate.engine.stage import StageContext
from curate.ingest.files import SAMPLE_BYTES, estimate_rows
from curate.pipeline.adhoc import run_on_file
from curate.progress import Tick
from curate.store import RunStore


class Recorder:
    """Collects progress ticks as (name, done, total)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int | None]] = []

    def __call__(self, tick: Tick) -> None:
        self.calls.append((tick.name, tick.done, tick.total))

    def of(self, name: str) -> list[tuple[int, int]]:
        return [(d, t) for n, d, t in self.calls if n == name]


@pytest.mark.slow  # the MinHash kernel compiles on first use
def test_a_dataset_stage_reports_its_parts_through_its_context(catalog, data_root, tmp_path):
    ingest_into(catalog.source("dolly"), tmp_path / "run", data_root)
    progress = Recorder()
    near = NearDedup(NearDedupConfig())
    run_stages([near], RunStore(tmp_path / "run"), ["dolly"], input_fingerprint="in",
               progress=progress)
    bands = near.config.minhash.banding[0]
    assert progress.of("near_dedup") == [(0, 1), (1, 1)]  # the bar shows from the start
    assert progress.of("near_dedup: MinHash signatures")[-1] == (151, 151)
    assert progress.of("near_dedup: LSH bands") == [(b, bands) for b in range(1, bands + 1)]


@pytest.mark.slow  # loads MiniLM
def test_embedding_and_diversity_selection_report_as_they_go():
    calls = []
    embed(["a question", "an answer", "a question"], "minilm", progress=lambda d, t: calls.append((d, t)))
    assert calls == [(0, 2), (2, 2)]  # distinct texts; one model call for both
    vectors = np.random.default_rng(0).normal(size=(2500, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    blocks = []
    select_diverse(vectors, 0.9, progress=lambda d, t: blocks.append((d, t)))
    assert blocks[-1] == (2500, 2500) and len(blocks) == -(-2500 // diversity._BLOCK)


def test_without_a_watcher_a_context_reports_nothing():
    context = StageContext()
    context.report("anything", 1, 2)  # no error, nothing to call
    assert context.reporter("anything") is None


def test_one_file_commands_report_ingestion_and_stages(data_root, tmp_path):
    steps = Recorder()
    run_on_file(data_root / "general/dolly/dolly_151.jsonl", tmp_path / "out.parquet",
                {"exact_dedup": {}}, source="dolly", progress=steps)
    ingested = [(name, done) for name, done, _ in steps.calls if name.startswith("ingest")]
    assert ingested[-1] == ("ingest: dolly", 151) and {n for n, _ in ingested} == {"ingest: dolly"}
    assert steps.of("exact_dedup")[0] == (0, 1) and steps.of("exact_dedup")[-1] == (1, 1)


def test_row_totals_come_from_parquet_metadata_or_the_file_size(tmp_path):
    table = pa.table({"x": list(range(1234))})
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=100)
    assert estimate_rows(tmp_path / "a.parquet") == 1234
    small = tmp_path / "small.jsonl"
    small.write_text("".join(json.dumps({"q": i}) + "\n" for i in range(57)))
    assert estimate_rows(small) == 57
    (tmp_path / "t.csv").write_text("q,a\n1,2\n3,4\n5,6")  # no newline at the end
    assert estimate_rows(tmp_path / "t.csv") == 3
    big = tmp_path / "big.jsonl"
    lines = [json.dumps({"q": "x" * (i % 50), "i": i}) + "\n" for i in range(60_000)]
    big.write_text("".join(lines))
    assert big.stat().st_size > SAMPLE_BYTES
    assert abs(estimate_rows(big) - 60_000) < 60_000 * 0.02
    (tmp_path / "a.json").write_text("[]")
    assert estimate_rows(tmp_path / "a.json") is None


def test_the_command_lines_bars_go_to_stderr(capsys, monkeypatch):
    from curate.cli.console import progress_bars, rich_bars

    monkeypatch.setenv("FORCE_COLOR", "1")  # rich draws as on a terminal
    monkeypatch.setenv("COLUMNS", "120")
    with rich_bars({}, rows=151) as tick:
        tick(Tick("ingest", "dolly", 100))
        tick(Tick("ingest", "estimated", 120))  # more rows than the estimate: the total follows
        tick(Tick("ingest", "estimated", 160))
        tick(Tick("near_dedup", None, 0, 1))
        tick(Tick("near_dedup", "LSH bands", 3, 16))
        time.sleep(0.3)  # the bars refresh ten times a second
    out, err = capsys.readouterr()
    assert out == ""
    assert "ingest dolly" in err and "100/151" in err and "LSH bands" in err and "3/16" in err
    assert "160/160" in err and "160/151" not in err
    with progress_bars() as progress:  # stderr is not a terminal here: no bars
        assert progress is None


def test_build_mix_bars_get_row_totals_from_the_catalog_files(catalog, data_root, tmp_path):
    from curate.pipeline.run import open_run, row_totals

    totals = row_totals(open_run("demo", runs_dir=tmp_path, data_root=data_root))
    assert {k: totals[k] for k in ("dolly", "self_instruct", "medquad_contaminated_demo")} == {
        "dolly": 151, "self_instruct": 175, "medquad_contaminated_demo": 126}  # exact: under 1 MiB
    assert abs(totals["medquad_sample"] - 1500) < 1500 * 0.05  # 1.6 MB: estimated from four blocks


def test_bars_show_an_eta_and_a_finished_sources_clock_stops(monkeypatch, catalog, data_root, tmp_path):
    import rich.progress

    from curate.cli.console import rich_bars

    made: list[rich.progress.Progress] = []

    class Recording(rich.progress.Progress):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(rich.progress, "Progress", Recording)
    # ingestion says when a source is read: its last tick carries the total
    ticks = Recorder()
    ingest_into(catalog.source("dolly"), tmp_path / "run", data_root, batch_rows=50, progress=ticks)
    assert ticks.of("ingest: dolly") == [(50, None), (100, None), (150, None), (151, None), (151, 151)]
    with rich_bars({"dolly": 200}) as tick:  # an estimate above the rows the file has
        for name, done, total in ticks.calls:
            tick(Tick("ingest", name.split(": ")[1], done, total))
        bars = made[0]
        (task,) = bars.tasks
        # finished: TimeElapsedColumn shows the time it finished at, not a running clock
        assert task.finished and (task.completed, task.total) == (151, 151)
        assert task.finished_time is not None
    assert any(isinstance(c, rich.progress.TimeRemainingColumn) for c in bars.columns)
