"""How the one-file commands print what they wrote and removed."""

from __future__ import annotations

from curate.cli.console import console
from curate.cli.views.releases import contamination_tables
from curate.pipeline.adhoc import FileContamination, FileResult


def file_result(result: FileResult) -> None:
    """What was written, the contamination of the file, removals by reason, the reports."""
    from rich.table import Table

    out = console()
    if result.out is not None:
        out.print(f"wrote {result.out}: {result.rows:,} rows, {result.kept:,} kept")
    else:
        out.print(f"{result.rows:,} rows, {result.kept:,} kept")
    if result.kept_path is not None:
        repaired = result.written.repaired
        out.print(f"kept rows -> {result.kept_path} ({result.written.kept:,} rows"
                  + (f", {repaired:,} with repaired text)" if repaired else ")"))
    if result.removed_path is not None:
        out.print(f"removed rows -> {result.removed_path} ({result.written.removed:,} rows, "
                  "with `reason`)")
    if result.contamination is not None:
        out.print(contamination_line(result.contamination))
    if result.reasons:
        table = Table("reason", "rows", title="Removed by reason", title_justify="left")
        for reason, count in result.reasons.items():
            table.add_row(reason, f"{count:,}")
        out.print(table)
    for name, path in result.reports.items():
        rows = f" ({len(result.contamination_rows)} rows)" if name == "contamination" else ""
        out.print(f"{name} report: {path}{rows}")
    if result.contamination_rows:
        contamination_tables(result.contamination_rows)


def contamination_line(c: FileContamination) -> str:
    """The file's contamination and the rule the decision used."""
    rule = (f"rows judged one by one, no source rejection (a recipe's {c.recipe_rule:.1%} rule "
            + ("would have rejected the whole file; --reject-source-above applies it)"
               if c.recipe_would_reject else "would have kept the file)")
            if c.reject_source_above is None else f"--reject-source-above {c.reject_source_above:g}")
    return f"contaminated: {c.contaminated:,} of {c.rows:,} rows ({c.share:.2%}); {rule}"
