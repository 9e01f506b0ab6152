"""Compiled kernels behind ``curate.curation.minhash`` (numba; all arithmetic is uint64
and wraps modulo 2**64, as XXH64 and datasketch's affine64 scheme require)."""

from __future__ import annotations

import os

import numba
import numpy as np
from numba import njit, prange

if "NUMBA_THREADING_LAYER" not in os.environ:
    # numba's default OpenMP layer shares libgomp with torch: once it has run, torch's
    # bfloat16 attention (MKL GEMMs inside torch's own OpenMP loop) spends its time waiting in
    # libgomp; MiniLM over 7,272 benchmark texts took over 10 minutes instead of 36 s. The
    # workqueue layer runs these kernels as fast (measured on 49,221 MedQuAD texts).
    numba.config.THREADING_LAYER = "workqueue"  # type: ignore[attr-defined]

_U = np.uint64
P1 = _U(0x9E3779B185EBCA87)
P2 = _U(0xC2B2AE3D27D4EB4F)
P3 = _U(0x165667B19E3779F9)
P4 = _U(0x85EBCA77C2B2AE63)
P5 = _U(0x27D4EB2F165667C5)
FMIX1 = _U(0xFF51AFD7ED558CCD)
FMIX2 = _U(0xC4CEB9FE1A85EC53)
MAX = _U(0xFFFFFFFFFFFFFFFF)


@njit(inline="always")
def _rotl(x, r):
    return (x << _U(r)) | (x >> _U(64 - r))


@njit(inline="always")
def _read64(data, p):
    v = _U(0)
    for i in range(8):
        v |= _U(data[p + i]) << _U(8 * i)
    return v


@njit(inline="always")
def _read32(data, p):
    v = _U(0)
    for i in range(4):
        v |= _U(data[p + i]) << _U(8 * i)
    return v


@njit(inline="always")
def _round(acc, value):
    acc = acc + value * P2
    acc = _rotl(acc, 31)
    return acc * P1


@njit(inline="always")
def _merge(acc, value):
    acc ^= _round(_U(0), value)
    return acc * P1 + P4


@njit
def xxh64(data, start, end):
    """XXH64 with seed 0 of ``data[start:end]`` (equal to ``xxhash.xxh64_intdigest``)."""
    n = end - start
    p = start
    if n >= 32:
        v1 = P1 + P2
        v2 = P2
        v3 = _U(0)
        v4 = _U(0) - P1
        limit = end - 32
        while p <= limit:
            v1 = _round(v1, _read64(data, p))
            v2 = _round(v2, _read64(data, p + 8))
            v3 = _round(v3, _read64(data, p + 16))
            v4 = _round(v4, _read64(data, p + 24))
            p += 32
        h = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        h = _merge(h, v1)
        h = _merge(h, v2)
        h = _merge(h, v3)
        h = _merge(h, v4)
    else:
        h = P5
    h += _U(n)
    while p + 8 <= end:
        h ^= _round(_U(0), _read64(data, p))
        h = _rotl(h, 27) * P1 + P4
        p += 8
    if p + 4 <= end:
        h ^= _read32(data, p) * P1
        h = _rotl(h, 23) * P2 + P3
        p += 4
    while p < end:
        h ^= _U(data[p]) * P5
        h = _rotl(h, 11) * P1
        p += 1
    h ^= h >> _U(33)
    h *= P2
    h ^= h >> _U(29)
    h *= P3
    h ^= h >> _U(32)
    return h


@njit(inline="always")
def _shingle(token_hashes, first, width):
    acc = P5
    for j in range(width):
        acc = _rotl((acc ^ token_hashes[first + j]) * P1, 31)
    acc ^= acc >> _U(33)
    acc *= P2
    acc ^= acc >> _U(29)
    acc *= P3
    return acc ^ (acc >> _U(32))


