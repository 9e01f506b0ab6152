"""Allocation: which kept records go into the mix, so that every target share holds.

1. Cells are (category, modality). The budget splits across cells so that each
   category's (and, if given, each modality's) total is its share, within what each cell
   really has after curation (a small linear program when modality targets are given;
   otherwise each category splits across modalities in proportion to what it has). With
   no budget, the largest one the data allows is used.
2. Inside a cell, sources share the cell by temperature sampling: weight ~
   ``weight * size**(1/temperature)``, capped by what a source has (and by ``caps``),
   the excess going to the others.
3. Inside a source, records come in a seeded random order; the sources of a cell are
   interleaved so each advances at its share, and the cell is cut where it comes
   closest to its allocation (so rounding costs at most one record per cell). Repeats
   happen only when the recipe allows them, as explicit passes over a source, counted.

An infeasible recipe fails here, before a release is written, naming each category
that lacks units and by how much.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from curate.catalog import MixSpec
from curate.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class Allocation:
    """The records a mix chose, its budget, target vs realised shares, and what bound the
    budget (``bound_by``)."""
    selected: pl.DataFrame  # source, row, id, category, modality, loss_tokens, repeat
    budget: int
    composition: list[dict[str, object]]
    bound_by: dict[str, Any] = field(default_factory=lambda: {"kind": "none"})
    """What set the budget: ``{"kind": "budget"}`` (the recipe's ``mix.budget``),
    ``{"kind": "category" | "modality", "name", "target", "kept"}`` (the largest budget the
    kept records allow: ``name``'s ``kept`` units are all its ``target`` share can take),
    or ``{"kind": "none"}`` (no mix: every kept record)."""


def _rng(seed: int, *parts: str) -> np.random.Generator:
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _fmt(units: float, unit: str) -> str:
    return f"{units:,.0f} {unit.replace('_', ' ')}"


class InfeasibleMix(ConfigError):
    """A mix the kept records cannot meet. ``empty`` names the target categories that have
    no kept record at all (the caller can say where their records went)."""

    def __init__(self, message: str, empty: list[str] | None = None) -> None:
        super().__init__(message)
        self.empty = list(empty or [])


def cell_budgets(available: pl.DataFrame, spec: MixSpec) -> tuple[int, dict[tuple[str, str], float]]:
    """The budget and its split over (category, modality) cells; InfeasibleMix if infeasible."""
    have = {(c, m): float(u) for c, m, u in available.iter_rows()}
    per_category = {c: sum(u for (cc, _), u in have.items() if cc == c) for c in spec.targets}
    per_modality = {m: sum(u for (_, mm), u in have.items() if mm == m) for m in (spec.modality or {})}
    unknown = sorted({c for c, _ in have} - set(spec.targets))
    limits = [per_category[c] / t for c, t in spec.targets.items() if t > 0]
    limits += [per_modality[m] / t for m, t in (spec.modality or {}).items() if t > 0]
    largest = min(limits) if limits else 0.0
    budget = spec.budget if spec.budget is not None else int(largest)
    empty = [c for c, t in spec.targets.items() if t > 0 and per_category[c] <= 0]
    if empty and spec.budget is None:  # (with a budget, the deficits below name them)
        others = [f"`{c}` has {_fmt(per_category[c], spec.unit)}" for c in spec.targets if c not in empty]
        raise InfeasibleMix(
            "the mix is infeasible: " + "; ".join(
                f"`{c}` (target {spec.targets[c]:.0%}) has no kept record" for c in empty)
            + (f" ({', '.join(others)})" if others else "")
            + ". Add sources for it, loosen the stage that removed its records, or take it out "
            "of `mix.targets`", empty)
    if not spec.allow_repeats and budget > largest + 1e-9:
        short = [
            f"`{c}` needs {_fmt(t * budget, spec.unit)} but has {_fmt(per_category[c], spec.unit)}"
            for c, t in spec.targets.items() if t * budget > per_category[c]
        ] + [
            f"modality `{m}` needs {_fmt(t * budget, spec.unit)} but has {_fmt(per_modality[m], spec.unit)}"
            for m, t in (spec.modality or {}).items() if t * budget > per_modality[m]
        ]
        raise InfeasibleMix(
            "the mix is infeasible: " + "; ".join(short) + f". Lower `mix.budget` to at most "
            f"{int(largest):,}, change the shares, add sources, or set `allow_repeats: true`"
            + (f" (categories not in `targets` are left out: {', '.join(unknown)})" if unknown else ""),
            empty)
    if budget <= 0:
        raise ConfigError("the mix is empty: no kept record falls in a category of `mix.targets`")
    if spec.modality is None:
        split = {
            (c, m): spec.targets[c] * budget * u / per_category[c]
            for (c, m), u in have.items() if c in spec.targets and per_category[c] > 0
        }
        return budget, split
    return budget, _solve_cells(have, spec, budget)


def bound_by(available: pl.DataFrame, spec: MixSpec) -> dict[str, Any]:
    """What sets the size of a mix over ``available`` units per (category, modality): the
    recipe's budget, or, with none, the category (or modality) whose kept units run out
    first at its target share (the first in recipe order on a tie)."""
    if spec.budget is not None:
        return {"kind": "budget", "amount": spec.budget}
    have = {(c, m): float(u) for c, m, u in available.iter_rows()}
    limits = [("category", c, t, sum(u for (cc, _), u in have.items() if cc == c))
              for c, t in spec.targets.items() if t > 0]
    limits += [("modality", m, t, sum(u for (_, mm), u in have.items() if mm == m))
               for m, t in (spec.modality or {}).items() if t > 0]
    if not limits:
        return {"kind": "none"}
    kind, name, target, kept = min(limits, key=lambda x: x[3] / x[2])
    return {"kind": kind, "name": name, "target": target, "kept": int(kept)}


def _solve_cells(have: dict[tuple[str, str], float], spec: MixSpec, budget: int
                 ) -> dict[tuple[str, str], float]:
    from scipy.optimize import linprog

    assert spec.modality is not None
    cells = [cell for cell in sorted(have) if cell[0] in spec.targets and cell[1] in spec.modality]
    rows, rhs = [], []
    for c, share in spec.targets.items():
        rows.append([1.0 if cell[0] == c else 0.0 for cell in cells])
        rhs.append(share * budget)
    for m, share in spec.modality.items():
        rows.append([1.0 if cell[1] == m else 0.0 for cell in cells])
        rhs.append(share * budget)
    upper = None if spec.allow_repeats else [have[cell] for cell in cells]
    result = linprog(np.zeros(len(cells)), A_eq=np.array(rows), b_eq=np.array(rhs),
                     bounds=[(0, u) for u in upper] if upper else (0, None), method="highs")
    if not result.success:
        raise InfeasibleMix(
            "the mix is infeasible: no split of the budget meets both the category and the "
            "modality shares with the records each (category, modality) pair has; "
            "relax `mix.modality` or `mix.targets`, or lower `mix.budget`")
    return {cell: float(x) for cell, x in zip(cells, result.x)}


def _share_out(amount: float, size: np.ndarray, weight: np.ndarray, limit: np.ndarray | None
               ) -> np.ndarray:
    """Split ``amount`` in proportion to ``weight``, never above ``limit`` (water-filling)."""
    share = np.zeros(len(size))
    open_ = weight > 0
    left = amount
    while left > 1e-9 and open_.any():
        part = left * weight * open_ / (weight * open_).sum()
        if limit is None:
            return share + part
        room = limit - share
        take = np.minimum(part, room)
        share += take
        left -= take.sum()
        open_ &= share < limit - 1e-9
    return share


def apply_caps(candidates: pl.DataFrame, spec: MixSpec, seed: int) -> pl.DataFrame:
    """Keep at most ``caps[source]`` records of a capped source, chosen in a seeded order."""
    if not spec.caps:
        return candidates
    parts = []
    for (name,), pool in candidates.group_by("source", maintain_order=True):
        cap = spec.caps.get(str(name))
        parts.append(pool if cap is None else _shuffled(pool, _rng(seed, "cap", str(name))).head(cap))
    return pl.concat(parts)


def _shuffled(pool: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    return pool.sort("row").with_columns(_key=pl.Series(rng.permutation(pool.height))).sort(
        "_key").drop("_key")


def allocate(candidates: pl.DataFrame, spec: MixSpec, seed: int) -> Allocation:
    """Choose records from ``candidates`` (source, row, id, category, modality,
    loss_tokens); a record counts ``loss_tokens`` units, or one when the unit is rows."""
    kept = candidates.group_by("category").agg(pl.col("loss_tokens").sum(), pl.len())
    candidates = apply_caps(candidates, spec, seed).with_columns(
        units=pl.col("loss_tokens").cast(pl.Float64) if spec.unit == "loss_tokens"
        else pl.lit(1.0))
    available = candidates.group_by("category", "modality").agg(pl.col("units").sum()).sort(
        "category", "modality")
    budget, cells = cell_budgets(available, spec)
    log.debug("budget %s %s; cells %s", f"{budget:,}", spec.unit,
              {f"{c}/{m}": round(a) for (c, m), a in sorted(cells.items())})
    chosen = []
    for (category, modality), amount in sorted(cells.items()):
        in_cell = candidates.filter((pl.col("category") == category) & (pl.col("modality") == modality))
        sources = in_cell.group_by("source").agg(pl.col("units").sum().alias("size")).sort("source")
        names = sources.get_column("source").to_list()
        size = sources.get_column("size").to_numpy().astype(float)
        weight = np.array([spec.weights.get(n, 1.0) for n in names]) * size ** (1 / spec.temperature)
        limit = None if spec.allow_repeats else size
        streams = [
            _stream(_shuffled(in_cell.filter(pl.col("source") == name),
                              _rng(seed, category, modality, name)), target, spec.allow_repeats)
            for name, target in zip(names, _share_out(amount, size, weight, limit)) if target > 0
        ]
        if streams:
            chosen.append(_take(pl.concat(streams), amount))
    selected = (pl.concat(chosen) if chosen else candidates.head(0).with_columns(
        repeat=pl.lit(0, pl.Int32), _progress=pl.lit(0.0))).drop("units", "_progress")
    shares = composition(selected, spec.targets, spec.unit)
    have = {c: (int(t), int(r)) for c, t, r in kept.iter_rows()}
    for share in shares:  # what every stage kept (before caps), beside what the mix took
        share["kept_loss_tokens"], share["kept_rows"] = have.get(str(share["category"]), (0, 0))
    off = [c for c in shares if abs(c["realised"] - c["target"]) > spec.tolerance]
    if off:
        largest = int(candidates.get_column("units").max() or 0)  # type: ignore[arg-type]
        raise ConfigError(
            "the budget is too small to meet the shares with whole records: "
            + "; ".join(f"`{c['category']}` would be {c['realised']:.2%} for a target of "
                        f"{c['target']:.2%}" for c in off)
            + f" (records hold up to {largest:,} {spec.unit.replace('_', ' ')}); raise "
            "`mix.budget` or `mix.tolerance`")
    return Allocation(selected, budget, shares, bound_by(available, spec))


def _stream(pool: pl.DataFrame, target: float, allow_repeats: bool) -> pl.DataFrame:
    """A source's records in order (with repeats allowed, as many passes as its target
    needs), each with its progress through the source's target: cumulative units / target."""
    units = pool.get_column("units").to_numpy()
    total = units.sum()
    passes = max(1, int(np.ceil(target / total))) if allow_repeats and total > 0 else 1
    tiled = pl.concat([pool.with_columns(repeat=pl.lit(p, pl.Int32)) for p in range(passes)])
    progress = np.cumsum(np.tile(units, passes)) / target
    return tiled.with_columns(_progress=pl.Series(progress))


def _take(streams: pl.DataFrame, amount: float) -> pl.DataFrame:
    """Interleave the sources' streams by progress, so each advances at its share, and
    cut the merged stream where its units come closest to ``amount``: the cell is rounded
    once, to one record, whatever the number of sources."""
    merged = streams.sort("_progress", "source", "row", "repeat")
    cumulative = np.cumsum(merged.get_column("units").to_numpy())
    if amount <= 0 or len(cumulative) == 0:
        return merged.head(0)
    k = min(int(np.searchsorted(cumulative, amount)), len(cumulative) - 1)
    if k > 0 and abs(cumulative[k - 1] - amount) <= abs(cumulative[k] - amount):
        k -= 1
    return merged.head(k + 1)


def composition(selected: pl.DataFrame, targets: Mapping[str, float | None], unit: str
                ) -> list[dict[str, Any]]:
    """Per category: target share, realised share (in the mix's unit), loss tokens, rows."""
    tokens = max(int(selected.get_column("loss_tokens").sum()), 1)
    rows = max(selected.height, 1)
    have = {c: (t, r) for c, t, r in selected.group_by("category").agg(
        pl.col("loss_tokens").sum(), pl.len()).iter_rows()}
    result = []
    for category, target in targets.items():
        t, r = have.get(category, (0, 0))
        result.append({
            "category": category,
            "target": target,
            "realised": (t / tokens) if unit == "loss_tokens" else (r / rows),
            "loss_tokens": int(t),
            "loss_tokens_share": t / tokens,
            "rows": int(r),
            "rows_share": r / rows,
        })
    return result
