"""The choice-shuffle ensemble and answer retries (MedPrompt).

- ``permutations(n, shuffles, seed)``: ``shuffles`` distinct orders of ``n`` options, the
  original order first, the rest drawn by ``random.Random(seed)`` (at most ``n!``);
  ``order[k]`` is the original index of the option shown at position ``k``, the
  convention of ``build_prompt(order=...)``, so a letter chosen under an order maps back
  with ``Prompt.original`` (``order[choice]``);
- ``vote(choices, seed)``: the majority of the mapped-back answers (unreadable ones do
  not vote); a tie is broken by ``random.Random(seed)`` over the tied options in
  ascending order, so the same seed always picks the same one;
- ``attempt_schedule``: the temperature and token budget of each try of a generation
  whose answer could not be read: the temperature rises by a step and stays within
  [0, 2] (the range OpenAI-compatible servers accept), the token budget grows by a step;
- ``item_seed(seed, key)``: a per-item seed, stable across runs and processes.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from collections import Counter
from collections.abc import Sequence

from curate.synth.config import raised_temperature


def permutations(n: int, shuffles: int, seed: int) -> list[tuple[int, ...]]:
    """``min(shuffles, n!)`` distinct option orders, the identity first."""
    if n < 1 or shuffles < 1:
        raise ValueError(f"permutations of {n} options, {shuffles} shuffles: both must be at least 1")
    identity = tuple(range(n))
    wanted = min(shuffles, math.factorial(n))
    if wanted == math.factorial(n) and n <= 8:
        rest = [p for p in itertools.permutations(identity) if p != identity]
        random.Random(seed).shuffle(rest)
        return [identity, *rest[:wanted - 1]]
    rng = random.Random(seed)
    seen = {identity}
    out = [identity]
    while len(out) < wanted:
        order = list(identity)
        rng.shuffle(order)
        shown = tuple(order)
        if shown not in seen:
            seen.add(shown)
            out.append(shown)
    return out


def map_back(order: Sequence[int], choice: int | None) -> int | None:
    """The original option index of the letter ``choice`` picked under ``order``."""
    return None if choice is None else order[choice]


def vote(choices: Sequence[int | None], seed: int) -> int | None:
    """The most frequent readable choice; ties broken by ``seed``; None when none is readable."""
    counts = Counter(c for c in choices if c is not None)
    if not counts:
        return None
    top = max(counts.values())
    tied = sorted(c for c, n in counts.items() if n == top)
    return tied[0] if len(tied) == 1 else random.Random(seed).choice(tied)


def attempt_schedule(temperature: float, max_tokens: int, retries: int, *, temperature_step: float,
                     token_step: int) -> list[tuple[float, int]]:
    """(temperature, max tokens) of the first try and of each retry."""
    return [(raised_temperature(temperature, i, temperature_step), max_tokens + i * token_step)
            for i in range(retries + 1)]


def item_seed(seed: int, key: str) -> int:
    """A 31-bit seed for ``key`` derived from ``seed``."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
