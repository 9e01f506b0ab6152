"""MCQA evaluation: benchmarks from the catalogs, a scorer, metrics, results on disk.

``evaluate_mcqa(benchmarks, config, out=...)`` reads each benchmark (any ``mcqa`` catalog
entry, local or hub), builds one prompt per item (``curate.evaluate.prompts``), scores
them (``curate.evaluate.scorers``) and writes into ``out``:

- ``predictions.parquet``: one row per item: ``benchmark``, ``item`` (``<benchmark>:<row>``),
  ``row``, ``id`` (record id), ``subject``, ``answer``, ``prediction`` (null: unreadable),
  ``correct``, ``scores`` (each option's log-likelihood), ``output`` (generated text),
  ``truncated``;
- ``results.json``: the model, revision, backend, mode, template name and hash, every
  option, per benchmark the accuracy with its interval, parse failures, position bias and
  per-subject accuracy, and, given a ``baseline`` (an earlier ``out`` folder), the paired
  comparison on the items both evaluated;
- ``report.md`` with ``accuracy.png`` and ``position_bias.png`` beside it.

The pieces are separate so a retrieval-augmented evaluation can reuse them: pass
``build`` (a function ``item -> Prompt``, e.g. ``build_prompt`` with few-shot examples
from an index) to ``predict``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import polars as pl

from curate.catalog import Catalog, resolve_data_root
from curate.errors import ConfigError
from curate.evaluate import metrics
from curate.evaluate.config import McqaConfig
from curate.evaluate.items import McqaItem, read_benchmark
from curate.evaluate.prompts import TEMPLATES, Prompt, Template, build_prompt
from curate.evaluate.scorers import Scorer, make_scorer
from curate.store import read_json, write_json, write_parquet

log = logging.getLogger(__name__)

PREDICTIONS = "predictions.parquet"
RESULTS = "results.json"
PREDICTION_SCHEMA: dict[str, Any] = {
    "benchmark": pl.String, "item": pl.String, "row": pl.Int64, "id": pl.String,
    "subject": pl.String, "answer": pl.Int32, "prediction": pl.Int32, "correct": pl.Boolean,
    "options": pl.Int32, "scores": pl.List(pl.Float64), "output": pl.String, "truncated": pl.Boolean,
}


@dataclass
class McqaResult:
    """What ``evaluate_mcqa`` wrote and computed."""

    out: Path
    results: dict[str, Any]
    predictions: pl.DataFrame

    @property
    def report(self) -> Path:
        """The markdown report."""
        return self.out / "report.md"


def template_for(config: McqaConfig) -> Template:
    """The template a mode uses: `letters` for log-likelihood, `cot` for generation."""
    return TEMPLATES["letters" if config.mode == "loglik" else "cot"]


def predict(items: Sequence[McqaItem], scorer: Scorer, *,
            build: Callable[[McqaItem], Prompt], batch_size: int = 64) -> pl.DataFrame:
    """Score every item (prompts from ``build``); one prediction row per item."""
    rows: list[dict[str, Any]] = []
    for start in range(0, len(items), batch_size):
        prompts = [build(item) for item in items[start:start + batch_size]]
        for prompt, scored in zip(prompts, scorer(prompts), strict=True):
            item = prompt.item
            choice = prompt.original(scored.choice)
            scores = None
            if scored.scores is not None:  # back in the original option order
                scores = [0.0] * len(scored.scores)
                for shown, value in enumerate(scored.scores):
                    scores[prompt.original(shown) or 0] = value
            rows.append({
                "benchmark": item.benchmark, "item": item.item, "row": item.row,
                "id": item.record_id, "subject": item.subject, "answer": item.answer,
                "prediction": choice, "correct": choice is not None and choice == item.answer,
                "options": len(item.options), "scores": scores, "output": scored.output,
                "truncated": scored.truncated,
            })
    return pl.DataFrame(rows, schema=PREDICTION_SCHEMA)


def summarize(predictions: pl.DataFrame, *, resamples: int = 1000, confidence: float = 0.95,
              seed: int = 0) -> dict[str, Any]:
    """Per benchmark: accuracy with its interval, parse failures, position bias, subjects."""
    stats: dict[str, Any] = {"resamples": resamples, "confidence": confidence, "seed": seed}
    out: dict[str, Any] = {}
    for (name,), frame in predictions.group_by("benchmark", maintain_order=True):
        correct = frame.get_column("correct").to_list()
        guesses = frame.get_column("prediction").to_list()
        answers = frame.get_column("answer").to_list()
        subjects = frame.get_column("subject").to_list()
        width: Any = frame.get_column("options").max()
        out[str(name)] = {
            "items": frame.height,
            "accuracy": metrics.accuracy(correct, **stats).to_dict(),
            "parse_failures": metrics.parse_failures(guesses),
            "position_bias": metrics.position_bias(guesses, answers, int(width or 0)),
            "subjects": {s: e.to_dict() for s, e in
                         metrics.by_subject(subjects, correct, **stats).items()},
            "truncated": int(frame.get_column("truncated").sum()),
        }
    return out


def compare(predictions: pl.DataFrame, baseline: pl.DataFrame, *, resamples: int = 1000,
            confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Paired comparison (this run = A, the baseline = B) per benchmark, on the items both
    evaluated (matched by item and record id)."""
    joined = predictions.select("benchmark", "item", "id", "correct").join(
        baseline.select("item", "id", correct_b="correct"), on=["item", "id"], how="inner")
    if joined.height == 0:
        raise ConfigError("the baseline evaluated none of these items (matched by item and "
                          "record id); compare runs over the same benchmarks")
    out = {}
    for (name,), frame in joined.sort("benchmark", "item").group_by("benchmark", maintain_order=True):
        out[str(name)] = metrics.paired(frame.get_column("correct").to_numpy(),
                                        frame.get_column("correct_b").to_numpy(),
                                        resamples=resamples, confidence=confidence, seed=seed)
    return out


