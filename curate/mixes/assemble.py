"""From a finished run to a release: candidates, allocation, mix, audit trail, manifest."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate.catalog import MixSpec, Recipe, Source, portable_path, resolve_files
from curate.curation.box_formats import GROUNDING_PATTERN
from curate.engine.runner import Rewrite, StageResult
from curate.engine.stage import Stage
from curate.mixes.allocate import Allocation, allocate, composition
from curate.mixes.card import dataset_info, example_rows, hub_dataset, render_card, training_cost
from curate.mixes.release import (
    IMAGE_ROW_GROUP,
    ROWS_PER_FILE,
    WrittenRelease,
    config_of,
    package_versions,
    trl_columns,
    write_release,
)
from curate.mixes.report import write_report
from curate.mixes.tokens import counting_method, loss_tokens
from curate.read.runs import RunReader, split_reasons
from curate.records import POSITION
from curate.store import ReleaseFolder, sha256_file

KEYS = list(POSITION)


@dataclass(frozen=True)
class ReleaseSpec:
    """What a release is made from: a finished run and how to describe it."""

    recipe: Recipe
    recipe_given: Any
    """The recipe file as written (None when the recipe came from no file)."""
    run: RunReader
    """The finished run."""
    sources: Sequence[Source]
    """The catalog entries of the recipe's sources."""
    benchmarks: Sequence[Source]
    data_root: Path
    stage_results: Sequence[StageResult]
    stages: Sequence[Stage[Any]] = ()
    """The stages that ran (the report marks their thresholds and leaves out rank columns)."""
    rewrite: Rewrite | None = None
    """The stages' text rewrites, applied to every record the release writes."""
    produced: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    """The run sources producer steps wrote (``synth_cot``), mixed with the sources, and
    each producer's stats."""

    @property
    def mix_sources(self) -> list[str]:
        """The run sources the mix draws from."""
        return [*self.recipe.sources, *self.produced]


MODALITIES = ("text", "image", "grounding")
"""A record's modality: ``text`` (no image), ``image`` (image-text) or ``grounding``
(image-text with a bounding box in its turns, in any format, or ``task: grounding``)."""


def modality() -> pl.Expr:
    """The modality of each record (reads ``kind``, ``task`` and ``messages``)."""
    boxed = pl.col("messages").list.eval(
        pl.element().struct.field("content").str.contains(GROUNDING_PATTERN)).list.any()
    image = pl.col("kind") == "image_text"
    return (pl.when(image & ((pl.col("task") == "grounding").fill_null(False) | boxed.fill_null(False)))
            .then(pl.lit("grounding")).when(image).then(pl.lit("image")).otherwise(pl.lit("text")))


def _labels() -> list[pl.Expr]:
    return [
        pl.when(pl.col("origin") == "synthetic").then(pl.lit("synthetic"))
        .otherwise(pl.col("domain")).alias("category"),
        modality().alias("modality"),
    ]


def rewritten(records: pl.DataFrame, rewrite: Rewrite | None) -> pl.DataFrame:
    """The records with the stages' text rewrites applied (``clean``'s repair)."""
    if rewrite is None or records.height == 0:
        return records
    frame = pl.from_arrow(rewrite(records.to_arrow()))
    assert isinstance(frame, pl.DataFrame)
    return frame


def candidates(run: RunReader, sources: Sequence[str], removed: pl.DataFrame,
               tokenizer: str | None, rewrite: Rewrite | None = None, *,
               max_length: int | None = None, tokenizer_revision: str | None = None) -> pl.DataFrame:
    """Every record the stages kept: keys, category, modality, kind and loss tokens (of
    the cleaned text, cut at the training ``max_length``, counted by ``tokenizer`` at
    ``tokenizer_revision``), computed shard by shard (the texts are never all in memory)."""
    drop = removed.select(KEYS)
    parts = []
    columns = [*KEYS, "id", "kind", "domain", "origin", "task", "messages", "chosen", "rejected"]
    for _, _, shard in run.shards(sources, columns):
        shard = rewritten(shard.join(drop, on=KEYS, how="anti", maintain_order="left"), rewrite)
        parts.append(shard.select(*KEYS, "id", "kind", *_labels()).with_columns(
            loss_tokens=loss_tokens(shard, tokenizer, max_length=max_length,
                                    revision=tokenizer_revision)))
    schema = {"source": pl.String, "row": pl.Int64, "id": pl.String, "kind": pl.String,
              "category": pl.String, "modality": pl.String, "loss_tokens": pl.UInt64}
    return pl.concat(parts) if parts else pl.DataFrame(schema=schema)


