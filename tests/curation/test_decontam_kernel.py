"""Decontamination's compiled look-up (``BenchmarkIndex.look_up``) against the plain
statement of tiers 1-3's candidate search: texts cut into windows in Python, each window's
shingles looked up and joined with the items' rare shingles in Polars."""

from __future__ import annotations

from collections import Counter

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.curation import decontam
from curate.curation.config import DecontamConfig
from curate.curation.decontam import BenchmarkIndex, windows, words_survive_normalizing
from curate.curation.minhash import shingle_hits

QUESTIONS = [
    "Which enzyme deficiency causes the accumulation of glucocerebroside in macrophages",
    "A patient with chronic alcoholism presents with confusion ataxia and ophthalmoplegia",
    "The most common site of carcinoid tumour in the gastrointestinal tract is",
    "Café-au-lait spots and axillary freckling are typical of which syndrome",
    "Drug of choice for absence seizures in children",
    "Which nerve is injured in fracture of the surgical neck of the humerus",
]
OPTIONS = [
    ["Glucocerebrosidase", "Hexosaminidase A", "Sphingomyelinase", "Galactocerebrosidase"],
    ["Thiamine deficiency", "Niacin deficiency", "Cobalamin deficiency", "Folate deficiency"],
    ["Appendix", "Ileum", "Rectum", "Stomach"],
    ["Neurofibromatosis type 1", "Tuberous sclerosis", "McCune–Albright", "Sturge–Weber"],
    ["Ethosuximide", "Phenytoin", "Carbamazepine", "Phenobarbital"],
    ["Axillary nerve", "Radial nerve", "Ulnar nerve", "Median nerve"],
]
CONFIG = DecontamConfig(short_window_words=8, window_words=16, min_item_shingles=2)
"""Small windows, so that short texts are cut too."""

# characters that change words when normalised (NFKC turns "´" into a space and an accent),
# other spaces, combining marks, letters outside ASCII
ODD = ["´", "¨", "¸", "\u00a0", "\u3000", "\x1c", "\t", "\n", "e\u0301", "ﬁ", "Ⅻ", "σς", "İ", "_", "-", "."]


@pytest.fixture(scope="module")
def index() -> BenchmarkIndex:
    items = pl.DataFrame({
        "benchmark": ["toy"] * len(QUESTIONS),
        "item": [f"toy:{i}" for i in range(len(QUESTIONS))],
        "question": QUESTIONS,
        "context": [""] * len(QUESTIONS),
        "options": ["\n".join(o) for o in OPTIONS],
        "answer": [o[0] for o in OPTIONS],
    })
    return BenchmarkIndex(items, CONFIG)


def planted_texts() -> list[str | None]:
    """Items copied whole, in part, inside long texts, with odd characters, and nothing."""
    filler = "the report describes the patient history and the findings of the examination".split()
    texts: list[str | None] = ["", None, "one", "   ", "´", "word´word ¨ e\u0301te"]
    for q, options in zip(QUESTIONS, OPTIONS, strict=True):
        copy = q + "\n" + "\n".join(f"{chr(65 + i)}. {o}" for i, o in enumerate(options))
        texts += [copy, copy.upper(), " ".join(filler * 3) + " " + copy + " " + " ".join(filler * 5),
                  copy.replace(" ", "\u00a0"), copy.replace(" ", " ´"), copy.replace("e", "e\u0301"),
                  q, " ".join(options), q.replace(" ", "\x1c "),
                  # normalising splits each "x´y" in two: windows must be cut from the words as written
                  "x´y " * 9 + copy + " x´y" * 20]
    return texts


