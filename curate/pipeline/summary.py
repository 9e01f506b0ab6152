"""What a run folder holds: rows per source, quarantine by reason, decisions by stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from curate.errors import ConfigError
from curate.store import RunStore, merge_stats


@dataclass
class RunSummary:
    run_dir: Path
    recipe: str | None
    sources: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    stages: list[dict[str, Any]] = field(default_factory=list)
    contamination: list[dict[str, Any]] = field(default_factory=list)


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
        folder = store.stage(name)
        stats = folder.read_stats()
        if stats is not None:
            summary.stages.append({"stage": stats["stage"], "rows": stats["rows"],
                                   "kept": stats["kept"], "dropped": stats["dropped"],
                                   "reasons": stats["reasons"]})
        report = folder.report("contamination")
        if report.exists():
            summary.contamination = pl.read_parquet(report).to_dicts()
    return summary
