"""How `curate eval` and `curate audit` print."""

from __future__ import annotations

import click

from curate.cli.console import console
from curate.evaluate.audit import COUNTED, AuditResult
from curate.evaluate.lm_eval_export import LmEvalTask
from curate.evaluate.mcqa import McqaResult
from curate.evaluate.report import dropped_text
from curate.evaluate.safety import SafetyReport


def safety_report(report: SafetyReport) -> None:
    """The markdown report, then the files written."""
    click.echo(report.report.read_text(encoding="utf-8"))
    click.echo(f"wrote {', '.join(str(p) for p in report.files.values())}")


def mcqa(result: McqaResult) -> None:
    """Accuracy per benchmark with its interval, retrieval against zero-shot, the baseline."""
    from rich.table import Table

    out = console()
    summary = result.summary
    if summary.offline_backend:
        out.print("[bold]offline backend: template text for tests and demos; these numbers measure "
                  "no model[/]")
    table = Table("benchmark", "scored", "read", "dropped", "accuracy", f"{summary.level}% interval",
                  "parse failures", "position bias (TV)", title_justify="left",
                  title=f"{summary.model} ({summary.backend}, {summary.mode}, "
                  f"template {summary.template_hash})")
    for row in summary.rows:
        table.add_row(row.benchmark, f"{row.items:,}", "n/a" if row.read is None else f"{row.read:,}",
                      dropped_text(row.dropped), f"{row.accuracy:.1%}",
                      f"{row.low:.1%} to {row.high:.1%}", f"{row.parse_failure_rate:.1%}",
                      f"{row.position_bias_tv:.3f}")
    out.print(table)
    if summary.retrieval_k is not None:
        out.print(f"retrieval (k {summary.retrieval_k}, {summary.retrieval_shuffles} shuffles): "
                  f"{summary.retrieval_excluded} of {summary.retrieval_checked} index records excluded "
                  f"as contaminated; {summary.retrieval_guard_dropped or 0} retrieved examples dropped "
                  "by the similarity guard")
    for c in summary.versus_zero_shot:
        out.print(f"{c.benchmark}: retrieval {c.accuracy_a:.1%} vs zero-shot {c.accuracy_b:.1%}, "
                  f"difference {c.difference:+.1%} ({c.low:+.1%} to {c.high:+.1%}), "
                  f"McNemar p {c.mcnemar_p:.3g}")
    for c in summary.versus_baseline:
        out.print(f"{c.benchmark}: {c.accuracy_a:.1%} vs baseline {c.accuracy_b:.1%}, difference "
                  f"{c.difference:+.1%} ({c.low:+.1%} to {c.high:+.1%}), McNemar p {c.mcnemar_p:.3g}")
    out.print(f"wrote {result.out}: results.json, predictions.parquet, {result.report.name}")


def exported(task: LmEvalTask) -> None:
    """The task written, and how lm_eval runs it."""
    out = console()
    out.print(f"wrote task `{task.name}`: {task.items:,} items of {task.denominator.read:,} rows read, "
              f"{dropped_text(task.denominator.dropped)} dropped: {task.config}")
    out.print(f"run: lm_eval --model hf --model_args pretrained=MODEL --include_path {task.folder.parent} "
              f"--tasks {task.name}")


def audited(result: AuditResult) -> None:
    """One row per benchmark: rows, flawed items, fitness, flaws by kind."""
    from rich.table import Table

    table = Table("benchmark", "rows", "flawed", "share", "fit", *COUNTED, "repeated stem", "shared",
                  title="Benchmark audit", title_justify="left")
    for row in result.rows:
        table.add_row(row.benchmark, f"{row.rows:,}", f"{row.flawed:,}", f"{row.share:.2%}",
                      "yes" if row.fit else "[red]unfit[/]", *(f"{row.flaws[f]:,}" for f in COUNTED),
                      f"{row.repeated_stem:,}", f"{row.shared_items:,}")
    console().print(table)
    if result.out is not None:
        console().print(f"wrote {result.out}: audit.json, audit.md")
