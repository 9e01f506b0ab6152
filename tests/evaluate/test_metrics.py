"""Metrics against values computed by hand on crafted predictions."""

from __future__ import annotations

import pytest

from curate.evaluate import metrics


def test_accuracy_and_its_bootstrap_interval_match_the_binomial_by_hand():
    # Resampling 4 items of which 3 are right: the resampled accuracy is k/4 with
    # k ~ Binomial(4, 3/4): P(0) = 1/256, P(1/4) = 12/256, P(1) = 81/256. The 2.5% quantile
    # falls in the 1/4 block (cumulative 13/256 = 5.1% > 2.5% > 0.4%), the 97.5% one in 1.
    estimate = metrics.accuracy([True, True, True, False], resamples=4000, seed=1)
    assert estimate.value == 0.75
    assert (estimate.low, estimate.high, estimate.n) == (0.25, 1.0, 4)


def test_interval_is_seeded_and_degenerate_when_every_item_agrees():
    a = metrics.accuracy([True, False] * 20, seed=7)
    assert a == metrics.accuracy([True, False] * 20, seed=7)
    assert a.low < 0.5 < a.high
    assert metrics.accuracy([True] * 10).to_dict() == {"value": 1.0, "low": 1.0, "high": 1.0, "n": 10}


def test_parse_failures_count_unreadable_answers():
    assert metrics.parse_failures([0, None, 2, None]) == {"count": 2, "rate": 0.5, "n": 4}


def test_position_bias_compares_chosen_letters_with_gold_letters():
    bias = metrics.position_bias([0, 0, 1, None], [0, 1, 2, 2])
    letters = bias["letters"]
    assert bias["readable"] == 3
    assert letters["A"]["chosen"] == pytest.approx(2 / 3) and letters["A"]["gold"] == 0.25
    assert letters["B"]["difference"] == pytest.approx(1 / 3 - 1 / 4)
    assert letters["C"] == {"chosen": 0.0, "gold": 0.5, "difference": -0.5}
    # half of |5/12| + |1/12| + |-1/2|
    assert bias["total_variation"] == pytest.approx(0.5)


def test_by_subject_groups_items_and_skips_those_without_one():
    result = metrics.by_subject(["anatomy", "virology", "anatomy", None], [True, False, False, True])
    assert list(result) == ["anatomy", "virology"]
    assert (result["anatomy"].value, result["anatomy"].n) == (0.5, 2)
    assert result["virology"].value == 0.0


def test_paired_difference_counts_discordant_items_and_uses_the_same_resamples():
    a = [True, True, False, True, False]
    b = [True, False, False, False, True]
    result = metrics.paired(a, b, seed=3)
    assert result["difference"]["value"] == pytest.approx(0.2)
    assert (result["only_a"], result["only_b"], result["both"], result["neither"]) == (2, 1, 1, 1)
    assert result["mcnemar_p"] == pytest.approx(1.0)  # two-sided binomial test, 2 of 3
    assert result["difference"]["low"] <= 0.2 <= result["difference"]["high"]
    # a model against itself: every paired resample differs by exactly zero
    same = metrics.paired(a, a)
    assert (same["difference"]["low"], same["difference"]["high"]) == (0.0, 0.0)
    with pytest.raises(ValueError, match="same items"):
        metrics.paired(a, b[:3])


def test_mcnemar_p_value_by_hand():
    # 6 items only A got right, 0 only B: p = 2 * 0.5**6
    result = metrics.paired([True] * 6 + [False], [False] * 6 + [False])
    assert result["mcnemar_p"] == pytest.approx(2 * 0.5 ** 6)


def test_permutation_consistency_counts_items_that_flip_between_orders():
    from curate.evaluate.metrics import permutation_consistency

    # item 1 always picks option 2; item 2 flips with the order (a letter-preferring model);
    # item 3 has one unreadable answer, which breaks its agreement
    c = permutation_consistency([[2, 2, 2], [0, 1, 2], [1, None, 1], [3]])
    assert c["items"] == 3  # one order only: no consistency to measure
    assert c["all_agree"] == pytest.approx(1 / 3)
    assert c["mean_agreement"] == pytest.approx((1 + 1 / 3 + 2 / 3) / 3)
