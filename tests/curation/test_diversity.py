"""Diversity selection: the blocked greedy equals the naive one; real MedQuAD paraphrases."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from conftest import ingest_into
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.curation import diversity
from curate.curation.diversity import Diversity, DiversityConfig, select_diverse
from curate.engine.runner import run_stages
from curate.engine.stage import StageContext
from curate.errors import ConfigError
from curate.ingest.files import source_for_file
from curate.store import RunStore


def naive(x: np.ndarray, tau: float, budget: int | None = None):
    """The definition: visit rows one by one, compare with every kept row."""
    x = x.astype(np.float64)
    kept: list[int] = []
    mask = np.zeros(len(x), bool)
    nearest = np.full(len(x), -1)
    best = np.full(len(x), -np.inf)
    for i in range(len(x)):
        if kept:
            sims = x[kept] @ x[i]
            j = int(np.argmax(sims))  # the earliest kept row on ties
            nearest[i], best[i] = kept[j], sims[j]
        if best[i] <= tau and (budget is None or len(kept) < budget):
            kept.append(i)
            mask[i] = True
    return mask, nearest, best


def assert_same(x, tau, budget, block, chunk, *, exact=True):
    """``exact``: cosines are exact in float32 (else they differ from the float64
    reference by rounding, and so may the nearest row of a tie closer than that)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(diversity, "_BLOCK", block)
        patch.setattr(diversity, "_KEPT_CHUNK", chunk)
        kept, nearest, best = select_diverse(x, tau, budget)
    want_kept, want_nearest, want_best = naive(x, tau, budget)
    assert np.array_equal(kept, want_kept)
    if exact:
        assert np.array_equal(nearest, want_nearest) and np.array_equal(best, want_best)
        return
    assert np.allclose(best, want_best, rtol=0, atol=1e-6)
    other = np.flatnonzero(nearest != want_nearest)  # ties closer than rounding, if any
    x64 = x.astype(np.float64)
    cosines = np.einsum("ij,ij->i", x64[other], x64[nearest[other]])
    assert np.allclose(cosines, want_best[other], rtol=0, atol=1e-6)


# Unit vectors whose cosines are exact in float32 whatever the summation order: four
# entries of +-1/2 in 8 dimensions, so cosines are multiples of 1/4. Ties, exact hits on
# tau and copies are everywhere.
UNIT = st.lists(st.sampled_from([-0.5, 0.5]), min_size=4, max_size=4).flatmap(
    lambda signs: st.permutations(range(8)).map(
        lambda order: [signs[order.index(i)] if order.index(i) < 4 else 0.0 for i in range(8)]))


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(UNIT, min_size=0, max_size=40),
       tau=st.sampled_from([-0.5, 0.0, 0.25, 0.5, 0.75, 1.0]),
       budget=st.one_of(st.none(), st.integers(1, 30)),
       block=st.integers(1, 9), chunk=st.integers(1, 5))
def test_blocked_selection_equals_the_naive_greedy(rows, tau, budget, block, chunk):
    x = np.array(rows, np.float32).reshape(len(rows), 8)
    assert_same(x, tau, budget, block, chunk)


@pytest.mark.parametrize("seed", [0, 3, 5])  # seeds with no cosine within 1e-5 of tau
def test_clusters_of_near_duplicates_equal_the_naive_greedy(seed):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((150, 48))
    x = centres[rng.integers(0, 150, 1200)] + rng.standard_normal((1200, 48)) * rng.uniform(
        0.05, 0.6, (1200, 1))
    x[rng.integers(0, 1200, 40)] = x[rng.integers(0, 1200, 40)]  # exact copies: tied cosines
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    sims = x.astype(np.float64) @ x.T.astype(np.float64)
    assert np.abs(sims - 0.9).min() > 1e-5  # no cosine is at float32 noise from tau
    for budget in (None, 300):
        assert_same(x, 0.9, budget, block=128, chunk=200, exact=False)
    kept, nearest, best = select_diverse(x, 0.9)
    assert 300 < kept.sum() < 1100 and (best[kept] <= 0.9).all() and (best[~kept] > 0.9).all()
    assert (nearest[~kept] < np.flatnonzero(~kept)).all() and kept[nearest[~kept]].all()


def test_decide_re_derives_the_greedy_outcome_with_a_budget():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 4))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    stage = Diversity(DiversityConfig(tau=0.8, budget=12))
    kept, nearest, best = select_diverse(x, 0.8, 12)
    ids = [f"{i:032x}" for i in range(60)]
    scores = pl.DataFrame({
        "source": "s", "row": np.arange(60), "id": ids,
        "diversity_rank": np.arange(60),
        "diversity_max_sim": pl.Series(best).replace(-np.inf, None),
        "diversity_nearest": [ids[j] if j >= 0 else None for j in nearest],
    }).sample(fraction=1.0, shuffle=True, seed=1)  # decide does not rely on row order
    decided = stage.decide(scores).sort("row")
    assert decided.get_column("keep").to_list() == kept.tolist()
    reasons = decided.get_column("reason").to_list()
    assert reasons.count("over_budget") == int(((best <= 0.8) & ~kept).sum()) > 0
    assert all(r == f"too_similar_to:{ids[j]}"
               for r, j, b in zip(reasons, nearest, best) if b > 0.8)


def test_bad_options_name_the_field():
    with pytest.raises(ConfigError, match="stage `diversity`.*tau"):
        Diversity.from_options({"tau": 1.5}, where="mix.yaml")
    with pytest.raises(ConfigError, match="unknown key `order`; did you mean `order_by`"):
        Diversity.from_options({"order": "length"}, where="mix.yaml")


