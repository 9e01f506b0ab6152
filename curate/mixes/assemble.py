"""From a finished run to a release: candidates, allocation, mix, audit trail, manifest."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from curate.catalog import MixSpec, Recipe, Source, read_yaml, resolve_files
from curate.curation import switched_off
from curate.curation.clean import CleanConfig, clean_messages
from curate.engine import StageResult
from curate.mixes.allocate import Allocation, allocate, composition
from curate.mixes.card import render_card
from curate.mixes.release import (
    ROWS_PER_FILE, WrittenRelease, config_of, package_versions, sha256_file, trl_columns, write_release,
)
from curate.mixes.tokens import counting_method, loss_tokens
from curate.store import RunStore
from curate.synth.cot import SOURCE as SYNTH_SOURCE

if TYPE_CHECKING:
    from curate.mixes.build import Run

KEYS = ["source", "row"]


def _labels() -> list[pl.Expr]:
    return [
        pl.when(pl.col("origin") == "synthetic").then(pl.lit("synthetic"))
        .otherwise(pl.col("domain")).alias("category"),
        pl.when(pl.col("kind") == "image_text").then(pl.lit("image")).otherwise(pl.lit("text"))
        .alias("modality"),
    ]


def _removed_keys(store: RunStore, stage_names: Sequence[str]) -> pl.DataFrame:
    frames = [
        pl.read_parquet(store.stage(name).path / "decisions.parquet", columns=[*KEYS, "id", "keep", "reason"])
        .filter(~pl.col("keep")).select(*KEYS, "id", stage=pl.lit(name), reason="reason")
        for name in stage_names
    ]
    schema = {"source": pl.String, "row": pl.Int64, "id": pl.String, "stage": pl.String,
              "reason": pl.String}
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)


def cleaned(records: pl.DataFrame, clean: CleanConfig | None) -> pl.DataFrame:
    """The records with their turns repaired as the recipe's ``clean`` stage says."""
    if clean is None or records.height == 0:
        return records
    return pl.from_arrow(clean_messages(records.to_arrow(), clean))  # type: ignore[return-value]


def clean_config(stage_results: Sequence[StageResult]) -> CleanConfig | None:
    """The options of the ``clean`` stage when it ran."""
    ran = [r for r in stage_results if r.name == "clean"]
    return CleanConfig.model_validate(ran[0].stats["options"]) if ran else None


def mix_sources(recipe: Recipe) -> list[str]:
    """The run sources a recipe's mix draws from: its sources, and ``synth_cot`` when it
    makes synthetic records."""
    return [*recipe.sources, *([SYNTH_SOURCE] if "cot" in recipe.synth else [])]


def candidates(store: RunStore, sources: Sequence[str], removed: pl.DataFrame,
               tokenizer: str | None, clean: CleanConfig | None = None) -> pl.DataFrame:
    """Every record the stages kept: keys, category, modality, kind and loss tokens (of
    the cleaned text), computed shard by shard (the texts are never all in memory)."""
    drop = removed.select(KEYS)
    parts = []
    for name in sources:
        for path in store.source(name).files("records"):
            shard = pl.read_parquet(path, columns=[*KEYS, "id", "kind", "domain", "origin",
                                                   "messages", "chosen", "rejected"])
            shard = cleaned(shard.join(drop, on=KEYS, how="anti", maintain_order="left"), clean)
            parts.append(shard.select(*KEYS, "id", "kind", *_labels()).with_columns(
                loss_tokens=loss_tokens(shard, tokenizer)))
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


def write_mix(folder: Path, store: RunStore, sources: Sequence[str], order: pl.DataFrame,
              clean: CleanConfig | None = None) -> list[str]:
    """Write the mix's data files under ``folder`` (``data/<config>/train-NNNNN.parquet``,
    in the seeded order, cleaned) and return their paths relative to it.

    One pass over the record shards sends each chosen record to a part of its data file;
    each data file is then sorted from its parts alone, so memory holds one record shard
    or one data file, never the whole mix."""
    parts = folder / "_parts"
    placed = order.select(*KEYS, "category", "_order", "config", "file")
    for name in sources:
        for shard, path in enumerate(store.source(name).files("records")):
            records = cleaned(pl.read_parquet(path).join(placed, on=KEYS), clean)
            for (config, file), part in records.group_by("config", "file"):
                target = parts / config / f"{file:05d}" / f"{name}-{shard:05d}.parquet"
                target.parent.mkdir(parents=True, exist_ok=True)
                part.write_parquet(target)
    written = []
    for config, file in order.select("config", "file").unique().sort("config", "file").iter_rows():
        rows = pl.read_parquet(sorted((parts / config / f"{file:05d}").glob("*.parquet"))).sort("_order")
        relative = f"data/{config}/train-{file:05d}.parquet"
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        trl_columns(rows, config).write_parquet(folder / relative, compression="zstd", statistics=True)
        written.append(relative)
    shutil.rmtree(parts, ignore_errors=True)
    return written


def audit_trail(store: RunStore, sources: Sequence[str], removed: pl.DataFrame,
                pool: pl.DataFrame, chosen: pl.DataFrame) -> pl.DataFrame:
    """Every ingested row not in the mix: quarantined, removed by a stage, or not selected."""
    quarantine = [
        pl.read_parquet(path, columns=[*KEYS, "reason"]).select(
            *KEYS, id=pl.lit(None, pl.String), stage=pl.lit("ingest"), reason="reason")
        for name in sources for path in store.source(name).files("quarantine")
    ]
    not_selected = pool.join(chosen.select(KEYS).unique(), on=KEYS, how="anti").select(
        *KEYS, "id", stage=pl.lit("mix"), reason=pl.lit("not_selected"))
    return pl.concat([*quarantine, removed, not_selected]).sort(KEYS)


