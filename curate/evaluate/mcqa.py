"""MCQA evaluation: benchmarks from the catalogs, a scorer, metrics, results on disk.

``evaluate_mcqa(benchmarks, config, out=...)`` reads each benchmark (any ``mcqa`` catalog
entry, local or hub), builds one prompt per item (``curate.evaluate.prompts``), scores
them (``curate.evaluate.scorers``) and writes into ``out``:

- ``predictions.parquet``: one row per item: ``benchmark``, ``item`` (``<benchmark>:<row>``),
  ``row``, ``id`` (record id), ``subject``, ``answer``, ``prediction`` (null: unreadable),
  ``correct``, ``scores`` (each option's log-likelihood), ``output`` (generated text),
  ``truncated``;
- ``results.json``: the model, revision, backend, mode, template name and hash, every
  option, per benchmark its ``denominator`` (rows read, items scored, rows dropped by the
  audit's code with their ids, items left out by ``limit``; a benchmark with more drops
  than ``allow_dropped`` is refused before any model loads), the accuracy with its
  interval, parse failures, position bias and
  per-subject accuracy, and, given a ``baseline`` (an earlier ``out`` folder), the paired
  comparison on the items both evaluated;
- ``report.md`` with ``accuracy.png`` and ``position_bias.png`` beside it.

With ``config.retrieval`` (an index of ``curate rag index``) the same run also evaluates
MedPrompt-style (``evaluate_retrieval``): the index is first opened for the evaluated
benchmarks with ``config.guard`` (``curate.rag.exclusion``: the decontamination stage's
tiers, then the similarity guard; flagged records are excluded and counted, and an
example too similar to its question is dropped at retrieval and counted), then each
item gets its ``k`` nearest examples as
few-shot turns (the most similar last, closest to the question) under ``shuffles``
distinct option orders; the answers, mapped back to the original letters, vote (ties:
seeded). ``predictions_retrieval.parquet`` holds those predictions (with each item's
``votes``, ``examples`` with their questions, and what the similarity guard dropped),
and ``results.json`` a ``retrieval`` section: the index, the contamination check (the
guard's decontamination tiers and its similarity tier against the evaluated items, every
exclusion listed) and the query-time drops, accuracy per benchmark, and the paired difference against the
zero-shot predictions of the same run.

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
from pathlib import Path
from typing import Any

import polars as pl

from curate.catalog import Catalog, resolve_data_root
from curate.errors import ConfigError
from curate.evaluate import metrics
from curate.evaluate.config import McqaConfig
from curate.evaluate.cost import evaluation_cost
from curate.evaluate.items import Denominator, McqaItem, read_benchmark
from curate.evaluate.prompts import TEMPLATES, Prompt, Template, build_prompt
from curate.evaluate.report import McqaSummary
from curate.evaluate.scorers import ChoiceScorer, Scored, make_scorer
from curate.plan.measure import Meter
from curate.store import read_json, write_json, write_parquet
from curate.version import installed_versions

log = logging.getLogger(__name__)

PREDICTIONS = "predictions.parquet"
RETRIEVAL_PREDICTIONS = "predictions_retrieval.parquet"
RESULTS = "results.json"
PREDICTION_SCHEMA: dict[str, Any] = {
    "benchmark": pl.String, "item": pl.String, "row": pl.Int64, "id": pl.String,
    "subject": pl.String, "answer": pl.Int32, "prediction": pl.Int32, "correct": pl.Boolean,
    "options": pl.Int32, "scores": pl.List(pl.Float64), "output": pl.String, "truncated": pl.Boolean,
    "attempts": pl.Int32,
}
RETRIEVAL_SCHEMA: dict[str, Any] = {**PREDICTION_SCHEMA, "votes": pl.List(pl.Int32),
                                    "examples": pl.List(pl.String), "example_questions": pl.List(pl.String),
                                    "similarities": pl.List(pl.Float64), "guard_dropped": pl.List(pl.String),
                                    "guard_similarities": pl.List(pl.Float64)}


@dataclass
class McqaResult:
    """What ``evaluate_mcqa`` wrote and computed."""

    out: Path
    results: dict[str, Any]
    predictions: pl.DataFrame
    retrieval: pl.DataFrame | None = None
    """The retrieval-augmented predictions (with ``config.retrieval``)."""

    @property
    def report(self) -> Path:
        """The markdown report."""
        return self.out / "report.md"

    @property
    def summary(self) -> McqaSummary:
        """What the command line prints of ``results``."""
        return McqaSummary.from_results(self.results)

    def to_json(self) -> dict[str, Any]:
        """``curate eval mcqa --json``: where the files went, and the results."""
        return {"out": str(self.out), "report": str(self.report), "results": self.results}


def template_for(config: McqaConfig) -> Template:
    """The template a mode uses: `letters` for log-likelihood, `cot` for generation."""
    return TEMPLATES["letters" if config.mode == "loglik" else "cot"]


def predict(items: Sequence[McqaItem], scorer: ChoiceScorer, *,
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
                "truncated": scored.truncated, "attempts": scored.attempts,
            })
    return pl.DataFrame(rows, schema=PREDICTION_SCHEMA)


def predict_ensemble(items: Sequence[McqaItem], scorer: ChoiceScorer, *,
                     build: Callable[[McqaItem], list[Prompt]], seed: int,
                     batch_size: int = 64) -> list[dict[str, Any]]:
    """Score every prompt of every item (``build`` gives one per option order); per item
    the answers mapped back to the original options and their vote (ties: seeded by the
    item). ``scores``: each original option's log-likelihood averaged over the orders."""
    from curate.rag.ensemble import item_seed, vote

    rows: list[dict[str, Any]] = []
    for start in range(0, len(items), max(1, batch_size // 4)):
        chunk = items[start:start + max(1, batch_size // 4)]
        prompts = [(n, p) for n, item in enumerate(chunk) for p in build(item)]
        scored = []
        for at in range(0, len(prompts), batch_size):
            scored += scorer([p for _, p in prompts[at:at + batch_size]])
        per_item: dict[int, list[tuple[Prompt, Scored]]] = {}
        for (n, prompt), result in zip(prompts, scored, strict=True):
            per_item.setdefault(n, []).append((prompt, result))
        for n, item in enumerate(chunk):
            pairs = per_item[n]
            votes = [prompt.original(result.choice) for prompt, result in pairs]
            choice = vote(votes, item_seed(seed, item.item))
            scores = None
            if all(result.scores is not None for _, result in pairs):
                totals = [0.0] * len(item.options)
                for prompt, result in pairs:
                    for shown, value in enumerate(result.scores or ()):
                        totals[prompt.original(shown) or 0] += value / len(pairs)
                scores = totals
            rows.append({
                "benchmark": item.benchmark, "item": item.item, "row": item.row, "id": item.record_id,
                "subject": item.subject, "answer": item.answer, "prediction": choice,
                "correct": choice is not None and choice == item.answer, "options": len(item.options),
                "scores": scores, "output": pairs[0][1].output,
                "truncated": any(r.truncated for _, r in pairs),
                "attempts": sum(r.attempts for _, r in pairs), "votes": votes,
            })
    return rows


def summarize(predictions: pl.DataFrame, *, resamples: int = 1000, confidence: float = 0.95,
              seed: int = 0) -> dict[str, Any]:
    """Per benchmark: accuracy with its interval, parse failures, position bias (letter
    frequencies; with a ``votes`` column, one answer per option order, also the per-item
    ``permutation_consistency``), subjects."""
    stats: dict[str, Any] = {"resamples": resamples, "confidence": confidence, "seed": seed}
    out: dict[str, Any] = {}
    for (name,), frame in predictions.group_by("benchmark", maintain_order=True):
        correct = frame.get_column("correct").to_list()
        guesses = frame.get_column("prediction").to_list()
        answers = frame.get_column("answer").to_list()
        subjects = frame.get_column("subject").to_list()
        width: Any = frame.get_column("options").max()
        bias = metrics.position_bias(guesses, answers, int(width or 0))
        if "votes" in frame.columns:  # one answer per option order: the per-item measure
            votes = frame.get_column("votes").to_list()
            bias["permutation_consistency"] = metrics.permutation_consistency(votes)
        out[str(name)] = {
            "items": frame.height,
            "accuracy": metrics.accuracy(correct, **stats).to_dict(),
            "parse_failures": metrics.parse_failures(guesses),
            "position_bias": bias,
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
    scorer: ChoiceScorer | None = None,
) -> McqaResult:
    """Evaluate the model of ``config`` on ``benchmarks`` (catalog names); write ``out``.

    ``scorer``: an already built scorer (its model loaded once for several calls);
    default: built from ``config`` and torn down at the end.
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
    records: dict[str, pl.DataFrame] = {}
    counts: dict[str, Denominator] = {}
    for entry in entries:
        data = read_benchmark(entry, data_root=root)
        found = data.items(limit=config.limit, subject_field=config.subject_field)
        if not found:
            raise ConfigError(f"benchmark `{entry.name}` has no items with a gold answer to score")
        counts[entry.name] = data.count(len(found))
        counts[entry.name].refuse(config.allow_dropped)
        items += found
        records[entry.name] = data.records
    index = None
    if config.retrieval is not None:
        from curate.rag.index import Index

        index = Index.open(config.retrieval, search=config.retrieval_search)  # fail before loading a model
    own = scorer is None
    scorer = make_scorer(config) if scorer is None else scorer
    try:
        scoring = time.perf_counter()
        meter = Meter()
        predictions = predict(items, scorer, build=lambda item: build_prompt(item, template),
                              batch_size=config.batch_size)
        scored_in = time.perf_counter() - scoring
        cost = evaluation_cost(meter, config.model, [build_prompt(item, template).text for item in items],
                               [o for o in predictions.get_column("output").to_list() if o])
        retrieval = None
        if index is not None:
            retrieval = evaluate_retrieval(items, scorer, index, records, config, template)
        identity = scorer.identity()
    finally:
        if own:
            scorer.teardown()
    stats: dict[str, Any] = {"resamples": config.resamples, "confidence": config.confidence,
                             "seed": config.seed}
    results: dict[str, Any] = {
        **identity,
        "mode": config.mode,
        "template": {"name": template.name, "hash": template.hash, "chat_template": config.chat_template},
        "options": config.model_dump(mode="json"),
        "offline_backend": identity["backend"] == "offline",
        "benchmarks": {name: {**b, "denominator": counts[name].to_json()}
                       for name, b in summarize(predictions, **stats).items()},
        "catalog": {e.name: {"version": e.version, "location": e.location.model_dump(mode="json",
                                                                                      exclude_none=True)}
                    for e in entries},
        "versions": installed_versions(("curate", "torch", "transformers", "vllm")),
        "seconds": {"total": time.perf_counter() - started, "scoring": scored_in},
        "items_per_second": len(items) / scored_in if scored_in > 0 else None,
        "cost": cost,
    }
    if retrieval is not None:
        results["retrieval"] = {
            **retrieval.summary,
            "benchmarks": summarize(retrieval.predictions, **stats),
            "versus_zero_shot": compare(retrieval.predictions, predictions, **stats),
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
    if retrieval is not None:
        write_parquet(retrieval.predictions.to_arrow(), folder / RETRIEVAL_PREDICTIONS)
    write_json(folder / RESULTS, results)
    from curate.evaluate.report import write_mcqa_report

    write_mcqa_report(results, folder)
    return McqaResult(out=folder, results=results, predictions=predictions,
                      retrieval=None if retrieval is None else retrieval.predictions)


@dataclass
class RetrievalRun:
    """The retrieval-augmented predictions and what results say about how they were made."""

    predictions: pl.DataFrame
    summary: dict[str, Any]


def evaluate_retrieval(items: Sequence[McqaItem], scorer: ChoiceScorer, index: Any,
                       benchmarks: dict[str, pl.DataFrame], config: McqaConfig,
                       template: Template) -> RetrievalRun:
    """MedPrompt over ``items``: the contamination check of ``index`` against ``benchmarks``,
    k nearest examples, option shuffles, the vote (see the module docstring)."""
    from curate.curation.embed import default_cache_dir
    from curate.rag.ensemble import item_seed, permutations
    from curate.rag.exclusion import check_index

    started = time.perf_counter()
    check = check_index(index, benchmarks, config.guard,
                        similar_to={item.item: (item.question, item.options) for item in items})
    clean = check.index
    if len(clean) == 0:
        raise ConfigError(f"retrieval index {config.retrieval}: no record is left after the contamination "
                          f"check ({check.summary()['excluded']} excluded); index other training data")
    checked_in = time.perf_counter() - started
    searching = time.perf_counter()
    found = clean.retrieve([item.question for item in items], k=config.k, cache=default_cache_dir())
    hits = [f.hits for f in found]
    searched_in = time.perf_counter() - searching
    shots = {item.item: [h.example() for h in reversed(found)]  # the most similar last
             for item, found in zip(items, hits, strict=True)}

    def build(item: McqaItem) -> list[Prompt]:
        orders = permutations(len(item.options), config.shuffles, item_seed(config.seed, item.item))
        return [build_prompt(item, template, examples=shots[item.item], order=order) for order in orders]

    scoring = time.perf_counter()
    rows = predict_ensemble(items, scorer, build=build, seed=config.seed, batch_size=config.batch_size)
    for row, got in zip(rows, found, strict=True):
        row["examples"] = [h.id for h in got.hits]
        row["example_questions"] = [h.question for h in got.hits]
        row["similarities"] = [h.score for h in got.hits]
        row["guard_dropped"] = [h.id for h in got.dropped]
        row["guard_similarities"] = [h.score for h in got.dropped]
    predictions = pl.DataFrame(rows, schema=RETRIEVAL_SCHEMA)
    manifest = index.manifest
    with_cot = int(clean.records.get_column("cot").is_not_null().sum())
    summary = {
        "index": str(config.retrieval), "search": config.retrieval_search, "k": config.k,
        "shuffles": config.shuffles, "embedder": manifest.get("embedder"),
        "records": len(index), "records_with_cot": with_cot,
        "release_manifests": sorted({p["release_manifest_sha256"] for p in manifest.get("parts", [])
                                     if p.get("release_manifest_sha256")}),
        "contamination": check.summary(),
        "guard": {**config.guard.model_dump(mode="json"),
                  "dropped_at_query": sum(len(f.dropped) for f in found),
                  "items_with_drops": sum(1 for f in found if f.dropped)},
        "prompts": int(sum(len(v) for v in predictions.get_column("votes").to_list())),
        "seconds": {"contamination_check": checked_in, "search": searched_in,
                    "scoring": time.perf_counter() - scoring},
    }
    return RetrievalRun(predictions=predictions, summary=summary)


def _read_baseline(folder: Path) -> tuple[pl.DataFrame, dict[str, Any]]:
    if not (folder / PREDICTIONS).is_file() or not (folder / RESULTS).is_file():
        raise ConfigError(f"baseline {folder}: expected the folder of an earlier `curate eval mcqa` "
                          f"(with {PREDICTIONS} and {RESULTS})")
    return pl.read_parquet(folder / PREDICTIONS), read_json(folder / RESULTS)


