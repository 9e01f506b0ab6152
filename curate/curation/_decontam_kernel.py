"""Compiled kernel behind decontamination's tiers 1-3 (numba): one pass over each
record's normalised text finds its tier-1 n-grams and the windows that hold enough of a
benchmark key's rare shingles, without making the windows' texts or a table of their
shingles. Hashes are those of ``curate.curation._minhash_kernel`` (``xxh64``, ``_shingle``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from curate.curation._minhash_kernel import _shingle, xxh64

_U = np.uint64


@njit(cache=True)
def hash_slots(values):
    """A look-up table of the distinct uint64 ``values`` (already well mixed: shingle hashes):
    (slots, filter). The slots are an open-addressing table, a power of two at least twice
    their count in size: slot ``s`` holds a value (``[s, 0]``) and its index in ``values``
    plus one (``[s, 1]``; 0: empty), side by side so that a look-up reads one cache line.
    The filter has a bit per 8 slots' worth of values, set by each value's top bits: most
    texts' shingles are in no benchmark item, and the filter (16 bits per value, 1/16 of
    the slots' size) answers them from the cache."""
    size = 4
    while size < 2 * len(values):
        size *= 2
    table = np.zeros((size, 2), dtype=np.uint64)
    bits = np.zeros(size // 8, dtype=np.uint64)
    mask = _U(size - 1)
    shift = _filter_shift(bits)
    for i in range(len(values)):
        h = values[i]
        s = h & mask
        while table[s, 1] != 0 and table[s, 0] != h:
            s = (s + _U(1)) & mask
        table[s, 0] = h
        table[s, 1] = _U(i + 1)
        p = h >> shift
        bits[p >> _U(6)] |= _U(1) << (p & _U(63))
    return table, bits


@njit(inline="always")
def _filter_shift(bits):
    """How far a hash is shifted right to index the ``len(bits) * 64`` bits of a filter."""
    n = 6
    while (1 << n) < len(bits) * 64:
        n += 1
    return _U(64 - n)


@njit(inline="always")
def _find(table, bits, shift, h):
    """The index of ``h`` in the values of a table (``hash_slots``), or -1."""
    p = h >> shift
    if (bits[p >> _U(6)] >> (p & _U(63))) & _U(1) == 0:
        return -1
    mask = _U(len(table) - 1)
    s = h & mask
    while table[s, 1] != 0:
        if table[s, 0] == h:
            return np.int64(table[s, 1]) - 1
        s = (s + _U(1)) & mask
    return -1


@njit(inline="always")
def _decode(data, p):
    """The code point at byte ``p`` of UTF-8 ``data`` and its size in bytes."""
    c = data[p]
    if c < 0x80:
        return np.int64(c), 1
    if c < 0xE0:
        return (np.int64(c & 0x1F) << 6) | np.int64(data[p + 1] & 0x3F), 2
    if c < 0xF0:
        return ((np.int64(c & 0x0F) << 12) | (np.int64(data[p + 1] & 0x3F) << 6)
                | np.int64(data[p + 2] & 0x3F)), 3
    return ((np.int64(c & 0x07) << 18) | (np.int64(data[p + 1] & 0x3F) << 12)
            | (np.int64(data[p + 2] & 0x3F) << 6) | np.int64(data[p + 3] & 0x3F)), 4


@njit(inline="always")
def _words_and_tokens(data, start, end, word, space):
    """The tokens of ``data[start:end]`` (XXH64 of each run of ``word`` code points, as
    ``_token_hashes``), the whitespace-separated word (``space`` code points separate words,
    as ``str.split()``) each token lies in, and the number of words."""
    hashes = np.empty((end - start) // 2 + 1, dtype=np.uint64)
    owner = np.empty((end - start) // 2 + 1, dtype=np.int64)
    count = 0
    words = 0
    in_word = False
    token = -1
    p = start
    while p < end:
        point, size = _decode(data, p)
        if space[point]:
            in_word = False
        elif not in_word:
            in_word = True
            words += 1
        if word[point]:
            if token < 0:
                token = p
        elif token >= 0:
            hashes[count] = xxh64(data, token, p)
            owner[count] = words - 1
            count += 1
            token = -1
        p += size
    if token >= 0:
        hashes[count] = xxh64(data, token, end)
        owner[count] = words - 1
        count += 1
    return hashes[:count], owner[:count], words


@njit(cache=True)
def _window(first, last, rare, earlier, lo, hi, key_start, key_of, key_need, touched, counts, out_key,
            out_at):
    """The keys a window is a candidate of: every key of a width it serves (``lo`` to ``hi``)
    whose distinct rare shingles it holds at least ``key_need`` of. The window is the run
    ``first:last`` of the text's shingle positions (``_rare_shingles``); a shingle counts at
    its first position in the window. Written to ``out_key`` from ``out_at`` when it has
    room; returns how many."""
    k = 0
    for p in range(first, last):
        a = rare[p]
        if a < 0 or earlier[p] >= first:
            continue
        for j in range(key_start[a, lo], key_start[a, hi + 1]):
            key = key_of[j]
            if counts[key] == 0:
                touched[k] = key
                k += 1
            counts[key] += 1
    found = 0
    for i in range(k):
        key = touched[i]
        if counts[key] >= key_need[key]:
            if out_at + found < len(out_key):
                out_key[out_at + found] = key
            found += 1
        counts[key] = 0
    return found


@njit(cache=True)
def _rare_shingles(hashes, doc, anchors, anchor_bits, last_doc, last_at):
    """A text's rare shingles in one run: position ``2 t`` is token ``t`` (a word), ``2 t + 1``
    the pair of tokens ``t`` and ``t + 1``, each the index of its rare shingle or -1; and each
    position's previous one with the same rare shingle (or -1). Tokens ``a`` to ``b`` span
    positions ``2 a`` to ``2 b - 1`` (``b - a`` words and ``b - a - 1`` pairs: a one-token run
    has no pair, its word stands for it). ``last_doc`` and ``last_at`` (per rare shingle) are
    scratch space, reused from text to text."""
    shift = _filter_shift(anchor_bits)
    n = len(hashes)
    rare = np.full(2 * n, -1, dtype=np.int64)
    earlier = np.full(2 * n, -1, dtype=np.int64)
    for t in range(n):
        rare[2 * t] = _find(anchors, anchor_bits, shift, _shingle(hashes, t, 1))
        if t + 1 < n:
            rare[2 * t + 1] = _find(anchors, anchor_bits, shift, _shingle(hashes, t, 2))
    for p in range(2 * n):
        a = rare[p]
        if a >= 0:
            if last_doc[a] == doc:
                earlier[p] = last_at[a]
            last_doc[a] = doc
            last_at[a] = p
    return rare, earlier


@njit(cache=True)
def _scan_text(data, start, end, word, space, doc, ngram, ngrams, ngram_bits, windowed, lo, hi, widths,
               anchors, anchor_bits, key_start, key_of, key_need, counts, touched, last_doc,
               last_at, write, ngram_doc, ngram_hash, ngram_at, cand_doc, cand_window, cand_first,
               cand_last, cand_key, cand_at):
    """One text: its tier-1 n-gram hits (``ngram`` > 0) and window candidates; written from
    ``ngram_at`` and ``cand_at`` when ``write``. Returns (n-gram hits, candidates)."""
    hashes, owner, words = _words_and_tokens(data, start, end, word, space)
    n = len(hashes)
    hits = 0
    if ngram > 0 and n > 0:
        g = min(ngram, n)
        shift = _filter_shift(ngram_bits)
        for s in range(n - g + 1):
            h = _shingle(hashes, s, g)
            if _find(ngrams, ngram_bits, shift, h) >= 0:
                if write:
                    ngram_doc[ngram_at + hits] = doc
                    ngram_hash[ngram_at + hits] = h
                hits += 1
    if len(key_start) == 0 or n == 0:
        return hits, 0
    rare, earlier = _rare_shingles(hashes, doc, anchors, anchor_bits, last_doc, last_at)
    none = cand_key[:0]
    if not windowed:  # the whole text is one window
        k = _window(0, 2 * n - 1, rare, earlier, lo, hi, key_start, key_of, key_need, touched, counts,
                    cand_key if write else none, cand_at)
        if write:
            for i in range(k):
                cand_doc[cand_at + i] = doc
                cand_window[cand_at + i] = 0
                cand_first[cand_at + i] = 0
                cand_last[cand_at + i] = words
        return hits, k
    # the first token of each word (and one past the last): windows are runs of words
    first = np.empty(words + 1, dtype=np.int64)
    t = 0
    for w in range(words + 1):
        while t < n and owner[t] < w:
            t += 1
        first[w] = t
    found = 0
    ordinal = 0
    last_width = len(widths) - 1
    for w in range(len(widths)):
        width = widths[w]
        whole = words <= width
        step = max(1, width // 2)
        spans = 1 if whole else (words - 1) // step  # len(range(0, words - step, step))
        for i in range(spans):
            a = 0 if whole else i * step
            b = words if whole else min(a + width, words)
            k = 0
            if first[b] > first[a]:
                k = _window(2 * first[a], 2 * first[b] - 1, rare, earlier, w, last_width if whole else w,
                            key_start, key_of, key_need, touched, counts, cand_key if write else none,
                            cand_at + found)
            if write:
                for j in range(k):
                    cand_doc[cand_at + found + j] = doc
                    cand_window[cand_at + found + j] = ordinal
                    cand_first[cand_at + found + j] = a
                    cand_last[cand_at + found + j] = b
            found += k
            ordinal += 1
        if whole:
            break
    return hits, found


@njit(parallel=True, cache=True)
def scan_texts(offsets, data, word, space, ngram, ngrams, ngram_bits, windowed, lo, hi, widths, anchors,
               anchor_bits, key_start, key_of, key_need, chunk):
    """Tiers 1-3's look-up over texts (see ``BenchmarkIndex.look_up``), ``chunk`` texts per
    task. Tier 1: the texts' ``ngram``-token shingles found in the table ``ngrams`` (none when
    ``ngram`` is 0; tables and their filters as ``hash_slots`` makes them). Tiers 2 and 3: each
    text is cut into windows of ``widths`` words (``windowed``) or is one window serving
    widths ``lo`` to ``hi``; its candidates are the keys (``_window``) of the rare shingles in
    the table ``anchors`` whose key lists (``key_start``, ``key_of``) and needs (``key_need``)
    describe. A first pass counts each text's n-gram hits and candidates, a second fills them
    in for the texts that have any.
    Returns (n-gram doc, n-gram hash) and (candidate doc, window ordinal, first word, last
    word + 1, key)."""
    n_docs = len(offsets) - 1
    n_keys = len(key_need)
    n_rare = len(key_start)
    n_chunks = (n_docs + chunk - 1) // chunk
    hit_count = np.zeros(n_docs, dtype=np.int64)
    cand_count = np.zeros(n_docs, dtype=np.int64)
    empty_u = np.empty(0, dtype=np.uint64)
    empty_i = np.empty(0, dtype=np.int64)
    empty_c = np.empty(0, dtype=np.int32)
    for c in prange(n_chunks):
        counts = np.zeros(n_keys, dtype=np.int32)
        touched = np.empty(n_keys, dtype=np.int32)
        last_doc = np.full(n_rare, -1, dtype=np.int64)
        last_at = np.empty(n_rare, dtype=np.int64)
        for doc in range(c * chunk, min((c + 1) * chunk, n_docs)):
            h, k = _scan_text(data, offsets[doc], offsets[doc + 1], word, space, doc, ngram, ngrams,
                              ngram_bits, windowed[doc], lo[doc], hi[doc], widths, anchors, anchor_bits,
                              key_start, key_of, key_need, counts, touched, last_doc, last_at, False, empty_i,
                              empty_u, 0, empty_i, empty_i, empty_i, empty_i, empty_c, 0)
            hit_count[doc] = h
            cand_count[doc] = k
    hit_at = np.zeros(n_docs + 1, dtype=np.int64)
    hit_at[1:] = np.cumsum(hit_count)
    cand_at = np.zeros(n_docs + 1, dtype=np.int64)
    cand_at[1:] = np.cumsum(cand_count)
    ngram_doc = np.empty(hit_at[-1], dtype=np.int64)
    ngram_hash = np.empty(hit_at[-1], dtype=np.uint64)
    cand_doc = np.empty(cand_at[-1], dtype=np.int64)
    cand_window = np.empty(cand_at[-1], dtype=np.int64)
    cand_first = np.empty(cand_at[-1], dtype=np.int64)
    cand_last = np.empty(cand_at[-1], dtype=np.int64)
    cand_key = np.empty(cand_at[-1], dtype=np.int32)
    busy = np.flatnonzero((hit_count > 0) | (cand_count > 0))
    n_busy_chunks = (len(busy) + chunk - 1) // chunk
    for c in prange(n_busy_chunks):
        counts = np.zeros(n_keys, dtype=np.int32)
        touched = np.empty(n_keys, dtype=np.int32)
        last_doc = np.full(n_rare, -1, dtype=np.int64)
        last_at = np.empty(n_rare, dtype=np.int64)
        for i in range(c * chunk, min((c + 1) * chunk, len(busy))):
            doc = busy[i]
            _scan_text(data, offsets[doc], offsets[doc + 1], word, space, doc, ngram, ngrams, ngram_bits,
                       windowed[doc], lo[doc], hi[doc], widths, anchors, anchor_bits, key_start, key_of,
                       key_need, counts, touched, last_doc, last_at, True, ngram_doc, ngram_hash, hit_at[doc],
                       cand_doc, cand_window, cand_first, cand_last, cand_key, cand_at[doc])
    return ngram_doc, ngram_hash, cand_doc, cand_window, cand_first, cand_last, cand_key


@njit(cache=True)
def code_points(offsets, data, seen):
    """Mark in ``seen`` every code point of the UTF-8 texts."""
    for doc in range(len(offsets) - 1):
        p = offsets[doc]
        while p < offsets[doc + 1]:
            point, size = _decode(data, p)
            seen[point] = True
            p += size


@njit(cache=True)
def holds_any(offsets, data, marked):
    """Whether each UTF-8 text holds a code point marked in ``marked``."""
    out = np.zeros(len(offsets) - 1, dtype=np.bool_)
    for doc in range(len(offsets) - 1):
        p = offsets[doc]
        while p < offsets[doc + 1]:
            point, size = _decode(data, p)
            if marked[point]:
                out[doc] = True
                break
            p += size
    return out
