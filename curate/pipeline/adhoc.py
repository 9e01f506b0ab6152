"""One stage (or a few) on one file, for a user who just wants an answer.

``run_on_file`` ingests INPUT (a JSON Lines, JSON, CSV or parquet file with a
``messages`` column, or any file a catalog entry's mapping reads), runs the stages in a
temporary run folder with the same machinery as ``build-mix``, and writes OUT: every
input row with its ``row`` (0-based position in INPUT), ``id``, ``keep``, ``reason`` (the
code), ``reason_ref`` (its parameter: a benchmark, a record id) and the stages' score
columns. Rows that could not become records are there too, with their quarantine reason.
Stage reports (the contamination report) go beside OUT.

KEPT and REMOVED (``kept=``, ``removed=``) are the rows themselves, in INPUT's own format
(see ``curate.pipeline.rows``): the kept rows with the stages' repaired text, and the
removed rows with their ``reason``, so one command's KEPT is the next one's INPUT.

The one-file commands judge rows (``source_rejection=False``): decontamination rejects
no whole source unless ``reject_source_above`` is given (a recipe's 0.5% rule applied to one file would remove
every row of it for three contaminated ones); ``FileResult.contamination`` says what
share was contaminated and what the rule would have done.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import Field, model_validator

from curate.catalog import Catalog, resolve_data_root
from curate.config import Config
from curate.curation import build_stages
from curate.curation.config import DecontamConfig
from curate.engine.runner import run_stages, text_rewrite
from curate.engine.stage import Stage, StageContext
from curate.errors import ConfigError
from curate.ingest.files import ingest_file
from curate.pipeline.rows import Repairs, Written, check_target, write_rows
from curate.progress import Progress
from curate.read.runs import RunReader, split_reasons
from curate.read.sources import ingest_entries, temporary_run
from curate.read.views import ContaminationRow
from curate.store import write_parquet

RECIPE_REJECT_ABOVE: float = DecontamConfig.model_fields["reject_source_above"].default
"""A recipe's default ``decontam.reject_source_above``: what the summary compares with."""


class FileOptions(Config):
    """Where a one-file command writes, and how it reads INPUT (``run_on_file`` takes the
    same names)."""

    out: str | None = Field(None, description=(
        "Every row's decision: a .parquet file, or a folder (decisions.parquet inside); "
        "reports go beside it."))
    kept: str | None = Field(None, description=(
        "Write the kept rows here, in INPUT's format and columns, with repaired text."))
    removed: str | None = Field(None, description=(
        "Write the removed rows here, in INPUT's format and columns, plus `reason`."))
    source: str | None = Field(None, description=(
        "Read INPUT with this catalog entry's mapping [default: INPUT has a `messages` column]."))
    question: str | None = Field(None, description=(
        "Read INPUT's user turn from this column (with --answer), no catalog entry needed."))
    answer: str | None = Field(None, description=(
        "Read INPUT's assistant turn from this column (with --question)."))
    text_key: str | None = Field(None, description=(
        "Read INPUT's text from this one column (a prompt, a document), as a user turn."))

    @model_validator(mode="after")
    def _one_way_to_read(self) -> FileOptions:
        inline = [f"--{n.replace('_', '-')}" for n in ("question", "answer", "text_key") if getattr(self, n)]
        if self.source is not None and inline:
            raise ValueError(f"give --source or {' / '.join(inline)}, not both: the entry has a mapping")
        if self.text_key is not None and (self.question or self.answer):
            raise ValueError("give --text-key (one column) or --question/--answer, not both")
        if self.answer is not None and self.question is None:
            raise ValueError("--answer needs --question (the user turn it answers)")
        return self

    def mapping(self) -> dict[str, Any] | None:
        """The chat mapping the inline options give, or None (``source`` or `messages`)."""
        if self.text_key is not None:
            return {"kind": "chat", "question": self.text_key}
        if self.question is not None:
            return {"kind": "chat", "question": self.question,
                    **({"answer": self.answer} if self.answer else {})}
        return None


@dataclass(frozen=True)
class FileContamination:
    """How contaminated one file was, and what the decision did with it."""

    contaminated: int
    rows: int
    share: float
    reject_source_above: float | None
    """The threshold the decision used; None: rows judged one by one (no source rejection)."""
    recipe_rule: float
    """A recipe's default ``reject_source_above``."""
    recipe_would_reject: bool
    """Whether that rule would have rejected the whole file."""


