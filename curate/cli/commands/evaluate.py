"""`curate eval mcqa|safety|export-lm-eval` and `curate audit`."""

from __future__ import annotations

from typing import Any

import click

from curate.catalog import CatalogConfig
from curate.cli import Group
from curate.cli.commands.catalog import catalog_options
from curate.cli.commands.rag import guard_options
from curate.cli.console import json_option, show
from curate.cli.options import config_options, given, settings, union_options
from curate.cli.views import evaluate as view
from curate.evaluate.config import AuditConfig, AuditFiles, ExportFiles, McqaConfig, McqaFiles
from curate.evaluate.safety import SafetyEvalConfig, SafetyEvalFiles
from curate.synth.config import GENERATORS


@click.group(cls=Group, name="eval")
def eval_() -> None:
    """Evaluate models: MCQA benchmarks, safety."""


@eval_.command("safety")
@config_options(SafetyEvalFiles, at=["files"], rename={"config_path": "config"})
@catalog_options()
@config_options(SafetyEvalConfig, at=["eval"], rename={"sources": "source", "styles": "style"})
@json_option
def eval_safety(as_json: bool, **_: Any) -> None:
    """Measure a model's safety: attack success rate (judged in the Llama Guard 3 format)
    overall, per topic and per attack style with Wilson intervals; over-refusal on XSTest's
    safe prompts; the judge's agreement with XSTest's human labels (Cohen's kappa).
    Options given here override the --config file.
    """
    from curate.catalog import Catalog
    from curate.config import read_config
    from curate.evaluate.safety import evaluate_safety

    options = settings(click.get_current_context())
    files = SafetyEvalFiles.model_validate(options["files"])
    where = CatalogConfig.model_validate(options.get("catalog", {}))
    config = read_config(SafetyEvalConfig, files.config_path, options.get("eval", {}))
    report = evaluate_safety(config, files.out, catalog=Catalog.load(where.catalog_dirs),
                             data_root=where.data_root)
    show(report, as_json, view.safety_report)


@eval_.command("mcqa")
@click.argument("benchmarks", nargs=-1, required=True)
@config_options(McqaFiles, at=["files"])
@catalog_options()
@union_options(GENERATORS, discriminator="backend", at=["mcqa", "model"],
               rename={"batch_size": "model_batch_size"})
@config_options(McqaConfig, at=["mcqa"], skip=["model", "guard"])
@guard_options(["mcqa", "guard"])
@json_option
def eval_mcqa(benchmarks: tuple[str, ...], as_json: bool, **_: Any) -> None:
    """Evaluate a model on MCQA BENCHMARKS (catalog names): accuracy with bootstrap
    intervals, parse failures, position bias, per-subject accuracy.

    `--mode loglik` (backends transformers, vllm) scores the option letters in one forward
    pass (`--chat-template`: inside the model's chat template); `--mode generate` (any
    backend, `openai` for OpenAI-compatible endpoints) extracts the answer from a chain of
    thought. With `--baseline`, the paired difference of the two models and its interval.

    Every row is scored or dropped with the audit's reason, and the counts are printed and
    kept in results.json; a benchmark with dropped rows is refused unless `--allow-dropped N`.
    With `--retrieval INDEX`, the index is opened for the benchmarks through the guard (the
    same options as `curate rag check`).
    """
    from curate.config import validate_model
    from curate.evaluate.mcqa import evaluate_mcqa

    options = settings(click.get_current_context())
    config = validate_model(McqaConfig, options.get("mcqa", {}), where="options")
    show(evaluate_mcqa(benchmarks, config, **options["files"], **options.get("catalog", {})), as_json,
         view.mcqa)


@eval_.command("export-lm-eval")
@click.argument("benchmark")
@config_options(ExportFiles, at=["files"])
@config_options(McqaConfig, at=["mcqa"], only=["limit", "allow_dropped"])
@catalog_options()
@json_option
def eval_export_lm_eval(benchmark: str, as_json: bool, **_: Any) -> None:
    """Export BENCHMARK as an lm-evaluation-harness task (YAML and data file) with the items
    and prompts of `curate eval mcqa`, for `lm_eval --include_path OUT --tasks curate_NAME`.

    Rows that cannot be scored are refused unless `--allow-dropped N`, and counted in the
    YAML's metadata. `--num-fewshot K --fewshot-from DEV` puts the first K items of DEV before
    each question (lm-eval's fixed `first_n` sampler)."""
    from curate.evaluate.lm_eval_export import export_lm_eval

    options = settings(click.get_current_context())
    task = export_lm_eval(benchmark, **options["files"], **options.get("mcqa", {}),
                          **options.get("catalog", {}))
    show(task, as_json, view.exported)


@click.command("audit")
@click.argument("benchmarks", nargs=-1, required=True)
@config_options(AuditFiles, at=["files"])
@catalog_options()
@config_options(AuditConfig, at=["audit"], skip=["decontam"])
@json_option
def audit(benchmarks: tuple[str, ...], as_json: bool, **_: Any) -> None:
    """Audit BENCHMARKS (catalog names) as evaluation sets: answers not among the options,
    empty or truncated options, unreadable images, conflicting and duplicate items,
    repeated stems, items shared between the benchmarks (decontamination tiers). Also
    duplicate options, a gold answer given away by the stem, and all/none-of-the-above
    keys (noted). A benchmark with more than `--unfit-above` flawed items is marked unfit."""
    from curate.config import validate_model
    from curate.evaluate.audit import audit as run

    options = settings(click.get_current_context())
    config = validate_model(AuditConfig, options.get("audit", {}), where="options")
    show(run(given(click.get_current_context())["benchmarks"], config, **options.get("files", {}),
             **options.get("catalog", {})), as_json, view.audited)
