"""MCQA metrics with honest intervals.

- ``accuracy``: the share of items answered correctly (a parse failure counts as wrong),
  with a percentile bootstrap interval: ``resamples`` resamples of the items with
  replacement, drawn by ``numpy.random.default_rng(seed).integers(0, n, (resamples, n))``;
  the interval is the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles
  (numpy's default linear interpolation) of the resampled accuracies.
- ``parse_failures``: items whose answer could not be read, and their share.
- ``position_bias``: per letter, the share of readable answers that chose it against the
  share of gold answers that are it; ``difference`` = chosen - gold; ``total_variation``
  = half the sum of absolute differences (0: the model picks letters as often as they
  are right; 1: it always picks a letter that is never right).
- ``by_subject``: accuracy with its interval per subject.
- ``paired``: two models on the same items: the difference of accuracies (A - B), with a
  paired bootstrap interval (the same resampled items for both), the counts of items only
  one got right, and McNemar's exact p-value (a two-sided binomial test on those counts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A proportion (or a difference of two) with its bootstrap interval."""

    value: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready mapping."""
        return asdict(self)


def bootstrap_indices(n: int, *, resamples: int, seed: int) -> np.ndarray:
    """The resampled item indices every interval uses: shape (resamples, n)."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1 - confidence) / 2
    low, high = np.quantile(samples, [alpha, 1 - alpha])
    return float(low), float(high)


def accuracy(correct: Sequence[bool] | np.ndarray, *, resamples: int = 1000,
             confidence: float = 0.95, seed: int = 0) -> Estimate:
    """Accuracy of ``correct`` (one bool per item) with its bootstrap interval."""
    values = np.asarray(correct, dtype=np.float64)
    n = len(values)
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    means = values[bootstrap_indices(n, resamples=resamples, seed=seed)].mean(axis=1)
    low, high = _interval(means, confidence)
    return Estimate(float(values.mean()), low, high, n)


def parse_failures(predictions: Sequence[int | None]) -> dict[str, Any]:
    """How many predictions are None (unreadable answers), and their share."""
    n = len(predictions)
    failed = sum(p is None for p in predictions)
    return {"count": failed, "rate": failed / n if n else float("nan"), "n": n}


def position_bias(predictions: Sequence[int | None], answers: Sequence[int],
                  letters: int | None = None) -> dict[str, Any]:
    """Per letter: the share of readable predictions choosing it vs the share of gold answers."""
    from curate.evaluate.prompts import letter

    width = letters or max([*answers, *(p for p in predictions if p is not None), -1]) + 1
    readable = [p for p in predictions if p is not None]
    per_letter = {}
    for index in range(width):
        chosen = sum(p == index for p in readable) / len(readable) if readable else 0.0
        gold = sum(a == index for a in answers) / len(answers) if answers else 0.0
        per_letter[letter(index)] = {"chosen": chosen, "gold": gold, "difference": chosen - gold}
    total = 0.5 * sum(abs(v["difference"]) for v in per_letter.values())
    return {"letters": per_letter, "total_variation": total, "readable": len(readable)}


def permutation_consistency(votes: Sequence[Sequence[int | None]]) -> dict[str, Any]:
    """Per-item consistency across option orders (each item's answers, mapped back to the
    original options, one per order): the share of items whose readable answers all agree,
    and the mean share of an item's answers equal to its most frequent one. A model free of
    position bias answers the same option whatever letter it is shown under; the letter
    frequencies of ``position_bias`` can look balanced while items flip."""
    agree = []
    shares = []
    for item in votes:
        readable = [v for v in item if v is not None]
        if len(item) < 2 or not readable:
            continue
        top = max(readable.count(v) for v in set(readable))
        agree.append(top == len(item))
        shares.append(top / len(item))
    return {"items": len(agree), "all_agree": float(np.mean(agree)) if agree else float("nan"),
            "mean_agreement": float(np.mean(shares)) if shares else float("nan")}


def by_subject(subjects: Sequence[str | None], correct: Sequence[bool], *, resamples: int = 1000,
               confidence: float = 0.95, seed: int = 0) -> dict[str, Estimate]:
    """Accuracy per subject (items without a subject are left out), subjects sorted."""
    groups: dict[str, list[bool]] = {}
    for subject, ok in zip(subjects, correct, strict=False):
        if subject is not None:
            groups.setdefault(subject, []).append(bool(ok))
    return {s: accuracy(v, resamples=resamples, confidence=confidence, seed=seed)
            for s, v in sorted(groups.items())}


def paired(correct_a: Sequence[bool] | np.ndarray, correct_b: Sequence[bool] | np.ndarray, *,
           resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Model A against model B on the same items (in the same order)."""
    from scipy.stats import binomtest

    a = np.asarray(correct_a, dtype=np.float64)
    b = np.asarray(correct_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired comparison needs the same items: {len(a)} vs {len(b)}")
    n = len(a)
    diff = a - b
    means = diff[bootstrap_indices(n, resamples=resamples, seed=seed)].mean(axis=1)
    low, high = _interval(means, confidence)
    only_a = int(((a == 1) & (b == 0)).sum())
    only_b = int(((a == 0) & (b == 1)).sum())
    p_value = float(binomtest(only_a, only_a + only_b, 0.5).pvalue) if only_a + only_b else 1.0
    return {
        "difference": Estimate(float(diff.mean()), low, high, n).to_dict(),
        "accuracy_a": float(a.mean()), "accuracy_b": float(b.mean()),
        "only_a": only_a, "only_b": only_b, "both": int(((a == 1) & (b == 1)).sum()),
        "neither": int(((a == 0) & (b == 0)).sum()), "mcnemar_p": p_value,
    }
