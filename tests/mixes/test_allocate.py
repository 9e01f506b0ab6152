"""Allocation laws: shares hold, infeasible recipes name the deficit, seeds are stable."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate.catalog import MixSpec
from curate.errors import ConfigError
from curate.mixes.allocate import allocate

CATEGORIES = ("medical", "general", "synthetic")


def pool(sizes: dict[tuple[str, str], int], seed: int = 0) -> pl.DataFrame:
    """Candidates: for each (category, source) that many records of 20-400 loss tokens."""
    rng = np.random.default_rng(seed)
    frames = []
    for (category, source), n in sizes.items():
        frames.append(pl.DataFrame({
            "source": [source] * n, "row": np.arange(n, dtype=np.int64),
            "id": [f"{source}-{i}" for i in range(n)], "kind": ["chat"] * n,
            "category": [category] * n, "modality": ["text"] * n,
            "loss_tokens": rng.integers(20, 400, n).astype(np.uint64),
        }))
    return pl.concat(frames)


def shares(selected: pl.DataFrame) -> dict[str, float]:
    total = selected.get_column("loss_tokens").sum()
    by_category = selected.group_by("category").agg(pl.col("loss_tokens").sum())
    return {c: t / total for c, t in by_category.iter_rows()}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    weights=st.lists(st.floats(0.05, 1.0), min_size=2, max_size=3),
    sizes=st.lists(st.integers(1500, 4000), min_size=6, max_size=6),
    fraction=st.floats(0.2, 0.95),
    temperature=st.sampled_from([0.5, 1.0, 2.0]),
    seed=st.integers(0, 10_000),
)
def test_realised_shares_hold_for_random_feasible_recipes(weights, sizes, fraction, temperature, seed):
    categories = CATEGORIES[: len(weights)]
    targets = {c: w / sum(weights) for c, w in zip(categories, weights)}
    candidates = pool({(c, f"{c}_{i}"): sizes[2 * k + i] for k, c in enumerate(categories) for i in range(2)})
    have = candidates.group_by("category").agg(pl.col("loss_tokens").sum())
    largest = min(t / targets[c] for c, t in have.iter_rows())
    spec = MixSpec(targets=targets, budget=int(largest * fraction), temperature=temperature)
    result = allocate(candidates, spec, seed)
    realised = shares(result.selected)
    for category, target in targets.items():
        assert abs(realised.get(category, 0.0) - target) <= spec.tolerance
    # Rounding costs at most one record (< 400 tokens) per (category, modality) cell.
    assert abs(int(result.selected.get_column("loss_tokens").sum()) - spec.budget) <= 400 * len(targets)
    assert result.selected.select("source", "row").is_unique().all()  # no oversampling


def test_a_budget_too_small_for_whole_records_is_an_error():
    candidates = pool({("medical", "m"): 50, ("general", "g"): 50})
    spec = MixSpec(targets={"medical": 0.5, "general": 0.5}, budget=1000)
    with pytest.raises(ConfigError, match="whole records"):
        allocate(candidates, spec, 0)


def test_an_infeasible_recipe_names_the_deficit():
    candidates = pool({("medical", "m"): 500, ("general", "g"): 50})
    general = int(candidates.filter(pl.col("category") == "general").get_column("loss_tokens").sum())
    spec = MixSpec(targets={"medical": 0.6, "general": 0.4}, budget=general * 10)
    with pytest.raises(ConfigError, match=r"infeasible: `general` needs [\d,]+ loss tokens but has "
                       rf"{general:,} loss tokens.*Lower `mix.budget` to at most {int(general / 0.4):,}"):
        allocate(candidates, spec, 0)
    with pytest.raises(ConfigError, match="`synthetic` needs"):
        allocate(candidates, MixSpec(targets={"medical": 0.8, "synthetic": 0.2}, budget=1000), 0)


def test_repeats_only_when_allowed_and_counted():
    candidates = pool({("medical", "m"): 500, ("general", "g"): 20})
    general = int(candidates.filter(pl.col("category") == "general").get_column("loss_tokens").sum())
    spec = MixSpec(targets={"medical": 0.5, "general": 0.5}, budget=general * 6, allow_repeats=True)
    result = allocate(candidates, spec, 0)
    repeated = result.selected.filter(pl.col("repeat") > 0)
    assert repeated.height > 0 and set(repeated.get_column("source")) == {"g"}
    assert abs(shares(result.selected)["general"] - 0.5) <= spec.tolerance


def test_a_seed_changes_the_sample_and_not_the_composition():
    candidates = pool({("medical", "m"): 800, ("general", "g"): 800})
    spec = MixSpec(targets={"medical": 0.7, "general": 0.3}, budget=60_000)
    a, again, b = (allocate(candidates, spec, s) for s in (1, 1, 2))
    assert a.selected.equals(again.selected)
    assert set(a.selected.get_column("id")) != set(b.selected.get_column("id"))
    for row_a, row_b in zip(a.composition, b.composition):
        assert abs(row_a["realised"] - row_b["realised"]) <= 2 * spec.tolerance


def test_modality_and_category_targets_together():
    candidates = pool({("medical", "m"): 600, ("general", "g"): 600}).with_columns(
        modality=pl.when(pl.col("row") % 3 == 0).then(pl.lit("image")).otherwise(pl.lit("text")))
    spec = MixSpec(targets={"medical": 0.6, "general": 0.4}, modality={"text": 0.8, "image": 0.2},
                   budget=50_000)
    result = allocate(candidates, spec, 0)
    realised = shares(result.selected)
    assert abs(realised["medical"] - 0.6) <= spec.tolerance
    by_modality = result.selected.group_by("modality").agg(pl.col("loss_tokens").sum())
    image = by_modality.filter(modality="image").item(0, 1) / result.selected.get_column("loss_tokens").sum()
    assert abs(image - 0.2) <= spec.tolerance


def test_weights_steer_sources_inside_a_category():
    candidates = pool({("medical", "a"): 600, ("medical", "b"): 600, ("general", "g"): 600})

    def rows(**options) -> dict[str, int]:
        spec = MixSpec(targets={"medical": 0.5, "general": 0.5}, budget=40_000, **options)
        return dict(allocate(candidates, spec, 0).selected.group_by("source").len().iter_rows())

    even, to_b, to_a = rows(), rows(weights={"b": 3.0}), rows(weights={"a": 3.0})
    assert abs(even["a"] - even["b"]) <= 0.15 * even["a"]  # equal sizes, no weights: an even split
    assert to_b["b"] >= 2.5 * to_b["a"] and to_a["a"] >= 2.5 * to_a["b"]  # weight 3: about 3x
    assert to_b["a"] + to_b["b"] == pytest.approx(even["a"] + even["b"], rel=0.05)  # same category total


def test_caps_bound_a_source_and_the_rest_of_its_category_fills_in():
    candidates = pool({("medical", "a"): 600, ("medical", "b"): 600, ("general", "g"): 600})
    spec = MixSpec(targets={"medical": 0.5, "general": 0.5}, budget=40_000, caps={"a": 30})
    rows = dict(allocate(candidates, spec, 0).selected.group_by("source").len().iter_rows())
    free = dict(allocate(candidates, spec.model_copy(update={"caps": {}}), 0).selected
                .group_by("source").len().iter_rows())
    assert rows["a"] <= 30 < free["a"]
    assert rows["b"] > free["b"]


def test_the_allocation_names_the_category_that_binds_the_largest_budget():
    candidates = pool({("medical", "med"): 3000, ("general", "gen"): 500})
    spec = MixSpec(targets={"medical": 0.6, "general": 0.4})
    result = allocate(candidates, spec, 0)
    general = int(candidates.filter(pl.col("category") == "general").get_column("loss_tokens").sum())
    assert result.bound_by == {"kind": "category", "name": "general", "target": 0.4, "kept": general}
    rows = {c["category"]: (c["rows"], c["kept_rows"]) for c in result.composition}
    assert rows["general"] == (500, 500)  # every kept general row is used
    assert rows["medical"][1] == 3000 and rows["medical"][0] < 3000  # medical's surplus is not selected
    budgeted = allocate(candidates, MixSpec(targets={"medical": 0.6, "general": 0.4}, budget=50_000), 0)
    assert budgeted.bound_by == {"kind": "budget", "amount": 50_000}


def test_a_modality_target_can_bind_the_budget():
    candidates = pool({("medical", "med"): 2000, ("general", "gen"): 2000})
    candidates = candidates.with_columns(
        modality=pl.when(pl.col("row") < 100).then(pl.lit("image")).otherwise(pl.lit("text")))
    spec = MixSpec(targets={"medical": 0.5, "general": 0.5}, modality={"text": 0.5, "image": 0.5})
    result = allocate(candidates, spec, 0)
    assert (result.bound_by["kind"], result.bound_by["name"]) == ("modality", "image")