def evaluate_mcqa(
    benchmarks: Sequence[str],
    config: McqaConfig,
    *,
    out: str | os.PathLike[str],
    baseline: str | os.PathLike[str] | None = None,
    catalog_dirs: Iterable[str | os.PathLike[str]] = (),
    data_root: str | os.PathLike[str] | None = None,
    scorer: Scorer | None = None,
) -> McqaResult:
    """Evaluate the model of ``config`` on ``benchmarks`` (catalog names); write ``out``.

    ``scorer``: an already built scorer (its model loaded once for several calls);
    default: built from ``config`` and closed at the end.
    """
    if not benchmarks:
        raise ConfigError("name at least one benchmark (see `curate catalog ls`)")
    catalog = Catalog.load(catalog_dirs)
    root = resolve_data_root(data_root)
    entries = [catalog.benchmark(name) for name in benchmarks]
    prior = _read_baseline(Path(baseline)) if baseline is not None else None
    template = template_for(config)
    started = time.perf_counter()
    items: list[McqaItem] = []
    for entry in entries:
        found = read_benchmark(entry, data_root=root).items(limit=config.limit)
        if not found:
            raise ConfigError(f"benchmark `{entry.name}` has no items with a gold answer to score")
        items += found
    own = scorer is None
    scorer = make_scorer(config) if scorer is None else scorer
    try:
        scoring = time.perf_counter()
        predictions = predict(items, scorer, build=lambda item: build_prompt(item, template),
                              batch_size=config.batch_size)
        scored_in = time.perf_counter() - scoring
        identity = scorer.identity()
    finally:
        if own:
            scorer.close()
    stats: dict[str, Any] = {"resamples": config.resamples, "confidence": config.confidence,
                             "seed": config.seed}
    results: dict[str, Any] = {
        **identity,
        "mode": config.mode,
        "template": {"name": template.name, "hash": template.hash},
        "options": config.model_dump(mode="json"),
        "offline_backend": identity["backend"] == "offline",
        "benchmarks": summarize(predictions, **stats),
        "catalog": {e.name: {"version": e.version, "location": e.location.model_dump(mode="json",
                                                                                      exclude_none=True)}
                    for e in entries},
        "versions": _versions(),
        "seconds": {"total": time.perf_counter() - started, "scoring": scored_in},
        "items_per_second": len(items) / scored_in if scored_in > 0 else None,
    }
    if prior is not None:
        results["comparison"] = {
            "baseline": {k: prior[1].get(k) for k in ("backend", "model", "revision", "mode")},
            "baseline_template": prior[1].get("template"),
            "benchmarks": compare(predictions, prior[0], **stats),
        }
        if prior[1].get("template", {}).get("hash") != template.hash:
            log.warning("the baseline used another prompt template (%s); its comparison mixes "
                        "prompts", prior[1].get("template"))
    folder = Path(out)
    write_parquet(predictions.to_arrow(), folder / PREDICTIONS)
    write_json(folder / RESULTS, results)
    from curate.evaluate.report import write_mcqa_report

    write_mcqa_report(results, folder)
    return McqaResult(out=folder, results=results, predictions=predictions)


def _read_baseline(folder: Path) -> tuple[pl.DataFrame, dict[str, Any]]:
    if not (folder / PREDICTIONS).is_file() or not (folder / RESULTS).is_file():
        raise ConfigError(f"baseline {folder}: expected the folder of an earlier `curate eval mcqa` "
                          f"(with {PREDICTIONS} and {RESULTS})")
    return pl.read_parquet(folder / PREDICTIONS), read_json(folder / RESULTS)


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for package in ("curate", "torch", "transformers", "vllm"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found