def reference(index: BenchmarkIndex, texts: list[str | None]) -> tuple[Counter, Counter]:
    """The plain statement: (doc, window text, key) of every candidate and (doc, hash) of
    every n-gram hit, counted."""
    c = index.config
    series = pl.Series(texts, dtype=pl.String)
    units, owner, serves = windows(series, (c.short_window_words, c.window_words))
    arrow = pa.array(units, pa.large_string())
    wanted = index.anchors.get_column("hash").unique().to_numpy()
    hits = [pl.DataFrame({"unit": u, "hash": h, "lo": serves[u, 0], "hi": serves[u, 1]})
            for u, h in (shingle_hits(arrow, k, wanted) for k in sorted({1, c.containment_ngram}))]
    candidates = (
        pl.concat(hits).unique()
        .join(index.anchors, on="hash")
        .filter(pl.col("width").is_between("lo", "hi"))
        .group_by("unit", "key").agg(hits=pl.len(), anchors=pl.col("anchors").first())
        .filter(pl.col("hits") >= (pl.col("anchors") * c.min_anchor_share).ceil())
    )
    doc, found = shingle_hits(series.to_arrow(), c.ngram, index.ngrams.get_column("hash").to_numpy())
    return (Counter((int(owner[u]), units[u], k) for u, k in candidates.select("unit", "key").iter_rows()),
            Counter(zip(doc.tolist(), found.tolist(), strict=True)))


def compiled(index: BenchmarkIndex, texts: list[str | None]) -> tuple[Counter, Counter]:
    lookup = index.look_up(pl.Series(texts, dtype=pl.String))
    unit_text = lookup.unit_text.to_pylist()
    candidates = Counter((int(lookup.unit_doc[u]), unit_text[u], k) for u, k in lookup.candidates.iter_rows())
    ngrams = Counter(lookup.ngram_hits.iter_rows())
    return candidates, ngrams


def test_look_up_finds_what_windows_cut_in_python_find(index):
    texts = planted_texts()
    candidates, ngrams = compiled(index, texts)
    expected_candidates, expected_ngrams = reference(index, texts)
    assert candidates == expected_candidates
    assert ngrams == expected_ngrams
    assert len(candidates) > 40 and len(ngrams) > 0  # the items were found, not nothing twice


def test_words_that_normalising_splits_are_told_apart():
    texts = pa.array(["plain ascii text", "naïve café", "don´t", "a¨b", "  ¸", None, "e\u0301"],
                     pa.large_string())
    assert words_survive_normalizing(texts).tolist() == [True, True, False, False, False, True, True]


words = st.sampled_from(sorted({w for q in QUESTIONS for w in q.split()}
                               | {w for o in OPTIONS for x in o for w in x.split()}
                               | {"A.", "B.", "(c)", "2)", "the", "and", "of"}))
odd_words = st.builds(lambda w, odd, at: w[:at] + odd + w[at:], words, st.sampled_from(ODD),
                      st.integers(0, 12))
separators = st.sampled_from([" ", " ", " ", "\n", "  ", "\t", "\u00a0", " - ", "\x1c", "\u3000"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.tuples(st.one_of(words, words, words, odd_words), separators), max_size=60),
                min_size=1, max_size=6))
def test_look_up_finds_what_windows_cut_in_python_find_on_any_text(index, docs):
    texts = ["".join(w + s for w, s in doc) for doc in docs]
    assert compiled(index, texts) == reference(index, texts)


def test_matching_in_batches_gives_each_record_the_result_of_one_batch(index, monkeypatch):
    texts = pl.Series(planted_texts(), dtype=pl.String)
    turns = pl.Series([[t] for t in texts.to_list()], dtype=pl.List(pl.String))
    whole = index.match(texts, turns)
    monkeypatch.setattr(decontam, "_BATCH", 7)
    batched = index.match(texts, turns)
    assert whole.keys() == batched.keys()
    for tier, (item, score, field) in whole.items():
        assert np.array_equal(item, batched[tier][0]), tier
        assert np.array_equal(score, batched[tier][1], equal_nan=True), tier
        assert field == batched[tier][2], tier
    assert (whole["containment"][1] >= CONFIG.min_containment).sum() > 10