@dataclass
class FileResult:
    """What a one-file command wrote: OUT (None when not asked for), its rows, how many
    were kept, removals by reason, the reports, and the KEPT / REMOVED files with their
    row counts (``written``: kept, removed, repaired)."""
    out: Path | None
    rows: int
    kept: int
    reasons: dict[str, int]
    reports: dict[str, Path] = field(default_factory=dict)
    kept_path: Path | None = None
    removed_path: Path | None = None
    written: Written = field(default_factory=Written)
    contamination: FileContamination | None = None
    """For decontamination: how contaminated the file was, and what the decision did."""
    contamination_rows: list[ContaminationRow] = field(default_factory=list)
    """For decontamination: the contamination report, per benchmark, with examples."""


def run_on_file(
    input_path: str | os.PathLike[str],
    out: str | os.PathLike[str] | None,
    stages: dict[str, dict[str, Any]],
    *,
    kept: str | os.PathLike[str] | None = None,
    removed: str | os.PathLike[str] | None = None,
    source_rejection: bool = True,
    source: str | None = None,
    mapping: dict[str, Any] | None = None,
    benchmarks: Sequence[str] | None = None,
    catalog_dirs: Iterable[str | os.PathLike[str]] = (),
    data_root: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> FileResult:
    """Run ``stages`` (name -> options, in order) over the file; write the decisions to
    ``out``, the kept rows to ``kept`` and the removed rows to ``removed`` (at least one);
    ``progress`` as ``build_mix`` takes it.

    ``source_rejection=False`` (the one-file commands) judges rows only: decontamination
    rejects the file as a whole only when its options set ``reject_source_above``.
    INPUT is read with the catalog entry ``source``'s mapping, or with ``mapping`` (a chat
    mapping: ``{"kind": "chat", "question": ..., "answer": ...}``, ``FileOptions.mapping``),
    else from its `messages` column.
    ``benchmarks`` (default: the decontamination options' ``benchmarks``) are ingested
    for the stages to read."""
    if out is None and kept is None and removed is None:
        raise ConfigError("nothing to write: give --kept PATH (the kept rows), --removed PATH "
                          "or --out PATH (every row's decision)")
    input_file = Path(input_path)
    for option, target in (("--kept", kept), ("--removed", removed)):
        if target is not None:
            check_target(input_file, Path(target), option)
    stages = {name: dict(options) for name, options in stages.items()}
    reject_given = "reject_source_above" in stages.get("decontam", {})
    if "decontam" in stages and not reject_given and not source_rejection:
        stages["decontam"]["reject_source_above"] = 1.0  # a share is never above 1: off
    catalog = Catalog.load(catalog_dirs)
    root = resolve_data_root(data_root)
    built = build_stages(stages, where="options")
    if benchmarks is None:
        benchmarks = stages.get("decontam", {}).get("benchmarks", [])
    bench = [catalog.benchmark(name) for name in benchmarks]
    with temporary_run() as run:
        entry = ingest_file(Path(input_path), run.store, source=source, catalog=catalog, data_root=root,
                            progress=progress, mapping=mapping)
        ingest_entries(run, [], benchmarks=bench, data_root=root)
        context = StageContext(benchmarks={b.name: run.benchmark_files(b.name) for b in bench})
        run_stages(built, run.store, [entry.name], input_fingerprint="adhoc", context=context,
                   progress=progress)
        table = _every_row(run, entry.name, [s.name for s in built])
        result = _write(table, None if out is None else Path(out), run, [s.name for s in built])
        if kept is not None or removed is not None:
            removed_rows = table.filter(~pl.col("keep"))
            decisions: dict[int, tuple[str, str | None] | None] = dict.fromkeys(
                table.filter("keep").get_column("row").to_list())
            decisions |= {row: (reason or "removed", ref) for row, reason, ref in removed_rows.select(
                "row", "reason", "reason_ref").iter_rows()}
            result.written = write_rows(input_file, entry, decisions, _repairs(run, entry.name, built),
                                        kept=None if kept is None else Path(kept),
                                        removed=None if removed is None else Path(removed))
            result.kept_path = None if kept is None else Path(kept)
            result.removed_path = None if removed is None else Path(removed)
        if "decontam" in stages:
            result.contamination = _contamination(table, stages["decontam"],
                                                  reject_given or source_rejection)
            report = run.report("contamination")
            result.contamination_rows = [] if report is None else [
                ContaminationRow.from_json(r) for r in report.to_dicts()]
        return result


TURNS = ("messages", "chosen", "rejected")


def _repairs(run: RunReader, source: str, built: Sequence[Stage[Any]]) -> Repairs:
    """The rows whose turns the stages' rewrites change: row -> {column: (before, after)}."""
    rewrite = text_rewrite(built)
    if rewrite is None or not run.record_files([source]):
        return Repairs({})
    records = run.records([source]).select("row", *TURNS).collect().to_arrow()
    after = rewrite(records)
    rows: dict[int, dict[str, tuple[Any, Any]]] = {}
    for name in TURNS:
        old, new = records.column(name).to_pylist(), after.column(name).to_pylist()
        for row, a, b in zip(records.column("row").to_pylist(), old, new):
            if a != b:
                rows.setdefault(row, {})[name] = (a, b)
    return Repairs(rows)


def _contamination(table: pl.DataFrame, options: dict[str, Any], reject_given: bool) -> FileContamination:
    reasons = table.get_column("reason").fill_null("")
    contaminated = int((reasons == "contaminated").sum())
    read = int(table.height - table.get_column("id").null_count())
    share = contaminated / read if read else 0.0
    return FileContamination(
        contaminated=contaminated, rows=read, share=share,
        reject_source_above=options.get("reject_source_above", RECIPE_REJECT_ABOVE) if reject_given else None,
        recipe_rule=RECIPE_REJECT_ABOVE, recipe_would_reject=share > RECIPE_REJECT_ABOVE)


def _every_row(run: RunReader, source: str, stage_names: list[str]) -> pl.DataFrame:
    records = run.records([source]).select("row", "id").collect()
    quarantine = split_reasons(run.quarantined([source]).select(
        "row", keep=pl.lit(False), reason=pl.col("reason")).collect())
    table = records.with_columns(keep=pl.lit(True), reason=pl.lit(None, pl.String),
                                 reason_ref=pl.lit(None, pl.String))
    for name in stage_names:
        decisions = run.scores(name).collect().drop("stage", "source", "id")
        mine = {c: f"_{c}_{name}" for c in ("keep", "reason", "reason_ref")}
        decisions = decisions.rename(mine)
        first = pl.col("reason").is_null()  # the first stage that removed a row names it
        table = table.join(decisions, on="row", how="left").with_columns(
            reason=pl.when(first).then(pl.col(mine["reason"])).otherwise("reason"),
            reason_ref=pl.when(first).then(pl.col(mine["reason_ref"])).otherwise("reason_ref"),
            keep=pl.col("keep") & pl.col(mine["keep"]).fill_null(True),
        ).drop(*mine.values())
    return pl.concat([table, quarantine], how="diagonal_relaxed").sort("row")


def _write(table: pl.DataFrame, out: Path | None, run: RunReader, stage_names: list[str]) -> FileResult:
    if out is None:
        return _result(table, None, {})
    if out.suffix == ".parquet":
        data_path, beside = out, lambda name: out.with_name(f"{out.stem}.{name}.parquet")
    else:
        data_path, beside = out / "decisions.parquet", lambda name: out / f"{name}.parquet"
    write_parquet(table.to_arrow(), data_path)
    reports = {}
    for name in stage_names:
        for report in run.store.stage(name).reports():
            target = beside(report.stem)
            write_parquet(pl.read_parquet(report).to_arrow(), target)
            reports[report.stem] = target
    return _result(table, data_path, reports)


def _result(table: pl.DataFrame, data_path: Path | None, reports: dict[str, Path]) -> FileResult:
    reasons = table.get_column("reason").drop_nulls()
    return FileResult(
        out=data_path, rows=table.height, kept=int(table.get_column("keep").sum()),
        reasons=dict(sorted(reasons.value_counts().iter_rows())), reports=reports,
    )
