"""MinHash signatures and LSH banding, vectorised, interchangeable with datasketch.

Every stage that compares texts by MinHash (near-dup dedup, decontamination) takes one
``MinHashConfig``, so shingle size, permutations, bands and seed always agree.

Text to shingles: Unicode NFKC, lower case, then tokens are runs of word characters
(regex ``\\w+``: punctuation and whitespace fold away); a shingle is ``ngram``
consecutive tokens (a text with fewer tokens is one shingle of all of them).

Shingle hash: each token is hashed with XXH64 (seed 0) over its UTF-8 bytes, and the
``ngram`` token hashes are combined in order (``shingle_hash`` states the mix in plain
Python). Permutations: datasketch's ``affine64`` scheme, bit for bit: the shingle hash is
pre-mixed with the MurmurHash3 64-bit finalizer and permuted by ``a * h + b mod 2**64``
with ``(a, b)`` drawn from ``numpy.random.RandomState(seed)`` as datasketch draws them.
So ``datasketch.MinHash(num_perm, seed=seed, scheme="affine64", hashfunc=shingle_hash)``
updated with ``shingles(text)`` has exactly the hash values of ``signatures([text])``,
and our signatures load into datasketch's ``MinHashLSH`` and its storage backends.

Normalising runs in pyarrow; tokenising, hashing, permuting and taking minima run in
one compiled numba kernel over the Arrow string buffers, in parallel over documents.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from curate.curation.tokens import tokens

if TYPE_CHECKING:
    import pyarrow as pa

    from curate.curation.config import MinHashConfig


MAX_HASH = np.uint64(0xFFFFFFFFFFFFFFFF)
_P1, _P2, _P3, _P4, _P5 = (
    0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x85EBCA77C2B2AE63,
    0x27D4EB2F165667C5,
)
_MASK = (1 << 64) - 1
_CHUNK = 20_000  # texts normalised at once by the table builders


def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """Chance that two texts of this Jaccard similarity share at least one band."""
    return 1 - (1 - similarity**rows) ** bands


@cache
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of datasketch's ``affine64`` scheme for ``seed``."""
    generator = np.random.RandomState(seed)
    a = generator.randint(0, 1 << 63, num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = generator.randint(0, 1 << 64, num_perm, dtype=np.uint64)
    return a, b


# -- the plain-Python statement (for datasketch users and as a test oracle) ---------------


def shingles(text: str, ngram: int = 5) -> list[bytes]:
    """The shingles of ``text`` as UTF-8 bytes, tokens joined by one space."""
    words = tokens(text)
    if not words:
        return []
    if len(words) <= ngram:
        return [" ".join(words).encode()]
    return [" ".join(words[i : i + ngram]).encode() for i in range(len(words) - ngram + 1)]


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _MASK


def shingle_hash(shingle: bytes) -> int:
    """The 64-bit hash of one shingle (its tokens joined by single spaces)."""
    import xxhash

    acc = _P5
    for word in shingle.split(b" "):
        acc = _rotl(((acc ^ xxhash.xxh64_intdigest(word)) * _P1) & _MASK, 31)
    acc ^= acc >> 33
    acc = (acc * _P2) & _MASK
    acc ^= acc >> 29
    acc = (acc * _P3) & _MASK
    return acc ^ (acc >> 32)


# -- vectorised -------------------------------------------------------------------------


def plain(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``texts`` as one Arrow ``large_string`` array, a null text empty."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    # pyarrow 26 casts a slice to large_string with offsets that do not start at 0, and
    # its string kernels then read the wrong bytes: concatenating rebuilds the buffers.
    return pc.fill_null(pa.concat_arrays([texts.cast(pa.large_string())]), "")


def normalize(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """NFKC and lower case, as Arrow strings (ASCII texts take a fast path: NFKC leaves
    them as they are)."""
    import pyarrow.compute as pc

    texts = plain(texts)
    lowered = pc.ascii_lower(texts)
    ascii_mask = pc.string_is_ascii(texts)
    if pc.all(ascii_mask).as_py():
        return lowered
    others = pc.invert(ascii_mask)
    unicode = pc.utf8_lower(pc.utf8_normalize(texts.filter(others), "NFKC"))
    return pc.replace_with_mask(lowered, others, unicode)


@cache
def word_characters() -> np.ndarray:
    """For every code point, whether Python's ``re`` counts it in ``\\w``."""
    table = np.fromiter((chr(c).isalnum() for c in range(0x110000)), np.bool_, 0x110000)
    table[ord("_")] = True
    return table


def text_buffers(
    texts: pa.Array | pa.ChunkedArray | list[str], *, normalized: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """``texts`` as the kernels read them: (offsets, data), text ``i`` being the UTF-8
    bytes ``data[offsets[i]:offsets[i + 1]]``; normalised (``normalize``) unless
    ``normalized`` is False."""
    import pyarrow as pa

    if isinstance(texts, list):
        texts = pa.array(texts, pa.large_string())
    texts = normalize(texts) if normalized else plain(texts)
    _, offsets_buf, data_buf = texts.buffers()
    offsets = np.frombuffer(offsets_buf, np.int64)[texts.offset : texts.offset + len(texts) + 1]
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(1, np.uint8)
    return offsets, data


def signatures(texts: pa.Array | pa.ChunkedArray | list[str], config: MinHashConfig) -> np.ndarray:
    """MinHash signatures, shape ``(len(texts), num_perm)``, dtype uint64.

    A text without a single token (empty or null) gets the all-max signature.
    """
    from curate.curation._minhash_kernel import minhash_kernel

    offsets, data = text_buffers(texts)
    a, b = permutations(config.num_perm, config.seed)
    return minhash_kernel(offsets, data, word_characters(), config.ngram, a, b)


def shingle_table(
    texts: pa.Array | pa.ChunkedArray | list[str], ngram: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every text's distinct shingle hashes, sorted, flat; text ``i`` owns
    ``flat[starts[i]:starts[i + 1]]``. Texts are normalised ``_CHUNK`` at a time, so
    the copies normalising makes stay small."""
    import pyarrow as pa

    from curate.curation._minhash_kernel import shingle_hash_kernel

    if isinstance(texts, list):
        texts = pa.array(texts, pa.large_string())
    flats, starts = [], [np.zeros(1, np.int64)]
    for first in range(0, len(texts), _CHUNK):
        offsets, data = text_buffers(texts.slice(first, _CHUNK))
        flat, own = shingle_hash_kernel(offsets, data, word_characters(), ngram)
        flats.append(flat)
        starts.append(own[1:] + starts[-1][-1])
    return (np.concatenate(flats) if flats else np.zeros(0, np.uint64)), np.concatenate(starts)


def shingle_novelty(
    texts: pa.Array | pa.ChunkedArray | list[str], ngram: int, *, width: int, common: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every text's shingles in order (``flat[starts[i]:starts[i + 1]]``, repeats kept)
    and, per shingle, how many of its tokens no ``width``-token shingle in ``common``
    covers. With an empty ``common``, the plain positional shingles of ``width``."""
    from curate.curation._minhash_kernel import ngram_novelty

    offsets, data = text_buffers(texts)
    return ngram_novelty(offsets, data, word_characters(), ngram, width,
                         np.unique(np.asarray(common, np.uint64)))


def shingle_hits(
    texts: pa.Array | pa.ChunkedArray | list[str], ngram: int, wanted: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(text index, shingle hash) for every shingle of ``texts`` found in ``wanted``
    (repeats kept): a lookup that never holds all shingles of all texts."""
    from curate.curation._minhash_kernel import shingle_hits as kernel

    offsets, data = text_buffers(texts)
    return kernel(offsets, data, word_characters(), ngram, np.unique(np.asarray(wanted, np.uint64)))


def shingle_sets(texts: pa.Array | pa.ChunkedArray | list[str], ngram: int) -> list[np.ndarray]:
    """Each text's distinct shingle hashes, sorted."""
    flat, starts = shingle_table(texts, ngram)
    return [flat[starts[i] : starts[i + 1]] for i in range(len(starts) - 1)]


def common_shingles(
    a: tuple[np.ndarray, np.ndarray], index_a: np.ndarray,
    b: tuple[np.ndarray, np.ndarray], index_b: np.ndarray,
) -> np.ndarray:
    """For each pair ``p``: how many shingles text ``index_a[p]`` of table ``a`` shares
    with text ``index_b[p]`` of table ``b`` (tables as ``shingle_table`` returns them),
    in one compiled pass over all pairs."""
    from curate.curation._minhash_kernel import common_counts

    return common_counts(a[0], a[1], np.asarray(index_a, np.int64), b[0], b[1],
                         np.asarray(index_b, np.int64))


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per (document, band): a hash of the band's ``rows`` values.

    Shape ``(len(sigs), bands)``; equal keys mean equal bands (up to 2**-64 collisions).
    """
    keys = np.full(sigs.shape[0], np.uint64(_P5), dtype=np.uint64)[:, None].repeat(bands, axis=1)
    with np.errstate(over="ignore"):
        for r in range(rows):
            column = sigs[:, r : bands * rows : rows]
            keys = (keys ^ column) * np.uint64(_P1)
            keys = (keys << np.uint64(31)) | (keys >> np.uint64(33))
    return keys


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted arrays of distinct hashes."""
    if len(a) == 0 and len(b) == 0:
        return 0.0
    common = len(np.intersect1d(a, b, assume_unique=True))
    return common / (len(a) + len(b) - common)


def compile_kernels() -> None:
    """Compile every numba kernel into numba's on-disk cache (``__pycache__`` beside the
    kernels): about 18 s on 2 cores, once per install. ``make demo`` and ``make test`` call it
    while setting up, so that a first run spends no time compiling; without it, the first
    call of each kernel compiles it."""
    import pyarrow as pa

    from curate.curation.config import MinHashConfig

    texts = pa.array(["compile the kernels once", "then every run loads them from the cache"],
                     pa.large_string())
    signatures(texts, MinHashConfig())
    table = shingle_table(texts, 2)
    shingle_novelty(texts, 3, width=3, common=np.zeros(0, np.uint64))
    shingle_hits(texts, 2, table[0])
    common_shingles(table, np.arange(2), table, np.arange(2))
    compile_decontam_kernels()


def compile_decontam_kernels() -> None:
    """Compile decontamination's kernels (``curate.curation._decontam_kernel``)."""
    from curate.curation._decontam_kernel import code_points, hash_slots, holds_any, scan_texts

    offsets, data = text_buffers(["compile the kernels once", "´"], normalized=False)
    seen = np.zeros(0x110000, np.bool_)
    code_points(offsets, data, seen)
    holds_any(offsets, data, seen)
    hashes = shingle_table(["compile the kernels once"], 1)[0]
    table, bits = hash_slots(hashes)
    zero = np.zeros(2, np.int64)
    scan_texts(offsets, data, word_characters(), np.zeros(0x110000, np.bool_), 2, table, bits,
               np.ones(2, np.bool_), zero, zero, np.array([2, 4]), table, bits,
               np.zeros((len(hashes), 3), np.int64), np.zeros(0, np.int32), np.ones(1, np.int32), 1)