def select(pool: pl.DataFrame, spec: MixSpec | None, seed: int) -> Allocation:
    """The allocation of the recipe's ``mix``, or every kept record when it has none."""
    if spec is not None:
        return allocate(pool, spec, seed)
    chosen = pool.with_columns(repeat=pl.lit(0, pl.Int32))
    targets = dict.fromkeys(pool.get_column("category").unique().sort().to_list())
    shares = composition(chosen, targets, "loss_tokens")
    return Allocation(chosen, int(chosen.get_column("loss_tokens").sum()), shares)


def mix_order(chosen: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Where each chosen record (and each repeat) goes: its config, its place in a seeded
    order (``_order``), and the data file of its config that holds it (``file``)."""
    order = chosen.sort("source", "row", "repeat")
    order = order.with_columns(
        _order=pl.Series(np.random.default_rng(seed).permutation(order.height)),
        config=pl.col("kind").replace_strict({k: config_of(k) for k in
                                              ("chat", "mcqa", "preference", "image_text")}),
    ).sort("_order")
    return order.with_columns(file=(pl.int_range(pl.len()).over("config") // ROWS_PER_FILE).cast(pl.Int64))


def write_mix(folder: Path, run: RunReader, sources: Sequence[str], order: pl.DataFrame,
              rewrite: Rewrite | None = None) -> list[str]:
    """Write the mix's data files under ``folder`` (``data/<config>/train-NNNNN.parquet``,
    in the seeded order, cleaned) and return their paths relative to it.

    One pass over the record shards sends each chosen record to a part of its data file;
    each data file is then sorted from its parts alone, so memory holds one record shard
    or one data file, never the whole mix."""
    parts = folder / "_parts"
    placed = order.select(*KEYS, "category", "_order", "config", "file")
    for name, shard, records in run.shards(sources):
        records = rewritten(records.join(placed, on=KEYS), rewrite)
        for (config, file), part in records.group_by("config", "file"):
            target = parts / config / f"{file:05d}" / f"{name}-{shard:05d}.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            part.write_parquet(target)
    written = []
    for config, file in order.select("config", "file").unique().sort("config", "file").iter_rows():
        rows = pl.read_parquet(sorted((parts / config / f"{file:05d}").glob("*.parquet"))).sort("_order")
        relative = ReleaseFolder.data_file(config, file)
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        # `datasets` reads a row group at a time: image rows go in groups of about 100 rows
        # (as `datasets` writes image data), so a group never holds hundreds of MB of images.
        trl_columns(rows, config).write_parquet(folder / relative, compression="zstd", statistics=True,
                                                row_group_size=IMAGE_ROW_GROUP if config == "image_text"
                                                else None)
        written.append(relative)
    shutil.rmtree(parts, ignore_errors=True)
    return written


def audit_trail(run: RunReader, sources: Sequence[str], removed: pl.DataFrame,
                pool: pl.DataFrame, chosen: pl.DataFrame) -> pl.DataFrame:
    """Every ingested row not in the mix: quarantined, removed by a stage, or not selected."""
    quarantine = split_reasons(run.quarantined(sources).select(
        *KEYS, id=pl.lit(None, pl.String), stage=pl.lit("ingest"), reason="reason").collect())
    not_selected = pool.join(chosen.select(KEYS).unique(), on=KEYS, how="anti").select(
        *KEYS, "id", stage=pl.lit("mix"), reason=pl.lit("not_selected"),
        reason_ref=pl.lit(None, pl.String))
    return pl.concat([quarantine, removed, not_selected]).sort(KEYS)


def _inputs(entries: Sequence[Source], data_root: Path) -> dict[str, Any]:
    described = {}
    for entry in entries:
        info: dict[str, Any] = {"catalog_version": entry.version, "license": entry.license}
        if entry.location.hf is not None:
            info["hf"] = entry.location.hf.model_dump(mode="json")
        else:
            info["files"] = [_input_file(p, data_root)
                             for p in resolve_files(entry.location, data_root, entry=entry.name)]
        described[entry.name] = info
    return described


def _input_file(path: Path, data_root: Path) -> dict[str, Any]:
    """One input file as the manifest records it: its path relative to the data root (or
    ``catalog:<path>``), never a path of the machine that built the release, and its sha256."""
    portable = portable_path(path, data_root)
    if portable is None:  # outside both roots (an opt-in): its name only
        return {"path": path.name, "outside_data_root": True, "sha256": sha256_file(path)}
    return {"path": portable, "sha256": sha256_file(path)}


def assemble_release(spec: ReleaseSpec, releases_dir: str | os.PathLike[str]) -> WrittenRelease:
    """Allocate the mix of a finished run and write its release under ``releases_dir``."""
    recipe, run = spec.recipe, spec.run
    mix = recipe.mix
    stage_names = [r.name for r in spec.stage_results]
    removed = run.removed(stage_names)
    tokenizer = mix.tokenizer if mix else None
    max_length = mix.max_length if mix else None
    revision = mix.tokenizer_revision if mix else None
    sources = spec.mix_sources
    pool = candidates(run, sources, removed, tokenizer, spec.rewrite, max_length=max_length,
                      tokenizer_revision=revision)
    allocation = select(pool, mix, recipe.seed)
    order = mix_order(allocation.selected, recipe.seed)
    trail = audit_trail(run, recipe.sources, removed, pool, allocation.selected)
    described = {e.name: {"license": e.license, "domain": e.domain, "origin": e.origin,
                          "language": e.language, "hub": _hub_of(e), "citation": e.citation,
                          "homepage": e.homepage} for e in spec.sources}
    for source, stats in spec.produced.items():
        described[source] = {
            **_synthetic_source(run, source, stats),
            "language": sorted({code for e in spec.sources for code in e.language}), "hub": None}
    manifest = {
        "name": recipe.name,
        "version": recipe.version,
        "seed": recipe.seed,
        "recipe": {"given": spec.recipe_given,
                   "resolved": recipe.model_dump(mode="json", exclude={"engine"})},
        "inputs": _inputs(spec.sources, spec.data_root),
        "benchmarks": _inputs(spec.benchmarks, spec.data_root),
        "stages": [{**{k: r.stats[k] for k in ("stage", "options", "rows", "kept", "dropped", "reasons")},
                    **({"resolved": r.stats["resolved"]} if r.stats.get("resolved") else {})}
                   for r in spec.stage_results],
        "stages_switched_off": recipe.switched_off,
        "quarantine": {
            name: dict(sorted(c.items())) for name in recipe.sources
            if (c := _quarantine_counts(run, name))},
        "contamination": _contamination(run, stage_names),
        "budget": {"unit": mix.unit if mix else "loss_tokens", "amount": allocation.budget,
                   "counting": counting_method(tokenizer, max_length=max_length, revision=revision),
                   "bound_by": allocation.bound_by},
        "composition": allocation.composition,
        "modality": _modality_shares(allocation.selected, mix),
        "sources_in_mix": _per_source(allocation.selected, described),
        "synthetic": _synthetic_stats(spec.produced),
        "packages": package_versions(),
    }
    configs = sorted(order.get_column("config").unique().to_list())
    target = ReleaseFolder.for_recipe(releases_dir, recipe.name, recipe.version).path
    return write_release(target,
                         lambda folder: [*write_mix(folder, run, sources, order, spec.rewrite),
                                         write_report(folder, manifest, run, trail, stage_names,
                                                      spec.stages),
                                         write_recipe(folder, spec.recipe_given, recipe)],
                         trail, manifest,
                         lambda folder: render_card(manifest, configs, dataset_info(folder, configs),
                                                    examples=example_rows(folder, configs),
                                                    cost=training_cost(folder, manifest, configs)))


def write_recipe(folder: Path, given: Any, recipe: Recipe) -> str:
    """Write ``recipe.yaml``, the recipe as given (as resolved when it came from no file),
    without its ``engine`` (where the stages ran is not part of a release); its path
    relative to the folder. ``curate build-mix recipe.yaml`` builds the release again
    from the same catalog entries and data."""
    import yaml

    body = dict(given) if isinstance(given, dict) else recipe.model_dump(mode="json", exclude={"engine"})
    body.pop("engine", None)
    text = ("# The recipe this release was built from (curate build-mix recipe.yaml builds it again\n"
            "# from the same catalog entries and data; manifest.json holds it resolved).\n"
            + yaml.safe_dump(body, sort_keys=False, allow_unicode=True))
    (folder / ReleaseFolder.RECIPE).write_text(text, "utf-8")
    return ReleaseFolder.RECIPE


def _hub_of(entry: Source) -> str | None:
    """The Hub dataset ``entry`` comes from (the card's ``source_datasets``)."""
    return hub_dataset(entry.location.hf.repo if entry.location.hf else None, entry.homepage)


def _quarantine_counts(run: RunReader, name: str) -> dict[str, int]:
    totals: dict[str, int] = {}
    for stats in run.store.source(name).done().values():
        for reason, count in stats.get("quarantined", {}).items():
            totals[reason] = totals.get(reason, 0) + count
    return totals


def _contamination(run: RunReader, stage_names: Sequence[str]) -> list[dict[str, Any]]:
    """The contamination report per source x benchmark, without its examples (they quote
    benchmark items), with the ids of the items matched (``<benchmark>:<row>``)."""
    report = run.report("contamination", stage_names)
    if report is None:
        return []
    matched = run.contaminated(stage_names)
    rows = report.drop("examples").to_dicts()
    for row in rows:
        mine = matched.filter((pl.col("source") == row["source"]) & (pl.col("benchmark") == row["benchmark"]))
        row["items"] = [f"{row['benchmark']}:{n}" for n in mine.get_column("item_row").unique().sort()]
    return rows


def _shares(selected: pl.DataFrame, column: str) -> dict[str, dict[str, float | int]]:
    total_tokens = max(int(selected.get_column("loss_tokens").sum()), 1)
    total_rows = max(selected.height, 1)
    return {
        value: {"loss_tokens": int(t), "rows": int(r), "loss_tokens_share": t / total_tokens,
                "rows_share": r / total_rows}
        for value, t, r in selected.group_by(column).agg(pl.col("loss_tokens").sum(), pl.len())
        .sort(column).iter_rows()
    }


def _modality_shares(selected: pl.DataFrame, mix: MixSpec | None) -> dict[str, dict[str, float | int]]:
    """Rows and loss tokens per modality, with the recipe's target share where it set one."""
    shares = _shares(selected, "modality")
    if mix is not None and mix.modality:
        for name, target in mix.modality.items():
            shares.setdefault(name, {"loss_tokens": 0, "rows": 0, "loss_tokens_share": 0.0,
                                     "rows_share": 0.0})["target"] = target
    return dict(sorted(shares.items()))


def _synthetic_source(run: RunReader, source: str, stats: dict[str, Any]) -> dict[str, Any]:
    """How a produced source is described: its parents' licences and domains, and its
    generator when the producer names one."""
    records = run.records([source]).select("license", "domain").collect()
    licenses = sorted(records.get_column("license").unique().to_list())
    described = {"license": licenses[0] if len(licenses) == 1 else "other",
                 "domain": ",".join(sorted(records.get_column("domain").unique().to_list())),
                 "origin": "synthetic"}
    generator = stats.get("generator")
    if isinstance(generator, dict):
        described["generator"] = f"{generator['backend']}:{generator['model']}"
    if "offline_backend" in stats:
        described["offline_backend"] = stats["offline_backend"]
    return described


def _synthetic_stats(produced: Mapping[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The manifest's ``synthetic``: the producer's stats (by source when there are
    several), without request counts, which differ on a rebuild from the cache."""
    trimmed = {source: {k: v for k, v in stats.items() if k != "requests"}
               for source, stats in produced.items()}
    if not trimmed:
        return None
    return next(iter(trimmed.values())) if len(trimmed) == 1 else trimmed


def _per_source(selected: pl.DataFrame, described: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    result = {}
    for name, tokens, rows, repeated in selected.group_by("source").agg(
            pl.col("loss_tokens").sum(), pl.len(), (pl.col("repeat") > 0).sum()).sort("source").iter_rows():
        result[name] = {"rows": int(rows), "loss_tokens": int(tokens), "repeated_rows": int(repeated),
                        **described[name]}
    return result