# MedQuAD sample rows: four pairs of near-paraphrases (same topic from two NIH sites,
# answers reworded), then twelve records on other topics (cosine < 0.6 to all others).
PAIRS = [(815, 1319), (516, 1341), (787, 1266), (760, 1244)]
OTHERS = [0, 37, 74, 148, 185, 222, 259, 296, 370, 407, 444, 481]


@pytest.fixture(scope="module")
def medquad(catalog, data_root, tmp_path_factory):
    lines = (data_root / "medical/medquad/medquad_sample_1500.jsonl").read_text().splitlines()
    picked = [lines[i] for pair in PAIRS for i in pair] + [lines[i] for i in OTHERS]
    folder = tmp_path_factory.mktemp("medquad")
    path = folder / "pairs.jsonl"
    path.write_text("\n".join(picked) + "\n")
    source = source_for_file(path, like=catalog.source("medquad_sample"))
    _, records, _ = ingest_into(source, folder / "run", data_root)
    assert [json.loads(line)["question"] for line in picked[:2]] == [
        "What is (are) Muscular Dystrophy ?", "What is (are) Muscular dystrophy ?"]
    return RunStore(folder / "run"), source.name, records.sort("row")


def run(store, name, **options):
    result = run_stages([Diversity(DiversityConfig(**options))], store, [name],
                        input_fingerprint="medquad")[0]
    decisions = pl.read_parquet(store.stage("diversity").path / "decisions.parquet").sort("row")
    return result, decisions


def test_minilm_catches_medquad_paraphrases_and_keeps_other_topics(medquad):
    store, name, records = medquad
    ids = records.get_column("id").to_list()
    lengths = records.get_column("messages").list.eval(
        pl.element().struct.field("content").str.len_chars()).list.sum().to_list()

    result, decisions = run(store, name, order_by="source_row")
    assert result.stats["reasons"] == {"too_similar_to": 4}
    expected = [None if i % 2 == 0 or i >= 8 else ids[i - 1] for i in range(20)]
    assert decisions.get_column("reason_ref").to_list() == expected
    assert set(decisions.get_column("reason")) == {None, "too_similar_to"}
    assert decisions.get_column("diversity_rank").to_list() == list(range(20))
    similar = decisions.filter(~pl.col("keep")).get_column("diversity_max_sim")
    assert similar.min() > 0.92
    assert decisions.slice(8).get_column("diversity_max_sim").max() < 0.7

    # By default the longer record of each pair is visited first and stays.
    result, decisions = run(store, name)
    assert result.stats["reasons"] == {"too_similar_to": 4}
    for a, b in ((2 * k, 2 * k + 1) for k in range(4)):
        longer, shorter = (a, b) if lengths[a] > lengths[b] else (b, a)
        row = decisions.row(shorter, named=True)
        assert (row["reason"], row["reason_ref"]) == ("too_similar_to", ids[longer])
        assert decisions.row(longer, named=True)["keep"]

    result, decisions = run(store, name, order_by="source_row", budget=10)
    assert result.stats["reasons"] == {"too_similar_to": 4, "over_budget": 6}
    assert decisions.filter(pl.col("reason") == "over_budget").get_column("row").to_list() == list(
        range(14, 20))


def test_image_text_records_are_kept_unvisited(medquad):
    _, _, records = medquad
    chats = records.filter(pl.col("row").is_in([0, 8])).with_columns(row=pl.Series([0, 1]))
    image = chats.head(1).with_columns(row=pl.lit(2, pl.Int64), kind=pl.lit("image_text"))
    copy = chats.head(1).with_columns(row=pl.lit(3, pl.Int64))  # the same text as row 0
    frame = pl.concat([chats, image, copy]).lazy().select("source", "row", "id", *Diversity.columns)
    stage = Diversity(DiversityConfig(order_by="source_row"))
    decided = stage.decide(stage.score(frame, StageContext())).sort("row")
    assert decided.get_column("diversity_rank").to_list() == [0, 1, None, 2]
    first = records.row(0, named=True)["id"]
    assert decided.get_column("reason").to_list() == [None, None, None, f"too_similar_to:{first}"]


def test_records_can_be_visited_by_an_earlier_stage_score(medquad, tmp_path):
    """`order_by: <stage>.<column>` visits best score first: here the shorter record of
    each pair scores higher, so it is the one kept."""
    _, _, records = medquad
    chats = records.filter(pl.col("row") < 8)
    lengths = chats.get_column("messages").list.eval(
        pl.element().struct.field("content").str.len_chars()).list.sum()
    earlier = chats.select("source", "row", "id", quality=-lengths.cast(pl.Float64))
    earlier.write_parquet(tmp_path / "quality.parquet")
    context = StageContext(decisions={"quality": tmp_path / "quality.parquet"})
    frame = chats.lazy().select("source", "row", "id", *Diversity.columns)
    stage = Diversity(DiversityConfig(order_by="quality.quality"))
    decided = stage.decide(stage.score(frame, context)).sort("row")
    kept = decided.filter(pl.col("keep")).get_column("row").to_list()
    shorter = [min((2 * k, 2 * k + 1), key=lambda i: lengths[i]) for k in range(4)]
    assert kept == sorted(shorter)
    with pytest.raises(ConfigError, match="stage `dedup` has not run before this one"):
        Diversity(DiversityConfig(order_by="dedup.score")).score(frame, context)
    with pytest.raises(ConfigError, match="stage `quality` has no score column `deita_score`"):
        Diversity(DiversityConfig(order_by="quality.deita_score")).score(frame, context)
