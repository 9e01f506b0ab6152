"""MinHash signatures: equal to datasketch's, on real text, and usable in its LSH."""

from __future__ import annotations

import json
import re
import unicodedata

import numpy as np
import xxhash
from datasketch import MinHash, MinHashLSH
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.curation._minhash_kernel import xxh64
from curate.curation.config import MinHashConfig
from curate.curation.minhash import (
    candidate_probability,
    common_shingles,
    shingle_hash,
    shingle_sets,
    shingle_table,
    shingles,
    signatures,
    tokens,
)

AWKWARD = [
    "", "   ", "One.", "Ünïcödé façade — naïve café, ﬁne ﬂow (NFKC) ２０２６",
    "snake_case and CamelCase, 3.14 and x2; e-mail: a@b.org", "Ελληνικά κείμενα και 中文文本",
    "one two three four five", "one two three four five six",
]


def real_texts(data_root, n=300):
    lines = (data_root / "medical/medquad/medquad_sample_1500.jsonl").read_text().splitlines()
    return [json.loads(line)["answer"] for line in lines[:n]]


def datasketch_signature(text: str, config: MinHashConfig) -> np.ndarray:
    m = MinHash(num_perm=config.num_perm, seed=config.seed, scheme="affine64", hashfunc=shingle_hash)
    for shingle in shingles(text, config.ngram):
        m.update(shingle)
    return m.hashvalues


def test_signatures_equal_datasketch_on_real_text(data_root):
    config = MinHashConfig()
    texts = real_texts(data_root) + AWKWARD
    ours = signatures(texts, config)
    for text, row in zip(texts, ours):
        assert np.array_equal(datasketch_signature(text, config), row), text[:60]


def test_other_settings_still_match_datasketch(data_root):
    config = MinHashConfig(ngram=3, num_perm=64, seed=7)
    texts = real_texts(data_root, 50)
    ours = signatures(texts, config)
    assert all(np.array_equal(datasketch_signature(t, config), r) for t, r in zip(texts, ours))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=100))
def test_the_kernel_hash_is_xxh64(data):
    buffer = np.frombuffer(data, np.uint8) if data else np.zeros(0, np.uint8)
    assert int(xxh64(buffer, 0, len(data))) == xxhash.xxh64_intdigest(data)


@settings(max_examples=100, deadline=None)
@given(st.text(st.characters(exclude_categories=["Cn", "Cs"]), max_size=200))
def test_kernel_tokens_are_python_word_runs(text):
    # Code points unassigned in Python's Unicode tables (3.11: Unicode 14) are left out: the
    # kernel's tables are newer (U+1CCD6, assigned since Unicode 16, is a letter there).
    ours = shingle_sets([text], 1)[0]
    words = re.findall(r"\w+", unicodedata.normalize("NFKC", text).lower())
    assert words == tokens(text)
    expected = np.unique(np.array([shingle_hash(w.encode()) for w in words], np.uint64))
    assert np.array_equal(ours, expected)


def test_banding_meets_the_recall_it_promises():
    config = MinHashConfig(threshold=0.8, min_recall=0.98)
    bands, rows = config.banding
    assert bands * rows <= config.num_perm
    assert candidate_probability(0.8, bands, rows) >= 0.98
    assert candidate_probability(0.3, bands, rows) < 0.01


def test_signatures_load_into_datasketch_lsh(data_root):
    config = MinHashConfig()
    texts = real_texts(data_root, 100)
    edited = texts[0].replace("the", "a", 1)
    sigs = signatures(texts + [edited], config)
    bands, rows = config.banding
    lsh = MinHashLSH(num_perm=config.num_perm, params=(bands, rows))
    for i, sig in enumerate(sigs[:-1]):
        lsh.insert(str(i), MinHash(num_perm=config.num_perm, seed=config.seed, scheme="affine64",
                                   hashvalues=sig))
    query = MinHash(num_perm=config.num_perm, seed=config.seed, scheme="affine64", hashvalues=sigs[-1])
    assert "0" in lsh.query(query)


def test_a_slice_of_an_arrow_array_hashes_like_its_texts(data_root):
    """Regression: pyarrow casts a sliced string array with offsets that its string
    kernels misread; a slice must give the signatures of the texts it holds."""
    import pyarrow as pa

    config = MinHashConfig()
    texts = real_texts(data_root, 100) + AWKWARD
    whole = pa.array(texts, pa.string())
    assert np.array_equal(signatures(whole.slice(37, 40), config), signatures(texts[37:77], config))
    sliced_sets = shingle_sets(whole.slice(90), 5)
    assert all(np.array_equal(a, b) for a, b in zip(sliced_sets, shingle_sets(texts[90:], 5)))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet="abcdef ", max_size=60), min_size=1, max_size=8), st.data())
def test_common_shingles_count_the_intersection(texts, data):
    table = shingle_table(texts, 1)
    sets = [set(s.tolist()) for s in shingle_sets(texts, 1)]
    pairs = data.draw(st.lists(st.tuples(st.integers(0, len(texts) - 1),
                                         st.integers(0, len(texts) - 1)), max_size=20))
    a = np.array([p[0] for p in pairs], np.int64)
    b = np.array([p[1] for p in pairs], np.int64)
    assert common_shingles(table, a, table, b).tolist() == [len(sets[x] & sets[y]) for x, y in pairs]
