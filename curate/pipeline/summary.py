"""What a run folder holds: rows per source, quarantine by reason, decisions by stage."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from curate.errors import ConfigError
from curate.read.runs import RunReader
from curate.read.views import ContaminationRow, CotStats, ReleaseRecord, StageCounts
from curate.store import RunStore, merge_stats
from curate.synth import PRODUCERS


@dataclass(frozen=True)
class SourceSummary:
    """One source or benchmark of a run: how far its ingestion got, and what it read."""

    source: str
    role: str
    """``source`` or ``benchmark``."""
    status: str
    """``complete``, ``partial``, ``failed`` or ``not started``."""
    rows: int
    records: int
    quarantined: int
    shards: int
    error: str | None


@dataclass(frozen=True)
class QuarantineCount:
    """Rows of one source that one reason kept from becoming records."""

    source: str
    reason: str
    rows: int


@dataclass(frozen=True)
class ModalityCount:
    """One modality of a run's sources: rows ingested, rows every stage kept, their loss
    tokens (the mix's tokenizer, else the whitespace estimate; text as ingested), and the
    rows each stage removed."""

    modality: str
    rows: int
    kept: int
    kept_loss_tokens: int
    removed_by_stage: dict[str, int]


@dataclass
class RunSummary:
    """What a run folder holds: sources, quarantine, stages, contamination, synthesis and
    the release it last wrote."""

    run_dir: Path
    recipe: str | None
    sources: list[SourceSummary] = field(default_factory=list)
    quarantine: list[QuarantineCount] = field(default_factory=list)
    stages: list[StageCounts] = field(default_factory=list)
    contamination: list[ContaminationRow] = field(default_factory=list)
    modalities: list[ModalityCount] = field(default_factory=list)
    synth: dict[str, Any] | None = None
    """The stats of the recipe's producer step (``synth``), as the step recorded them."""
    release: ReleaseRecord | None = None
    """The release the run last wrote (``RunStore.release_record``)."""

    @property
    def cot(self) -> CotStats | None:
        """``synth`` as synth_cot_v1's stats (None without synthesis, or for another producer)."""
        return None if self.synth is None else CotStats.from_json(self.synth)

    def to_json(self) -> dict[str, Any]:
        """The summary as JSON-ready data (``curate inspect --json``); keys are stable."""
        return {"run": str(self.run_dir), "recipe": self.recipe,
                "sources": [asdict(s) for s in self.sources],
                "quarantine": [asdict(q) for q in self.quarantine],
                "stages": [asdict(s) for s in self.stages],
                "contamination": [{**c.to_json(), "examples": c.to_json().get("examples") or []}
                                  for c in self.contamination],
                "modalities": [asdict(m) for m in self.modalities], "synth": self.synth,
                "release": None if self.release is None else self.release.to_json()}


def inspect_run(run_dir: str | Path) -> RunSummary:
    """Summarise a run folder (``runs/<recipe>/<run-id>``) from its markers and stats."""
    store = RunStore(Path(run_dir))
    info = store.run_info()
    if info is None:
        raise ConfigError(
            f"{store.root} is not a run folder (no run.json); runs live in runs/<recipe>/<run-id>"
        )
    run = RunReader(store)
    summary = RunSummary(store.root, info["recipe"]["name"])
    entries = [(name, store.source(name), "source") for name in info["recipe"]["sources"]]
    entries += [(name, store.benchmark(name), "benchmark")
                for name in info["recipe"].get("benchmarks", [])]
    for name, folder, role in entries:
        state = folder.state() or {}
        stats = merge_stats(folder.done().values())
        status = "complete" if state.get("complete") else "failed" if state.get("error") else (
            "partial" if stats else "not started")
        summary.sources.append(SourceSummary(
            name, role, status, stats.get("rows", 0), stats.get("records", 0),
            sum(stats.get("quarantined", {}).values()), len(folder.done()), state.get("error")))
        summary.quarantine += [QuarantineCount(name, reason, count)
                               for reason, count in sorted(stats.get("quarantined", {}).items())]
    for name in info.get("stages", []):
        finished = store.stage(name).read_stats()
        if finished is not None:
            summary.stages.append(StageCounts.from_json(finished))
    report = run.report("contamination", info.get("stages", []))
    if report is not None:
        summary.contamination = [ContaminationRow.from_json(r) for r in report.to_dicts()]
    summary.modalities = modality_counts(run, info)
    for name in info["recipe"].get("synth") or {}:  # the producers' stats: the last one's
        summary.synth = (store.source(PRODUCERS.load(name).source).state() or {}).get("stats")
    record = store.release_record()
    summary.release = None if record is None else ReleaseRecord.from_json(record)
    return summary


def modality_counts(run: RunReader, info: dict[str, Any]) -> list[ModalityCount]:
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
        result.append(ModalityCount(name, rows.height, mine.height, int(mine.get_column("loss_tokens").sum()),
                                    {s: by_stage[s] for s in stages if s in by_stage}))
    return result