@njit(inline="always")
def _token_hashes(data, start, end, word):
    """XXH64 of every token of the UTF-8 text ``data[start:end]``: a token is a maximal
    run of code points marked in ``word`` (the ``\\w`` of Python's ``re``)."""
    hashes = np.empty((end - start) // 2 + 1, dtype=np.uint64)
    count = 0
    token = -1
    p = start
    while p < end:
        c = data[p]
        if c < 0x80:
            point, size = np.int64(c), 1
        elif c < 0xE0:
            point, size = (np.int64(c & 0x1F) << 6) | np.int64(data[p + 1] & 0x3F), 2
        elif c < 0xF0:
            point = ((np.int64(c & 0x0F) << 12) | (np.int64(data[p + 1] & 0x3F) << 6)
                     | np.int64(data[p + 2] & 0x3F))
            size = 3
        else:
            point = ((np.int64(c & 0x07) << 18) | (np.int64(data[p + 1] & 0x3F) << 12)
                     | (np.int64(data[p + 2] & 0x3F) << 6) | np.int64(data[p + 3] & 0x3F))
            size = 4
        if word[point]:
            if token < 0:
                token = p
        elif token >= 0:
            hashes[count] = xxh64(data, token, p)
            count += 1
            token = -1
        p += size
    if token >= 0:
        hashes[count] = xxh64(data, token, end)
        count += 1
    return hashes[:count]


@njit(parallel=True, cache=True)
def minhash_kernel(offsets, data, word, ngram, a, b):
    n_docs = len(offsets) - 1
    num_perm = len(a)
    out = np.empty((n_docs, num_perm), dtype=np.uint64)
    for doc in prange(n_docs):
        row = out[doc]
        for k in range(num_perm):
            row[k] = MAX
        hashes = _token_hashes(data, offsets[doc], offsets[doc + 1], word)
        n = len(hashes)
        if n == 0:
            continue
        width = min(ngram, n)
        for s in range(n - width + 1):
            h = _shingle(hashes, s, width)
            h ^= h >> _U(33)
            h *= FMIX1
            h ^= h >> _U(33)
            h *= FMIX2
            h ^= h >> _U(33)
            for k in range(num_perm):
                v = a[k] * h + b[k]
                if v < row[k]:
                    row[k] = v
    return out


@njit(cache=True)
def shingle_hash_kernel(offsets, data, word, ngram):
    """Every document's distinct shingle hashes, sorted, flat, with each one's start."""
    n_docs = len(offsets) - 1
    parts = []
    starts = np.zeros(n_docs + 1, dtype=np.int64)
    for doc in range(n_docs):
        hashes = _token_hashes(data, offsets[doc], offsets[doc + 1], word)
        n = len(hashes)
        if n == 0:
            parts.append(np.empty(0, dtype=np.uint64))
        else:
            width = min(ngram, n)
            shingles = np.empty(n - width + 1, dtype=np.uint64)
            for s in range(n - width + 1):
                shingles[s] = _shingle(hashes, s, width)
            parts.append(np.unique(shingles))
        starts[doc + 1] = starts[doc] + len(parts[-1])
    out = np.empty(starts[-1], dtype=np.uint64)
    for doc in range(n_docs):
        out[starts[doc] : starts[doc + 1]] = parts[doc]
    return out, starts


@njit(inline="always")
def _shared(small, large):
    """How many elements of sorted ``small`` are in sorted ``large`` (bisection)."""
    if len(small) == 0:
        return 0
    positions = np.searchsorted(large, small)
    count = 0
    for i in range(len(small)):
        if positions[i] < len(large) and large[positions[i]] == small[i]:
            count += 1
    return count


@njit(parallel=True, cache=True)
def common_counts(flat_a, starts_a, index_a, flat_b, starts_b, index_b):
    """For each pair ``p``: how many hashes set ``index_a[p]`` of table a shares with set
    ``index_b[p]`` of table b (tables as ``shingle_hash_kernel`` returns them: sorted,
    distinct). Each element of the smaller set is looked up in the larger by bisection."""
    out = np.zeros(len(index_a), dtype=np.int64)
    for p in prange(len(index_a)):
        a = flat_a[starts_a[index_a[p]] : starts_a[index_a[p] + 1]]
        b = flat_b[starts_b[index_b[p]] : starts_b[index_b[p] + 1]]
        out[p] = _shared(a, b) if len(a) <= len(b) else _shared(b, a)
    return out


@njit(cache=True)
def ngram_novelty(offsets, data, word, ngram, width, common):
    """Every text's shingles of ``ngram`` tokens in order (not deduplicated), each with
    its count of *novel* tokens: tokens that no shingle of ``width`` tokens found in
    ``common`` (sorted) covers. Returns (hashes, starts, novel)."""
    n_docs = len(offsets) - 1
    parts = []
    novelty = []
    starts = np.zeros(n_docs + 1, dtype=np.int64)
    for doc in range(n_docs):
        hashes = _token_hashes(data, offsets[doc], offsets[doc + 1], word)
        n = len(hashes)
        covered = np.zeros(n + 1, dtype=np.int64)  # a difference array, then a prefix sum
        if n > 0 and len(common) > 0:
            w = min(width, n)
            for s in range(n - w + 1):
                h = _shingle(hashes, s, w)
                i = np.searchsorted(common, h)
                if i < len(common) and common[i] == h:
                    covered[s] += 1
                    covered[s + w] -= 1
        novel_before = np.zeros(n + 1, dtype=np.int64)
        depth = 0
        for t in range(n):
            depth += covered[t]
            novel_before[t + 1] = novel_before[t] + (1 if depth == 0 else 0)
        count = n - min(ngram, n) + 1 if n > 0 else 0
        shingles = np.empty(count, dtype=np.uint64)
        novel = np.empty(count, dtype=np.int64)
        g = min(ngram, n)
        for s in range(count):
            shingles[s] = _shingle(hashes, s, g)
            novel[s] = novel_before[s + g] - novel_before[s]
        parts.append(shingles)
        novelty.append(novel)
        starts[doc + 1] = starts[doc] + count
    out = np.empty(starts[-1], dtype=np.uint64)
    out_novel = np.empty(starts[-1], dtype=np.int64)
    for doc in range(n_docs):
        out[starts[doc] : starts[doc + 1]] = parts[doc]
        out_novel[starts[doc] : starts[doc + 1]] = novelty[doc]
    return out, starts, out_novel


@njit(inline="always")
def _hits_of(data, start, end, word, ngram, wanted, out):
    """The shingles of one text found in sorted ``wanted``: written to ``out`` (when it
    has room) and counted."""
    hashes = _token_hashes(data, start, end, word)
    n = len(hashes)
    if n == 0:
        return 0
    width = min(ngram, n)
    count = 0
    for s in range(n - width + 1):
        h = _shingle(hashes, s, width)
        i = np.searchsorted(wanted, h)
        if i < len(wanted) and wanted[i] == h:
            if count < len(out):
                out[count] = h
            count += 1
    return count


@njit(parallel=True, cache=True)
def shingle_hits(offsets, data, word, ngram, wanted):
    """For every text, its shingles that are in ``wanted`` (sorted): (text index, hash)
    pairs, repeats kept. Nothing else is materialised, so texts stream through."""
    n_docs = len(offsets) - 1
    counts = np.zeros(n_docs, dtype=np.int64)
    none = np.empty(0, dtype=np.uint64)
    for doc in prange(n_docs):
        counts[doc] = _hits_of(data, offsets[doc], offsets[doc + 1], word, ngram, wanted, none)
    starts = np.zeros(n_docs + 1, dtype=np.int64)
    starts[1:] = np.cumsum(counts)
    docs = np.empty(starts[-1], dtype=np.int64)
    found = np.empty(starts[-1], dtype=np.uint64)
    for doc in prange(n_docs):
        if counts[doc] > 0:
            _hits_of(data, offsets[doc], offsets[doc + 1], word, ngram, wanted,
                     found[starts[doc] : starts[doc + 1]])
            docs[starts[doc] : starts[doc + 1]] = doc
    return docs, found
