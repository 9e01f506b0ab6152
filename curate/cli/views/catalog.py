"""How `curate catalog` prints."""

from __future__ import annotations

from curate.catalog import Catalog
from curate.cli.console import console
from curate.ingest.check import AddedEntry, CatalogCheck


def catalog_listing(catalog: Catalog) -> None:
    """Every source, benchmark and mix, one row each."""
    from rich.table import Table

    table = Table("section", "name", "kind", "domain", "license", "location")
    for section, entries in (("source", catalog.sources), ("benchmark", catalog.benchmarks)):
        for name, entry in entries.items():
            location = entry.location
            where = location.path if location.path else f"hf:{location.hf.repo}" if location.hf else ""
            table.add_row(section, name, entry.mapping.kind, entry.domain, entry.license, where)
    for name, recipe in catalog.mixes.items():
        table.add_row("mix", name, "recipe", "", "", f"{len(recipe.sources)} sources")
    console().print(table)


def catalog_check(result: CatalogCheck) -> None:
    """One line per entry checked, then the count of valid entries."""
    out = console()
    for check in result.checks:
        mark = "[green]ok[/]  " if check.ok else "[red]FAIL[/]"
        out.print(f"{mark} {check.entry:<24} {check.message}")
    out.print(f"{result.valid} of {len(result.checks)} entries valid")


def added(result: AddedEntry) -> None:
    """The file written, how the entry reads its data, and its check."""
    mapping = result.entry.mapping.model_dump(exclude_defaults=True, exclude={"kind"})
    console().print(f"wrote {result.path}: {result.entry.name}, {result.entry.license}, "
                    f"{result.entry.domain}; turns from {mapping}; {result.check.message}", markup=False)
