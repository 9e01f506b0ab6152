"""How `curate release` prints, and the composition and contamination tables other groups share."""

from __future__ import annotations

from pathlib import Path

import click

from curate.cli.console import console
from curate.mixes.publish import Pushed, ReleaseDiff
from curate.read.releases import ListedRelease, Release, Verification
from curate.read.views import Composition, ContaminationRow


def composition_table(composition: Composition, title: str) -> None:
    """Target and realised shares per category, the total, the modality line."""
    from rich.table import Table

    out = console()
    budget = composition.budget
    kept = any(s.kept_rows is not None for s in composition.shares)
    columns = ["category", "target", "realised", "loss tokens", "rows", *(["of rows kept"] if kept else [])]
    table = Table(*columns, title=title, title_justify="left",
                  caption=f"budget {budget.amount:,} {budget.unit.replace('_', ' ')}; "
                  f"loss tokens by {budget.counting}")
    for share in composition.shares:
        target = "-" if share.target is None else f"{share.target:.1%}"
        table.add_row(share.category, target, f"{share.realised:.2%}", f"{share.loss_tokens:,}",
                      f"{share.rows:,}", *([f"{share.kept_rows or 0:,}"] if kept else []))
    # The release holds whole records: its total (what `release ls` lists) is near the budget.
    table.add_row("total", "", "", f"{composition.loss_tokens:,}", f"{composition.rows:,}",
                  *([f"{sum(s.kept_rows or 0 for s in composition.shares):,}"] if kept else []), style="bold")
    out.print(table)
    if (binding := budget.binding()) is not None:
        out.print(binding, markup=False)
    modality = ", ".join(f"{m.modality} {m.loss_tokens_share:.1%} of loss tokens ({m.rows:,} rows)"
                         for m in composition.modality)
    out.print(f"modality: {modality}")


def contamination_tables(rows: list[ContaminationRow]) -> None:
    """Contaminated rows per source and benchmark (by tier), then examples beside their items."""
    from rich.table import Table

    tiers = list(rows[0].tiers) if rows else []
    table = Table("source", "benchmark", "contaminated", "share", *tiers, "source rejected",
                  title="Contamination", title_justify="left")
    for c in rows:
        table.add_row(c.source, c.benchmark, f"{c.contaminated:,}", f"{c.share:.2%}",
                      *(f"{c.tiers.get(t, 0):,}" for t in tiers), "yes" if c.source_rejected else "no")
    console().print(table)
    examples = Table("record", "record text", "benchmark item", "tier / field",
                     title="Contamination examples (record beside the item it matched)",
                     title_justify="left", show_lines=True)
    for c in rows:
        for e in (c.examples or [])[:2]:
            examples.add_row(e.record, e.record_text[:300], f"{e.item}\n{e.item_text[:300]}",
                             " / ".join(x for x in (e.tier, e.field) if x))
    if examples.row_count:
        console().print(examples)


def listing(releases: list[ListedRelease]) -> None:
    """One row per release."""
    from rich.table import Table

    table = Table("name", "version", "rows", "loss tokens", "path")
    for r in releases:
        table.add_row(r.name, r.version, f"{r.rows:,}", f"{r.loss_tokens:,}", r.path)
    console().print(table)


def release(opened: Release) -> None:
    """Composition, what each stage decided, and contamination."""
    composition_table(opened.composition, f"{opened.name} {opened.version}")
    for stage in opened.stages:
        reasons = ", ".join(f"{r} {n:,}" for r, n in stage.reasons.items()) or "nothing removed"
        console().print(f"{stage.stage}: {stage.rows:,} in, {stage.kept:,} kept ({reasons})")
    if opened.contamination:
        contamination_tables(opened.contamination)


def diff(result: ReleaseDiff) -> None:
    """Rows added, rows removed with B's reason, and the composition side by side."""
    from rich.table import Table

    out = console()
    added = Table("source", "rows added", title="Added in B", title_justify="left")
    for row in result.added:
        added.add_row(row.source, f"{row.len:,}")
    out.print(added)
    removed = Table("source", "stage", "reason", "rows", title="Removed in B", title_justify="left")
    for gone in result.removed:
        removed.add_row(gone.source, gone.stage or "-", gone.reason, f"{gone.len:,}")
    out.print(removed)
    shares = Table("category", "A", "B", "A rows", "B rows", title="Composition", title_justify="left")
    for c in result.composition:
        shares.add_row(c.category, "-" if c.a is None else f"{c.a:.2%}", f"{c.b:.2%}",
                       "-" if c.a_rows is None else f"{c.a_rows:,}", f"{c.b_rows:,}")
    out.print(shares)
    out.print(f"recipe changed: {'yes' if result.recipe_changed else 'no'}; "
              f"seeds {result.seed[0]} -> {result.seed[1]}")


def exported(path: Path) -> None:
    """Where the dataset was saved."""
    console().print(f"saved {path}")


def verification(result: Verification) -> None:
    """Every difference (on stderr), or that the release is intact."""
    if result.problems:
        click.echo(f"release {result.path} does not match its manifest ({len(result.problems)} differences):",
                   err=True)
        for problem in result.problems:
            click.echo(f"  {problem}", err=True)
        return
    console().print(f"release {result.name} {result.version} at {result.path}: all {result.files} files "
                    "match their sha256 in manifest.json, nothing else is there")


def _size(n: int) -> str:
    """A byte count as people read it: 812 B, 4.1 kB, 84.2 MB (powers of 1,000, as the Hub shows)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def pushed(result: Pushed) -> None:
    """What was uploaded (the URL, the commit, the pull request), or what would be."""
    out = console()
    if not result.uploaded:
        out.print(f"{result.reason}: would upload {len(result.files)} files "
                  f"({_size(result.total_bytes)}) to datasets/{result.repo} "
                  f"({'private' if result.private else 'public'} when created)"
                  + ("" if result.create_pr else f" and tag {result.tag}"), markup=False)
        width = max((len(_size(n)) for n in result.sizes.values()), default=0)
        for name in result.files:
            out.print(f"  {_size(result.sizes.get(name, 0)):>{width}}  {name}", markup=False)
    elif result.pr_url:
        out.print(f"opened pull request {result.pr_url} on {result.url} ({len(result.files)} files); "
                  f"tag {result.tag} after merging")
    else:
        out.print(f"uploaded {len(result.files)} files to {result.url} at {result.commit}, "
                  f"tagged {result.tag}")
