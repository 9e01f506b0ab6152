"""Audit evaluation sets with the curation checks: which benchmark items are flawed.

``audit(benchmarks, config)`` reads each benchmark as a run reads it and reports, per
benchmark, each flaw's item ids (``<benchmark>:<row>``) and the share of flawed items;
a benchmark whose flawed share is above ``unfit_above`` is marked unfit.

Flaws (they count towards the flawed share):

- ``missing_answer``: the answer column is missing or empty in a row (a set whose answers
  are hidden maps no answer column and is not flawed);
- ``answer_not_in_options``: the gold answer names no option, or is past the last one
  (ingestion's ``unknown_answer`` and ``answer_out_of_range``);
- ``empty_option``: an option is blank, or the item has fewer than two (``empty_option``,
  ``too_few_options``);
- ``truncated_option``: an option that ends in an ellipsis, in an unclosed bracket, or in
  a word that cannot end a phrase (``and``, ``or``, ``of``, ``the``, ``to``, ``with`` ...);
- ``unreadable_image`` / ``missing_image``: an image file that is missing or not an image,
  or an image column that is empty (benchmarks with images);
- ``unreadable_row``: any other row ingestion had to quarantine (a missing question ...);
- ``duplicate_options``: two options of one item are the same text (after folding case and
  punctuation);
- ``gold_in_stem``: the gold answer's text (four characters or more, folded) occurs in the
  stem as whole words and no other option does: the stem gives the answer away;
- ``conflicting_answers``: the same stem with the same options (compared after folding
  case and punctuation, options in any order) has different gold answers: every such item;
- ``duplicate_item``: the same stem, options and gold answer as an earlier item: the copies.

Reported, not counted:

- ``repeated_stem``: a stem that recurs with other options (generic stems such as "Which
  of the following statements is false?"): harmless to score, but a matcher on question
  text alone confuses these items; every item with such a stem;
- ``all_none_key``: the gold answer is "all/none of the above" (or "both A and B"): it names
  other options by position, so a shuffled-options run (MedPrompt's ensemble) changes its
  meaning; these items are best scored without shuffles;
- ``shared_with:<other>``: the item is found in another audited benchmark by the
  decontamination tiers (``curate.curation.decontam``, the same stage and thresholds a
  run uses), with the matched item. A benchmark that is a subset of another is not flawed
  itself, but the two must not be reported as independent evidence.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from curate.catalog import Catalog, resolve_data_root
from curate.errors import ConfigError
from curate.evaluate.config import AuditConfig
from curate.evaluate.items import BenchmarkData, flaw_of, read_benchmark
from curate.store import write_json

COUNTED = ("missing_answer", "answer_not_in_options", "empty_option", "truncated_option",
           "duplicate_options", "gold_in_stem", "unreadable_image", "missing_image", "unreadable_row",
           "conflicting_answers", "duplicate_item")
NOTED = ("repeated_stem", "all_none_key", "shared")
ABOVE = (r"^(all|none|both|neither) (of )?(the )?(above|these|of these|the above|following)$"
         r"|^(both|all) [a-e] and [a-e]$")
"""A gold answer that is "all/none of the above" (or "both A and B"): it names other options
by position, so it breaks when options are shuffled, and rewards test-taking tricks."""
MIN_GOLD_CHARS = 4
"""``gold_in_stem``: gold answers shorter than this (folded) are not looked for in the stem."""
DANGLING = ("and", "or", "of", "the", "to", "with", "for", "by", "from", "than", "an", "but", "nor")
"""Words an option cannot end with unless it was cut (``in``, ``up`` are left out: "knock in",
"screwed in" end real options)."""
_TRUNCATED = (r"(\.\.\.|…)\s*$|[(\[{][^)\]}]*$|\b(" + "|".join(DANGLING) + r")\s*$")
_FOLD = r"[^\p{L}\p{N}]+"


@dataclass
class AuditResult:
    """The audit: per benchmark its rows, flaws with item ids, share and fitness."""

    results: dict[str, Any]
    out: Path | None = None

    @property
    def benchmarks(self) -> dict[str, Any]:
        """Benchmark name -> its audit."""
        return self.results["benchmarks"]

    @property
    def rows(self) -> list[AuditRow]:
        """One typed row per benchmark (what ``curate audit`` prints)."""
        return [AuditRow(name, int(b["rows"]), int(b["flawed"]), float(b["share"]), bool(b["fit"]),
                         {f: len(b["flaws"][f]) for f in COUNTED}, len(b["notes"]["repeated_stem"]),
                         int(b["shared_items"])) for name, b in self.benchmarks.items()]

    def to_json(self) -> dict[str, Any]:
        """``curate audit --json``: the audit and where it was written."""
        return {"out": None if self.out is None else str(self.out), **self.results}


@dataclass(frozen=True)
class AuditRow:
    """One benchmark's audit: rows, flawed items and their share, fitness, flawed items per
    flaw, repeated stems, items shared with the other benchmarks."""

    benchmark: str
    rows: int
    flawed: int
    share: float
    fit: bool
    flaws: dict[str, int]
    repeated_stem: int
    shared_items: int


def _fold(expr: pl.Expr) -> pl.Expr:
    return expr.str.to_lowercase().str.replace_all(_FOLD, " ").str.strip_chars()


def item_checks(data: BenchmarkData) -> tuple[dict[str, list[str]], int]:
    """Every flaw of one benchmark (but shared items): flaw -> sorted item ids; and how many
    items repeat the stem of an earlier item (with the same options or not)."""
    name = data.entry.name
    flaws: dict[str, set[int]] = {f: set() for f in (*COUNTED, "repeated_stem", "all_none_key")}
    if data.quarantine.height:
        for row, reason in data.quarantine.select("row", "reason").iter_rows():
            flaws[flaw_of(reason, data.entry)].add(row)
    records = data.records
    stem_repeats = 0
    if records.height:
        frame = _item_frame(records)
        flaws["truncated_option"] |= set(
            frame.filter(pl.col("options").list.eval(pl.element().str.contains(_TRUNCATED)).list.any())
            .get_column("row").to_list())
        folded = frame.with_columns(folded=pl.col("options").list.eval(_fold(pl.element())))
        flaws["duplicate_options"] |= set(folded.filter(
            pl.col("folded").list.eval(pl.element().filter(pl.element() != "")).list.n_unique()
            < pl.col("folded").list.eval(pl.element().filter(pl.element() != "")).list.len())
            .get_column("row").to_list())
        flaws["all_none_key"] |= set(
            frame.filter(pl.col("gold").str.contains(ABOVE)).get_column("row").to_list())
        flaws["gold_in_stem"] |= _gold_in_stem(folded)
        stem_repeats = frame.height - frame.get_column("stem").n_unique()
        by_stem = frame.group_by("stem").agg(pl.col("option_set").n_unique().alias("sets"))
        flaws["repeated_stem"] |= set(frame.join(by_stem.filter(pl.col("sets") > 1), on="stem")
                                      .get_column("row").to_list())
        same = frame.group_by("stem", "option_set").agg(
            pl.col("gold").n_unique().alias("golds"), pl.col("row").sort().alias("rows"),
            pl.len().alias("n"))
        for rows in same.filter(pl.col("golds") > 1).get_column("rows").to_list():
            flaws["conflicting_answers"] |= set(rows)
        copies = (frame.filter(~pl.col("row").is_in(list(flaws["conflicting_answers"])))
                  .sort("row").filter(pl.col("row").cum_count().over("stem", "option_set", "gold") > 1))
        flaws["duplicate_item"] |= set(copies.get_column("row").to_list())
    return {flaw: [f"{name}:{row}" for row in sorted(rows)] for flaw, rows in flaws.items()}, stem_repeats


def _gold_in_stem(frame: pl.DataFrame) -> set[int]:
    """Rows whose gold answer's text (folded, at least ``MIN_GOLD_CHARS`` characters) occurs
    in the stem as whole words while no other option does: the stem gives the answer away."""
    out = set()
    for row, stem, options, gold in frame.select("row", "stem", "folded", "gold").iter_rows():
        if len(gold) < MIN_GOLD_CHARS or not stem:
            continue
        padded = f" {stem.split('|')[0]} "
        if f" {gold} " in padded and not any(o and o != gold and f" {o} " in padded for o in options):
            out.add(row)
    return out


def _item_frame(records: pl.DataFrame) -> pl.DataFrame:
    """row, folded stem (with the image hashes of an image item), options, folded option
    set (sorted), folded gold answer text."""
    from curate.curation.text import answer_text, user_text

    mcqa = pl.col("mcqa")
    options = mcqa.struct.field("options").fill_null(pl.lit([], pl.List(pl.String)))
    images = pl.col("images").list.eval(
        pl.element().struct.field("bytes").hash().cast(pl.String)).list.join(",").fill_null("")
    gold = (pl.when(mcqa.struct.field("answer").is_not_null())
            .then(options.list.get(mcqa.struct.field("answer"), null_on_oob=True))
            .otherwise(answer_text()))
    return records.select(
        "row",
        stem=pl.concat_str([_fold(pl.coalesce(mcqa.struct.field("question"), user_text())), images],
                           separator="|"),
        options=options,
        option_set=options.list.eval(_fold(pl.element())).list.sort().list.join("\u241f"),
        gold=_fold(gold.fill_null("")),
    )


def shared_items(data: Sequence[BenchmarkData], config: AuditConfig) -> dict[str, dict[str, list[str]]]:
    """Per benchmark: other benchmark -> its items found there, as ``<item>=<matched item>``,
    by the decontamination stage run with the other audited benchmarks as its targets."""
    from curate.curation.decontam import Decontaminate
    from curate.engine.stage import StageContext
    from curate.records import SCHEMA
    from curate.store import write_parquet

    found: dict[str, dict[str, list[str]]] = {d.entry.name: {} for d in data}
    if len(data) < 2:
        return found
    with tempfile.TemporaryDirectory(prefix="curate-audit-") as tmp:
        files = {}
        for d in data:
            path = Path(tmp) / f"{d.entry.name}.parquet"
            write_parquet(d.records.to_arrow().cast(SCHEMA), path)
            files[d.entry.name] = [path]
        for d in data:
            others = [o.entry.name for o in data if o.entry.name != d.entry.name]
            if d.records.height == 0:
                continue
            stage = Decontaminate(config.decontam.model_copy(update={"benchmarks": others}))
            context = StageContext(benchmarks={n: files[n] for n in others})
            try:
                records = d.records.to_arrow().cast(SCHEMA)
                scores = pl.from_arrow(stage.score(records, context))
                assert isinstance(scores, pl.DataFrame)
                keyed = d.records.select("source", "row", "id").hstack(scores)
                decided = stage.decide(keyed).filter(pl.col("contam_tier").is_not_null())
            finally:
                stage.teardown()
            for row, other, item in decided.sort("row").select(
                    "row", "contam_benchmark", "contam_item").iter_rows():
                found[d.entry.name].setdefault(other, []).append(f"{d.entry.name}:{row}={item}")
    return found


def audit(
    benchmarks: Sequence[str],
    config: AuditConfig | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
    catalog_dirs: Iterable[str | os.PathLike[str]] = (),
    data_root: str | os.PathLike[str] | None = None,
) -> AuditResult:
    """Audit ``benchmarks`` (catalog names); with ``out``, write ``audit.json`` and the report."""
    config = config or AuditConfig.model_validate({})
    if not benchmarks:
        raise ConfigError("name at least one benchmark to audit (see `curate catalog ls`)")
    catalog = Catalog.load(catalog_dirs)
    root = resolve_data_root(data_root)
    started = time.perf_counter()
    data = [read_benchmark(catalog.benchmark(n), data_root=root, kinds=("mcqa", "image_text"))
            for n in dict.fromkeys(benchmarks)]
    read_seconds = time.perf_counter() - started
    shared = shared_items(data, config) if config.cross_benchmark else {}
    report: dict[str, Any] = {}
    for d in data:
        flaws, stem_repeats = item_checks(d)
        counted = {i for f in COUNTED for i in flaws[f]}
        share = len(counted) / d.rows if d.rows else 0.0
        pairs = shared.get(d.entry.name, {})
        report[d.entry.name] = {
            "rows": d.rows, "records": d.records.height, "flawed": len(counted), "share": share,
            "fit": share <= config.unfit_above,
            "flaws": {f: flaws[f] for f in COUNTED},
            "notes": {"repeated_stem": flaws["repeated_stem"], "all_none_key": flaws["all_none_key"],
                      **{f"shared_with:{o}": ids for o, ids in sorted(pairs.items())}},
            "stem_repeats": stem_repeats,
            "shared_items": len({p.split("=")[0] for ids in pairs.values() for p in ids}),
        }
    seconds = time.perf_counter() - started
    rows = sum(d.rows for d in data)
    results = {
        "options": config.model_dump(mode="json"), "flaws": list(COUNTED), "benchmarks": report,
        "rows": rows, "seconds": {"total": seconds, "reading": read_seconds},
        "rows_per_second": rows / seconds if seconds > 0 else None,
    }
    folder = None
    if out is not None:
        from curate.evaluate.report import write_audit_report

        folder = Path(out)
        write_json(folder / "audit.json", results)
        write_audit_report(results, folder)
    return AuditResult(results=results, out=folder)