def _inputs(entries: Sequence[Source], data_root: Path) -> dict[str, Any]:
    described = {}
    for entry in entries:
        info: dict[str, Any] = {"catalog_version": entry.version, "license": entry.license}
        if entry.location.hf is not None:
            info["hf"] = entry.location.hf.model_dump(mode="json")
        else:
            info["files"] = [
                {"path": str(p.relative_to(data_root)) if p.is_relative_to(data_root) else str(p),
                 "sha256": sha256_file(p)}
                for p in resolve_files(entry.location, data_root)]
        described[entry.name] = info
    return described


def assemble_release(run: Run, stage_results: Sequence[StageResult], releases_dir: Path,
                     synth: dict[str, Any] | None = None) -> WrittenRelease:
    """The release of a finished run; ``synth`` are the stats of its synthetic records
    (the run source ``synth_cot``), when the recipe made some."""
    recipe, store = run.recipe, run.store
    spec = recipe.mix
    stage_names = [r.name for r in stage_results]
    removed = _removed_keys(store, stage_names)
    tokenizer = spec.tokenizer if spec else None
    sources = mix_sources(recipe)
    clean = clean_config(stage_results)
    pool = candidates(store, sources, removed, tokenizer, clean)
    allocation = select(pool, spec, recipe.seed)
    order = mix_order(allocation.selected, recipe.seed)
    trail = audit_trail(store, recipe.sources, removed, pool, allocation.selected)
    entries = [run.catalog.source(n) for n in recipe.sources]
    described = {e.name: {"license": e.license, "domain": e.domain, "origin": e.origin}
                 for e in entries}
    if synth is not None:
        described[SYNTH_SOURCE] = _synthetic_source(store, synth)
    manifest = {
        "name": recipe.name,
        "version": recipe.version,
        "seed": recipe.seed,
        "recipe": {"given": read_yaml(run.recipe_file) if run.recipe_file else None,
                   "resolved": recipe.model_dump(mode="json")},
        "inputs": _inputs(entries, run.data_root),
        "benchmarks": _inputs([run.catalog.benchmark(n) for n in recipe.benchmarks], run.data_root),
        "stages": [{k: r.stats[k] for k in ("stage", "options", "rows", "kept", "dropped", "reasons")}
                   for r in stage_results],
        "stages_switched_off": switched_off(recipe.stages),
        "quarantine": {
            name: dict(sorted(c.items())) for name in recipe.sources
            if (c := _quarantine_counts(store, name))},
        "contamination": _contamination(store, stage_names),
        "budget": {"unit": spec.unit if spec else "loss_tokens", "amount": allocation.budget,
                   "counting": counting_method(tokenizer)},
        "composition": allocation.composition,
        "modality": _shares(allocation.selected, "modality"),
        "sources_in_mix": _per_source(allocation.selected, described),
        "synthetic": None if synth is None else {
            k: v for k, v in synth.items() if k != "requests"},  # requests differ on a cached rebuild
        "packages": package_versions(),
    }
    configs = sorted(order.get_column("config").unique().to_list())
    return write_release(releases_dir / recipe.name / recipe.version,
                         lambda folder: write_mix(folder, store, sources, order, clean), trail,
                         manifest, render_card(manifest, configs))


def _quarantine_counts(store: RunStore, name: str) -> dict[str, int]:
    totals: dict[str, int] = {}
    for stats in store.source(name).done().values():
        for reason, count in stats.get("quarantined", {}).items():
            totals[reason] = totals.get(reason, 0) + count
    return totals


def _contamination(store: RunStore, stage_names: Sequence[str]) -> list[dict[str, Any]]:
    for name in stage_names:
        report = store.stage(name).path / "reports" / "contamination.parquet"
        if report.exists():
            return pl.read_parquet(report).drop("examples").to_dicts()
    return []


def _shares(selected: pl.DataFrame, column: str) -> dict[str, dict[str, float | int]]:
    total_tokens = max(int(selected.get_column("loss_tokens").sum()), 1)
    total_rows = max(selected.height, 1)
    return {
        value: {"loss_tokens": int(t), "rows": int(r), "loss_tokens_share": t / total_tokens,
                "rows_share": r / total_rows}
        for value, t, r in selected.group_by(column).agg(pl.col("loss_tokens").sum(), pl.len())
        .sort(column).iter_rows()
    }


def _synthetic_source(store: RunStore, synth: dict[str, Any]) -> dict[str, Any]:
    """How the synthetic source is described: its parents' licences and domains."""
    records = pl.read_parquet(store.source(SYNTH_SOURCE).files("records"), columns=["license", "domain"])
    licenses = sorted(records.get_column("license").unique().to_list())
    generator = synth["generator"]
    return {"license": licenses[0] if len(licenses) == 1 else "other",
            "domain": ",".join(sorted(records.get_column("domain").unique().to_list())),
            "origin": "synthetic",
            "generator": f"{generator['backend']}:{generator['model']}",
            "offline_backend": synth["offline_backend"]}


def _per_source(selected: pl.DataFrame, described: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    result = {}
    for name, tokens, rows, repeated in selected.group_by("source").agg(
            pl.col("loss_tokens").sum(), pl.len(), (pl.col("repeat") > 0).sum()).sort("source").iter_rows():
        result[name] = {"rows": int(rows), "loss_tokens": int(tokens), "repeated_rows": int(repeated),
                        **described[name]}
    return result
