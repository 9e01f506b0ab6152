"""One stage (or a few) on one file, for a user who just wants an answer.

``run_on_file`` ingests INPUT (a JSON Lines, JSON, CSV or parquet file with a
``messages`` column, or any file a catalog entry's mapping reads), runs the stages in a
temporary run folder with the same machinery as ``build-mix``, and writes OUT: every
input row with its ``row`` (0-based position in INPUT), ``id``, ``keep``, ``reason`` (the
code), ``reason_ref`` (its parameter: a benchmark, a record id) and the stages' score
columns. Rows that could not become records are there too, with their quarantine reason.
Stage reports (the contamination report) go beside OUT.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from curate.catalog import Catalog, resolve_data_root
from curate.curation import build_stages
from curate.engine.local import Progress, run_stages
from curate.engine.stage import StageContext, split_reasons
from curate.errors import ConfigError
from curate.ingest import ingest
from curate.ingest.files import ingest_file
from curate.ingest.runner import Progress as IngestProgress
from curate.store import RunStore, write_parquet


@dataclass
class FileResult:
    """What a one-file command wrote: OUT, its rows, how many were kept, removals by reason."""
    out: Path
    rows: int
    kept: int
    reasons: dict[str, int]
    reports: dict[str, Path] = field(default_factory=dict)


def run_on_file(
    input_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    stages: dict[str, dict[str, Any]],
    *,
    source: str | None = None,
    benchmarks: Sequence[str] = (),
    catalog_dirs: Iterable[str | os.PathLike[str]] = (),
    data_root: str | os.PathLike[str] | None = None,
    ingest_progress: IngestProgress | None = None,
    stage_progress: Progress | None = None,
) -> FileResult:
    """Run ``stages`` (name -> options, in order) over the file and write ``out``;
    ``ingest_progress`` and ``stage_progress`` as ``build_mix`` takes them."""
    catalog = Catalog.load(catalog_dirs)
    root = resolve_data_root(data_root)
    built = build_stages(stages, where="options")
    bench = [catalog.benchmark(name) for name in benchmarks]
    with tempfile.TemporaryDirectory(prefix="curate-") as tmp:
        store = RunStore(Path(tmp))
        entry = ingest_file(Path(input_path), store, source=source, catalog=catalog, data_root=root,
                            progress=ingest_progress)
        ingested = ingest([], store, data_root=root, benchmarks=bench)
        if ingested.failed:
            raise ConfigError("; ".join(f"{r.name}: {r.error}" for r in ingested.failed))
        context = StageContext(benchmarks={b.name: store.benchmark(b.name).files("records")
                                           for b in bench})
        run_stages(built, store, [entry.name], input_fingerprint="adhoc", context=context,
                   progress=stage_progress)
        table = _every_row(store, entry.name, [s.name for s in built])
        return _write(table, Path(out), store, [s.name for s in built])


def _every_row(store: RunStore, source: str, stage_names: list[str]) -> pl.DataFrame:
    folder = store.source(source)
    records = pl.read_parquet(folder.files("records")).select("row", "id")
    quarantine = split_reasons(pl.read_parquet(folder.files("quarantine")).select(
        "row", keep=pl.lit(False), reason=pl.col("reason")))
    table = records.with_columns(keep=pl.lit(True), reason=pl.lit(None, pl.String),
                                 reason_ref=pl.lit(None, pl.String))
    for name in stage_names:
        decisions = pl.read_parquet(store.stage(name).decisions).drop("stage", "source", "id")
        mine = {c: f"_{c}_{name}" for c in ("keep", "reason", "reason_ref")}
        decisions = decisions.rename(mine)
        first = pl.col("reason").is_null()  # the first stage that removed a row names it
        table = table.join(decisions, on="row", how="left").with_columns(
            reason=pl.when(first).then(pl.col(mine["reason"])).otherwise("reason"),
            reason_ref=pl.when(first).then(pl.col(mine["reason_ref"])).otherwise("reason_ref"),
            keep=pl.col("keep") & pl.col(mine["keep"]).fill_null(True),
        ).drop(*mine.values())
    return pl.concat([table, quarantine], how="diagonal_relaxed").sort("row")


def _write(table: pl.DataFrame, out: Path, store: RunStore, stage_names: list[str]) -> FileResult:
    if out.suffix == ".parquet":
        data_path, beside = out, lambda name: out.with_name(f"{out.stem}.{name}.parquet")
    else:
        data_path, beside = out / "decisions.parquet", lambda name: out / f"{name}.parquet"
    write_parquet(table.to_arrow(), data_path)
    reports = {}
    for name in stage_names:
        for report in store.stage(name).reports():
            target = beside(report.stem)
            write_parquet(pl.read_parquet(report).to_arrow(), target)
            reports[report.stem] = target
    reasons = table.get_column("reason").drop_nulls()
    return FileResult(
        out=data_path, rows=table.height, kept=int(table.get_column("keep").sum()),
        reasons=dict(sorted(reasons.value_counts().iter_rows())), reports=reports,
    )
