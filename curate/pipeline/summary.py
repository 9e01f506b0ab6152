"""What a run folder holds: rows per source, quarantine by reason, decisions by stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from curate.errors import ConfigError
from curate.read.runs import RunReader
from curate.store import RunStore, merge_stats
from curate.synth import PRODUCERS


@dataclass
class RunSummary:
    """What a run folder holds: sources, quarantine, stages, contamination."""
    run_dir: Path
    recipe: str | None
    sources: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    stages: list[dict[str, Any]] = field(default_factory=list)
    contamination: list[dict[str, Any]] = field(default_factory=list)
    modalities: list[dict[str, Any]] = field(default_factory=list)
    """Per modality (text, image, grounding): rows ingested, rows every stage kept, their
    loss tokens (the mix's tokenizer, else the whitespace estimate; text as ingested),
    and the rows each stage removed."""
    synth: dict[str, Any] | None = None
    """The synthesis step's stats (recipes with ``synth``), as the step recorded them."""
    release: dict[str, Any] | None = None
    """The release the run last wrote: path, status, name, version, budget, composition,
    modality, benchmarks, contamination (``RunStore.release_record``)."""

    def to_json(self) -> dict[str, Any]:
        """The summary as JSON-ready data (``curate inspect --json``); keys are stable."""
        return {"run": str(self.run_dir), "recipe": self.recipe, "sources": self.sources,
                "quarantine": self.quarantine, "stages": self.stages,
                "contamination": [{k: v for k, v in c.items() if k != "examples"} | {
                    "examples": c.get("examples") or []} for c in self.contamination],
                "modalities": self.modalities, "synth": self.synth, "release": self.release}


def inspect_run(run_dir: str | Path) -> RunSummary:
    """Summarise a run folder (``runs/<recipe>/<run-id>``) from its markers and stats."""
    store = RunStore(Path(run_dir))
    info = store.run_info()
    if info is None:
        raise ConfigError(
            f"{store.root} is not a run folder (no run.json); runs live in runs/<recipe>/<run-id>"
        )
    summary = RunSummary(store.root, info["recipe"]["name"])
    entries = [(name, store.source(name), "source") for name in info["recipe"]["sources"]]
    entries += [(name, store.benchmark(name), "benchmark")
                for name in info["recipe"].get("benchmarks", [])]
    for name, folder, role in entries:
        state = folder.state() or {}
        stats = merge_stats(folder.done().values())
        status = "complete" if state.get("complete") else "failed" if state.get("error") else (
            "partial" if stats else "not started")
        summary.sources.append({
            "source": name,
            "role": role,
            "status": status,
            "rows": stats.get("rows", 0),
            "records": stats.get("records", 0),
            "quarantined": sum(stats.get("quarantined", {}).values()),
            "shards": len(folder.done()),
            "error": state.get("error"),
        })
        for reason, count in sorted(stats.get("quarantined", {}).items()):
            summary.quarantine.append({"source": name, "reason": reason, "rows": count})
    for name in info.get("stages", []):
        stage = store.stage(name)
        finished = stage.read_stats()
        if finished is not None:
            summary.stages.append({"stage": finished["stage"], "rows": finished["rows"],
                                   "kept": finished["kept"], "dropped": finished["dropped"],
                                   "reasons": finished["reasons"]})
    report = RunReader(store).report("contamination", info.get("stages", []))
    if report is not None:
        summary.contamination = report.to_dicts()
    summary.modalities = modality_counts(RunReader(store), info)
    for name in info["recipe"].get("synth") or {}:  # the producers' stats: the last one's
        summary.synth = (store.source(PRODUCERS.load(name).source).state() or {}).get("stats")
    summary.release = store.release_record()
    return summary


def modality_counts(run: RunReader, info: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows and loss tokens per modality of a run's sources: ingested, kept, removed by stage."""
    from curate.mixes.assemble import MODALITIES, candidates

    sources = [n for n in info["recipe"]["sources"] if run.record_files([n])]
    if not sources:
        return []
    stages = [n for n in info.get("stages", []) if run.store.stage(n).decisions.exists()]
    removed = run.removed(stages)
    mix = info["recipe"].get("mix") or {}
    every = candidates(run, sources, removed.head(0), mix.get("tokenizer"),
                       max_length=mix.get("max_length"), tokenizer_revision=mix.get("tokenizer_revision"))
    keys = ["source", "row"]
    kept = every.join(removed.select(keys), on=keys, how="anti")
    dropped = removed.join(every.select(*keys, "modality"), on=keys).group_by("modality", "stage").len()
    result = []
    for name in MODALITIES:
        rows = every.filter(pl.col("modality") == name)
        if rows.height == 0:
            continue
        mine = kept.filter(pl.col("modality") == name)
        by_stage = {stage: int(n) for _, stage, n in dropped.filter(pl.col("modality") == name)
                    .sort("stage").iter_rows()}
        result.append({"modality": name, "rows": rows.height, "kept": mine.height,
                       "kept_loss_tokens": int(mine.get_column("loss_tokens").sum()),
                       "removed_by_stage": {s: by_stage[s] for s in stages if s in by_stage}})
    return result
