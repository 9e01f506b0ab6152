"""How `curate rag` prints."""

from __future__ import annotations

from curate.cli.console import console
from curate.rag.exclusion import ContaminationCheck
from curate.rag.index import BuildResult, QueryHits


def indexed(result: BuildResult) -> None:
    """The chains of thought made (with ``rag cot``), and what the index gained."""
    out = console()
    cot = result.synth_cot
    if cot is not None:
        if cot.offline_backend:
            out.print("[bold]offline backend: template text for tests and demos; not a model's reasoning[/]")
        out.print(f"synth_cot_v1: {cot.synthetic} verified of {cot.rows}; rejected {cot.rejected or 'none'}")
    rate = result.records_per_second
    chunks = result.part.get("stats", {}).get("passages")
    if chunks is not None:
        out.print(f"{chunks['records']} records cut into {chunks['chunks']} passages of up to "
                  f"{chunks['chunk_words']} words ({chunks['chunk_overlap']} overlapping)")
    out.print(f"{result.index.path}: {result.added} records added from {result.input_name} "
              f"({result.already_indexed} already indexed"
              f"{f', {rate:,.0f} records/s embedded' if rate else ''}); "
              f"{len(result.index)} records in the index")


def found(results: list[QueryHits]) -> None:
    """One table per query: rank, cosine, id, source, question, whether it has a chain of thought."""
    from rich.table import Table

    for query in results:
        if query.prompt is not None:
            for message in query.prompt:
                console().print(message["role"], style="bold", markup=False)
                console().print(message["content"] + "\n", markup=False)
            continue
        title = query.query + (f" ({query.dropped} dropped by the similarity guard)" if query.dropped else "")
        table = Table("rank", "score", "id", "source", "question", "cot", title=title,
                      title_justify="left")
        for rank, hit in enumerate(query.hits, start=1):
            table.add_row(str(rank), f"{hit.score:.3f}", hit.id[:12], str(hit.source), hit.question[:80],
                          "yes" if hit.cot else "no")
        console().print(table)


def checked(check: ContaminationCheck) -> None:
    """How many records were checked and excluded, and the first twenty exclusions (all of
    them with `--out` or `--json`)."""
    out = console()
    out.print(f"{check.checked} records checked: {len(check.excluded)} contaminated "
              f"{check.by_benchmark or ''} {check.by_tier or ''}, {len(check.index)} kept")
    for e in check.excluded[:20]:
        score = "" if e.score is None else f" {e.score:.3f}"
        out.print(f"  {e.id[:12]} = {e.item} ({e.tier}{score}, {e.field})")
    if len(check.excluded) > 20:
        out.print(f"  ... {len(check.excluded) - 20} more: --out FILE or --json lists every one")
