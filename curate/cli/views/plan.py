"""How `curate plan` prints."""

from __future__ import annotations

from curate.cli.console import console
from curate.plan.estimate import Plan, fmt


def planned(plan: Plan) -> None:
    """The tokens per part, each workload's figures beside their assumptions, the total."""
    from rich.table import Table

    out = console()
    model = plan.model
    out.print(f"[bold]plan[/] for {plan.release}: model {model.name} ({model.parameters:.3g} parameters, "
              f"{model.matmul_parameters:.3g} in matrix multiplies), {plan.accelerator}")
    parts = Table("part", "method", "rows", "sequences", "loss tokens", "tokens per epoch", "mean sequence")
    for p in plan.parts:
        parts.add_row(p.part, p.method, f"{p.rows:,}", f"{p.sequences:,}", f"{p.loss_tokens:,}",
                      f"{p.tokens:,}", f"{p.mean_sequence:,.0f}")
    out.print(parts)
    for estimate in plan.estimates:
        table = Table("figure", "value", "assumption", title=estimate.workload, title_justify="left")
        for figure in estimate.figures:
            table.add_row(figure.name, fmt(figure.value, figure.unit), figure.assumption)
        out.print(table)
    total = plan.total
    if total is not None and len(plan.estimates) > 1:
        out.print(f"[bold]total[/]: {fmt(total.flops, 'FLOP')}, {fmt(total.accelerator_hours, 'h')} of "
                  f"accelerators, {fmt(total.wall_hours, 'h')} wall, {fmt(total.energy_kwh, 'kWh')}, "
                  f"{fmt(total.cost_usd, 'USD')}, {fmt(total.emissions_kg, 'kg CO2e')}")
    for line in [*plan.assumptions, f"{plan.accelerator}: {plan.accelerator_note}"]:
        out.print(f"- {line}")
