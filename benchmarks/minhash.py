"""MinHash near-dedup and decontamination: curate vs datasketch vs DataTrove, in one run.

A seeded generator writes a corpus (default 200,000 documents of 50-400 words drawn from
the word frequencies of the real MedQuAD answers) with planted near-duplicates: 5% of
the documents are originals with 1-3 copies each, a copy having 5-20% of its tokens
replaced, inserted or deleted in 1-8 spans. It also writes 2,000 MCQA-like benchmark
items: a question of 12-49 words (30% end in a stock exam phrase) and four options of
1-4 words drawn without the 300 most frequent words (real options are content words).
200 items are planted into documents in four kinds (verbatim or edited, alone or
embedded in a longer text); 0.5% of the clean documents carry a stock exam phrase and
must not be flagged. The truth: the planted (original, copy) pairs, binned by their
exact Jaccard similarity on 5-word shingles (curate's plain-Python ``shingles``), and
the planted items.

Each tool runs in a fresh subprocess, so peak RSS is its own (DataTrove's worker
processes are summed in with psutil):

- curate kernel: ``signatures``; LSH = ``band_keys`` + ``candidate_pairs``; clustering =
  ``verify`` (exact Jaccard >= 0.8) + ``clusters``.
- curate pipeline: ``ingest`` of the JSON Lines file (one subprocess), then the
  ``near_dedup`` and ``decontam`` stages with ``run_stages`` (another): the honest
  end-to-end figure.
- datasketch, as its docs recommend for many documents (``MinHash.bulk`` over
  ``shingles(text)``, ``MinHashLSH`` with an insertion session, queried per document;
  clustering = verification by the estimated Jaccard >= 0.8 + connected components), twice:
  "defaults" (its default hash ``sha1_hash32``, scheme affine32, ``MinHashLSH(threshold=0.8)``
  with its default weights: 9 bands x 13 rows, candidate probability 0.40 at J = 0.8) and
  "matched" (``hashfunc=xxhash.xxh64_intdigest``, scheme affine64, ``params`` = curate's
  banding, 18 x 7: the same candidate probability as curate, 0.986).
- DataTrove: MinhashDedupSignature / Buckets / Cluster / Filter, each a
  ``LocalPipelineExecutor`` (2 workers where a stage has several tasks), twice: "defaults"
  (``MinhashConfig()``: 5-grams, 14 buckets x 8 hashes, 64-bit xxhash) and "matched"
  (18 buckets x 7 hashes). It has no verification step. Its e2e is stages 1-3 (the file to
  the ids to remove: curate's e2e scope); stage 4 (filter and write) is printed apart.

Timing: each worker's clock starts after its imports; start-up and warm-up are included for
every tool (curate's numba kernel load or compile is inside its ``sig``), and each tool's
fixed cost is measured on a 100-document prefix and printed, with a ratio net of it.

A planted pair is found when both documents end in the same cluster (connected
component) of the tool's candidate pairs ("cand") or final pairs ("final"); precision is
the share of a tool's pairs whose exact Jaccard is >= 0.8.

The peers run on the first ``--peer-docs`` documents (self-contained prefixes: families
never straddle 10,000-document blocks; default 10,000 and 40,000); curate runs on those
and on the whole corpus, and the ratios are printed at each peer size. ``--scale`` is the
1,000,000 documents x 10,000 items check, curate only. Corpora are written to
``benchmarks/_work/minhash/`` (``--work``) once and reused (``--clean`` removes them at the end).

    .venv/bin/python benchmarks/minhash.py              # over an hour on a shared 2-core machine
    .venv/bin/python benchmarks/minhash.py --scale      # curate only; it prints its own estimate
    .venv/bin/python benchmarks/minhash.py --smoke      # 2,000 documents, the matched peers (test suite)

Needs ``datasketch``, ``psutil``, ``datatrove[processing]``, ``spacy`` (DataTrove's
English word tokenizer) and ``orjson`` (DataTrove's JsonlReader); a peer whose package is
not installed is skipped, and said so.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
from _common import add_clean, add_work, announce, finish, installed, parse_args

HERE = Path(__file__).resolve().parent
BLOCK = 10_000  # families and planted items never straddle blocks, so prefixes are self-contained
THRESHOLD = 0.8
BIN_EDGES = (0.5, 0.7, 0.8, 0.9)
BIN_LABELS = ("<0.5", "0.5-0.7", "0.7-0.8", "0.8-0.9", "0.9-1.0")
HIGH_BIN = 3  # bins from here on: true Jaccard >= 0.8
FAMILY_SHARE = 0.05
BOILERPLATE_SHARE = 0.005
KINDS = ("verbatim alone", "verbatim embedded", "edited alone", "edited embedded")
STOCK_PHRASES = (
    "which of the following is the most appropriate next step in the management of this patient",
    "which of the following is the most likely diagnosis in this patient based on the findings"
    " above",
    "which of the following best explains the mechanism of action of the drug described in"
    " this case",
    "which of the following laboratory findings would most likely be expected in this patient"
    " at this time",
)
SOURCE, BENCH = "bench_corpus", "bench_items"


# -- corpus -----------------------------------------------------------------------------


class Words:
    """Words drawn independently with their frequency in the MedQuAD answers."""

    def __init__(self, medquad: Path, rng: np.random.Generator, common: int = 300):
        counts: Counter[str] = Counter()
        with medquad.open() as lines:
            for line in lines:
                counts.update(re.findall(r"\w+", json.loads(line)["answer"]))
        words = sorted(counts)
        freq = np.array([counts[w] for w in words], dtype=np.float64)
        self.words = np.array(words, dtype=object)
        self.cdf = np.cumsum(freq) / freq.sum()
        rare = freq.copy()
        rare[np.argsort(-freq, kind="stable")[:common]] = 0  # options: no function words
        self.content_cdf = np.cumsum(rare) / rare.sum()
        self.rng = rng

    def draw(self, n: int, content: bool = False) -> list[str]:
        cdf = self.content_cdf if content else self.cdf
        index = np.searchsorted(cdf, self.rng.random(n), side="right")
        index = np.minimum(index, len(self.words) - 1)
        return self.words[index].tolist()


def edit(words: list[str], draw: Words, rng: np.random.Generator) -> list[str]:
    """A near-copy: 5-20% of the tokens replaced, inserted or deleted, in 1-8 spans."""
    out = list(words)
    k = max(1, round(rng.uniform(0.05, 0.20) * len(words)))
    spans = min(int(rng.choice([1, 2, 3, 4, 8], p=[0.6, 0.2, 0.08, 0.04, 0.08])), k)
    cuts = np.sort(rng.choice(np.arange(1, k), spans - 1, replace=False)) if spans > 1 else []
    for size in np.diff([0, *cuts, k]).astype(int):
        op = rng.choice(3, p=[0.25, 0.375, 0.375])
        pos = int(rng.integers(0, max(1, len(out) - size)))
        if op == 0:
            out[pos : pos + size] = draw.draw(size)
        elif op == 1:
            out[pos:pos] = draw.draw(size)
        else:
            del out[pos : pos + size]
    return out


def make_item(draw: Words, rng: np.random.Generator) -> dict:
    question = draw.draw(int(rng.integers(12, 50)))
    if rng.random() < 0.3:
        question += STOCK_PHRASES[int(rng.integers(len(STOCK_PHRASES)))].split()
    options = [" ".join(draw.draw(int(rng.integers(1, 5)), content=True)) for _ in range(4)]
    return {"question": " ".join(question) + "?", "options": options,
            "answer": int(rng.integers(4))}


def item_text(item: dict, edited: bool, draw: Words, rng: np.random.Generator) -> str:
    """An item as it appears in a document; edited: 15% of the question's words replaced at
    scattered positions, options shuffled, another label style."""
    question = item["question"].split()
    options = list(item["options"])
    if not edited:
        lines = [f"{label}. {o}" for label, o in zip("ABCD", options)]
        return "\n".join([" ".join(question), *lines, f"Answer: {'ABCD'[item['answer']]}"])
    for p in rng.choice(len(question), max(2, round(0.15 * len(question))), replace=False):
        question[p] = draw.draw(1)[0]
    options = [options[i] for i in rng.permutation(4)]
    return "\n".join([" ".join(question), *[f"({label}) {o}" for label, o in zip("abcd", options)]])


def make_block(m: int, planted: list[tuple[int, dict, int]], draw: Words,
               rng: np.random.Generator) -> tuple[list[str], list, list, list]:
    """``m`` documents, shuffled: (texts, planted pairs, planted items, boilerplate docs)."""
    families = round(FAMILY_SHARE * m)
    copies_per = rng.choice([1, 2, 3], families, p=[0.7, 0.2, 0.1])
    n_base = m - int(copies_per.sum())
    lengths = rng.integers(50, 401, n_base)
    flat = draw.draw(int(lengths.sum()))
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    base = [flat[bounds[i] : bounds[i + 1]] for i in range(n_base)]
    texts = [" ".join(words) for words in base]
    pairs = []
    for f in range(families):
        for _ in range(copies_per[f]):
            pairs.append((f, len(texts)))
            texts.append(" ".join(edit(base[f], draw, rng)))
    singles = list(range(families, n_base))
    contaminated = []
    for host, (item_index, item, kind) in zip(singles, planted):
        text = item_text(item, edited=kind >= 2, draw=draw, rng=rng)
        if kind % 2 == 0:
            texts[host] = text
        else:
            cut = int(rng.integers(0, len(base[host])))
            before, after = " ".join(base[host][:cut]), " ".join(base[host][cut:])
            texts[host] = f"{before}\n{text}\n{after}"
        contaminated.append((host, item_index, kind))
    boilerplate = singles[len(planted) : len(planted) + round(BOILERPLATE_SHARE * m)]
    for host in boilerplate:
        cut = int(rng.integers(0, len(base[host])))
        phrase = STOCK_PHRASES[int(rng.integers(len(STOCK_PHRASES)))]
        texts[host] = " ".join(base[host][:cut] + [phrase + "?"] + base[host][cut:])
    order = rng.permutation(m)
    position = np.empty(m, np.int64)
    position[order] = np.arange(m)
    return ([texts[i] for i in order], [(position[a], position[b]) for a, b in pairs],
            [(position[d], i, k) for d, i, k in contaminated], [position[d] for d in boilerplate])


def true_jaccard(a: str, b: str) -> float:
    from curate.curation.minhash import shingles

    x, y = set(shingles(a)), set(shingles(b))
    return len(x & y) / len(x | y) if x or y else 0.0


def build_corpus(docs: int, items: int, planted: int, seed: int, medquad: Path, work: Path) -> Path:
    """Write (once) corpus.jsonl, items.jsonl and truth.npz in ``work``; return their folder."""
    folder = work / f"minhash_{docs}_{items}_{planted}_s{seed}"
    if (folder / "truth.npz").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    draw = Words(medquad, rng)
    bench = [make_item(draw, rng) for _ in range(items)]
    with (folder / "items.jsonl").open("w") as out:
        out.writelines(json.dumps(item) + "\n" for item in bench)
    n_blocks = -(-docs // BLOCK)
    to_plant: list[list[tuple[int, dict, int]]] = [[] for _ in range(n_blocks)]
    for j in range(planted):  # each block gets whole groups of the four kinds
        to_plant[(j // len(KINDS)) % n_blocks].append((j, bench[j], j % len(KINDS)))
    pairs, jaccards, contaminated, boilerplate = [], [], [], []
    with (folder / "corpus.jsonl").open("w") as out:
        for b in range(n_blocks):
            start = b * BLOCK
            texts, p, c, bp = make_block(min(BLOCK, docs - start), to_plant[b], draw, rng)
            out.writelines(json.dumps({"id": f"d{start + i:07d}", "text": t}) + "\n"
                           for i, t in enumerate(texts))
            pairs += [(start + x, start + y) for x, y in p]
            jaccards += [true_jaccard(texts[x], texts[y]) for x, y in p]
            contaminated += [(start + d, i, k) for d, i, k in c]
            boilerplate += [start + d for d in bp]
    np.savez(folder / "truth.tmp.npz", pairs=np.array(pairs, np.int64).reshape(-1, 2),
             jaccard=np.array(jaccards),
             contaminated=np.array(contaminated, np.int64).reshape(-1, 3),
             boilerplate=np.array(boilerplate, np.int64))
    (folder / "truth.tmp.npz").rename(folder / "truth.npz")
    return folder


def prefix(folder: Path, n: int) -> tuple[Path, Path]:
    """The first ``n`` documents as one JSON Lines file and as two shards (for DataTrove)."""
    path, shards = folder / f"corpus_{n}.jsonl", folder / f"shards_{n}"
    if not path.exists():
        with (folder / "corpus.jsonl").open() as lines:
            head = [next(lines) for _ in range(n)]
        shards.mkdir(exist_ok=True)
        (shards / "00000.jsonl").write_text("".join(head[: n // 2]))
        (shards / "00001.jsonl").write_text("".join(head[n // 2 :]))
        path.write_text("".join(head))
    return path, shards


# -- workers (each in a fresh interpreter) -------------------------------------------------


class TreePeak(threading.Thread):
    """Peak of the summed RSS of this process and its descendants, sampled every 50 ms."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while True:
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(0.05)


def read_corpus(path: Path):
    """The JSON Lines corpus as an Arrow table (id, text)."""
    import pyarrow.json as pj

    return pj.read_json(path)


def components(n: int, edges: np.ndarray) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def work_curate_kernel(spec: dict) -> dict:
    import polars as pl
    import pyarrow as pa
    import pyarrow.compute as pc

    from curate.curation.config import MinHashConfig
    from curate.curation.minhash import band_keys, shingle_table, signatures
    from curate.curation.near_dedup import candidate_pairs, clusters, verify
    from curate.ingest.runner import DEFAULT_BATCH_ROWS as shard_rows

    config = MinHashConfig()
    started = time.perf_counter()
    table = read_corpus(spec["input"])
    # large_string, as the NearDedup stage gets from Polars (see the report: slices of a
    # pa.string() array get wrong signatures with pyarrow 26)
    texts = table.column("text").combine_chunks().cast(pa.large_string())
    ids = pl.from_arrow(table.column("id"))
    read = time.perf_counter() - started
    started = time.perf_counter()
    signatures(texts.slice(0, 64), config)  # load (or compile) the numba kernels
    shingle_table(texts.slice(0, 64), config.ngram)
    warmup = time.perf_counter() - started  # reported, and counted in sig (as every peer's start-up is)

    def sign() -> tuple[np.ndarray, float]:  # a shard at a time, as the NearDedup stage does
        started = time.perf_counter()
        sigs = np.vstack([signatures(texts.slice(s, shard_rows), config)
                          for s in range(0, len(texts), shard_rows)])
        return sigs, time.perf_counter() - started

    sigs, sig = sign()
    repeats = [sign()[1] for _ in range(2)]

    started = time.perf_counter()
    bands, rows = config.banding
    empty = pl.Series(pc.binary_length(texts).to_numpy(zero_copy_only=False) == 0)
    pairs = candidate_pairs(band_keys(sigs, bands, rows), empty=empty)
    lsh = time.perf_counter() - started

    started = time.perf_counter()
    similarity = verify(pairs, texts, config.ngram)
    verified = pairs.with_columns(jaccard=pl.Series(similarity, dtype=pl.Float64)).filter(
        pl.col("jaccard") >= config.threshold)
    lengths = pc.utf8_length(texts).to_numpy(zero_copy_only=False)
    clusters(verified, len(texts), lengths, ids)
    cluster = time.perf_counter() - started

    np.savez(spec["out"], cand=pairs.select("a", "b").to_numpy(),
             final=verified.select("a", "b").to_numpy())
    return {"docs": len(texts), "read": read, "sig": sig + warmup, "sig_warm": sig, "warmup": warmup,
            "sig_best": min([sig, *repeats]), "lsh": lsh, "cluster": cluster,
            "lsh_params": f"{bands}x{rows}", "hash": "XXH64 per token, combined (numba)"}


def work_datasketch(spec: dict, matched: bool) -> dict:
    """datasketch as its README recommends for many documents: ``MinHash.bulk`` and an
    insertion session. Defaults: its default hash (SHA-1, 32 bits, scheme affine32) and
    ``MinHashLSH(threshold=0.8)`` (its false-positive/negative weights pick b x r). Matched:
    ``hashfunc=xxhash.xxh64_intdigest`` (scheme affine64) and ``params`` = curate's banding,
    so both tools have the same candidate probability at the threshold."""
    import datasketch
    import xxhash
    from datasketch import MinHash, MinHashLSH

    from curate.curation.config import MinHashConfig
    from curate.curation.minhash import shingles

    started = time.perf_counter()
    texts = read_corpus(spec["input"]).column("text").to_pylist()
    read = time.perf_counter() - started
    if matched:
        options: dict = {"num_perm": 128, "seed": 1, "scheme": "affine64",
                         "hashfunc": xxhash.xxh64_intdigest}
        lsh_options: dict = {"num_perm": 128, "params": MinHashConfig().banding}
    else:
        options, lsh_options = {"num_perm": 128}, {"threshold": THRESHOLD, "num_perm": 128}

    started = time.perf_counter()  # shingling (curate's plain-Python shingles) counts as signatures
    sketches = MinHash.bulk([shingles(t) for t in texts], **options)
    sig = time.perf_counter() - started

    started = time.perf_counter()
    index = MinHashLSH(**lsh_options)
    with index.insertion_session() as session:
        for i, sketch in enumerate(sketches):
            session.insert(i, sketch)
    candidates = {(min(i, j), max(i, j)) for i, sketch in enumerate(sketches)
                  for j in index.query(sketch) if j != i}
    lsh = time.perf_counter() - started

    started = time.perf_counter()
    cand = np.array(sorted(candidates), np.int64).reshape(-1, 2)
    final = np.array([(a, b) for a, b in cand if sketches[a].jaccard(sketches[b]) >= THRESHOLD],
                     np.int64).reshape(-1, 2)
    components(len(texts), final)
    cluster = time.perf_counter() - started

    np.savez(spec["out"], cand=cand, final=final)
    return {"docs": len(texts), "read": read, "sig": sig, "lsh": lsh, "cluster": cluster, "warmup": 0.0,
            "lsh_params": f"{index.b}x{index.r}", "version": datasketch.__version__,
            "hash": "xxh64 (C), affine64" if matched else "sha1_hash32 (default), affine32"}


def work_datatrove(spec: dict, matched: bool) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.logging import logger

    logger.remove()  # its per-task logs go to logging_dir anyway
    shards = Path(spec["shards"])
    files = sorted(shards.glob("*.jsonl"))
    offsets = np.cumsum([0] + [sum(1 for _ in f.open()) for f in files])
    if matched:
        from curate.curation.config import MinHashConfig

        bands, rows = MinHashConfig().banding
        config = MinhashConfig(num_buckets=bands, hashes_per_bucket=rows)
    else:
        config = MinhashConfig()
    base = Path(spec["scratch"])
    shutil.rmtree(base, ignore_errors=True)
    steps = {
        "sig": LocalPipelineExecutor(
            [JsonlReader(str(shards)), MinhashDedupSignature(str(base / "sigs"), config=config)],
            tasks=len(files), workers=2, logging_dir=str(base / "logs1")),
        "lsh": LocalPipelineExecutor(
            [MinhashDedupBuckets(str(base / "sigs"), str(base / "buckets"), config=config)],
            tasks=config.num_buckets, workers=2, logging_dir=str(base / "logs2")),
        "cluster": LocalPipelineExecutor(
            [MinhashDedupCluster(str(base / "buckets"), str(base / "remove"), config=config)],
            tasks=1, logging_dir=str(base / "logs3")),
        "filter": LocalPipelineExecutor(
            [JsonlReader(str(shards)), MinhashDedupFilter(str(base / "remove")),
             JsonlWriter(str(base / "output"))],
            tasks=len(files), workers=2, logging_dir=str(base / "logs4")),
    }
    seconds = {}
    for name, executor in steps.items():
        started = time.perf_counter()
        executor.run()
        seconds[name] = time.perf_counter() - started

    dups = [np.fromfile(f, dtype="<u4").reshape(-1, 4)
            for f in sorted((base / "buckets").glob("*.dups"))]
    raw = np.concatenate(dups) if dups else np.zeros((0, 4), np.uint32)
    cand = np.stack([offsets[raw[:, 0]] + raw[:, 1], offsets[raw[:, 2]] + raw[:, 3]], axis=1)
    cand = np.unique(np.sort(cand.astype(np.int64), axis=1), axis=0)
    removed = sum(f.stat().st_size // 4 for f in (base / "remove").glob("*.remove"))
    np.savez(spec["out"], cand=cand, final=cand)
    shutil.rmtree(base, ignore_errors=True)  # its signatures, buckets and output copy
    import datatrove

    return {"docs": int(offsets[-1]), "read": float("nan"), **seconds, "removed": removed,
            "lsh_params": f"{config.num_buckets}x{config.hashes_per_bucket}",
            "version": getattr(datatrove, "__version__", "?"), "hash": "xxhash 64-bit (default)"}


def corpus_source(path: Path):
    from curate.catalog import Source

    return Source.model_validate({
        "name": SOURCE, "version": "1", "license": "CC0-1.0", "domain": "medical",
        "origin": "synthetic", "task": "qa", "location": {"path": str(path)},
        "mapping": {"kind": "chat", "question": "text"},
    })


def items_source(path: Path):
    from curate.catalog import Source

    return Source.model_validate({
        "name": BENCH, "version": "1", "license": "CC0-1.0", "domain": "medical",
        "origin": "synthetic", "task": "mcqa", "location": {"path": str(path)},
        "mapping": {"kind": "mcqa", "question": "question", "options": "options",
                    "answer": "answer", "answer_format": "index"},
    })


def work_curate_ingest(spec: dict) -> dict:
    from curate.ingest import ingest
    from curate.store import RunStore

    run = Path(spec["run"])
    shutil.rmtree(run, ignore_errors=True)
    started = time.perf_counter()
    result = ingest([corpus_source(Path(spec["input"]))], RunStore(run), data_root=Path(spec["input"]).parent,
                    benchmarks=[items_source(Path(spec["items"]))])
    seconds = time.perf_counter() - started
    assert not result.failed, result.failed
    return {"ingest": seconds, "records": result.sources[0].records}


def work_curate_stages(spec: dict) -> dict:
    from curate.curation import build_stages
    from curate.curation.config import MinHashConfig
    from curate.curation.minhash import shingle_table, signatures
    from curate.engine.runner import run_stages
    from curate.engine.stage import StageContext
    from curate.store import RunStore

    signatures(["warm up the numba kernels"], MinHashConfig())
    shingle_table(["warm up the numba kernels"], 5)
    store = RunStore(Path(spec["run"]))
    stages = build_stages({"near_dedup": {}, "decontam": {}}, where="bench")
    context = StageContext(benchmarks={BENCH: store.benchmark(BENCH).files("records")})
    started = time.perf_counter()
    results = run_stages(stages, store, [SOURCE], input_fingerprint="bench", context=context)
    seconds = time.perf_counter() - started
    return {"stages": seconds, **{r.name: r.stats["seconds"] for r in results}}


WORKERS = {
    "curate kernel": work_curate_kernel,
    "curate ingest": work_curate_ingest,
    "curate stages": work_curate_stages,
    "datasketch defaults": lambda spec: work_datasketch(spec, matched=False),
    "datasketch matched": lambda spec: work_datasketch(spec, matched=True),
    "DataTrove defaults": lambda spec: work_datatrove(spec, matched=False),
    "DataTrove matched": lambda spec: work_datatrove(spec, matched=True),
}
PEERS = ("datasketch defaults", "datasketch matched", "DataTrove defaults", "DataTrove matched")


def measure(tool: str, **spec) -> dict | None:
    """Run one worker in a fresh interpreter; its figures, or None (failure printed)."""
    spec = {k: str(v) for k, v in spec.items()}
    proc = subprocess.run([sys.executable, __file__, "--worker", tool, "--spec", json.dumps(spec)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        print(f"!! {tool} failed (exit {proc.returncode}):\n{tail}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- scoring against the truth -------------------------------------------------------------


class Truth:
    """Planted pairs and items, restricted to the first ``n`` documents."""

    def __init__(self, folder: Path, n: int):
        data = np.load(folder / "truth.npz")
        keep = (data["pairs"] < n).all(axis=1)
        self.n = n
        self.pairs, self.jaccard = data["pairs"][keep], data["jaccard"][keep]
        self.bin = np.searchsorted(BIN_EDGES, self.jaccard, side="right")
        self.contaminated = data["contaminated"][data["contaminated"][:, 0] < n]
        self.boilerplate = data["boilerplate"][data["boilerplate"] < n]
        self._texts: list[str] | None = None
        self._folder = folder
        self._cache: dict[tuple[int, int], float] = {}

    def bin_counts(self) -> list[int]:
        return [int((self.bin == b).sum()) for b in range(len(BIN_LABELS))]

    def found(self, labels: np.ndarray) -> list[float]:
        """Per bin: share of planted pairs whose documents share a label."""
        same = labels[self.pairs[:, 0]] == labels[self.pairs[:, 1]]
        return [float(same[self.bin == b].mean()) if (self.bin == b).any() else float("nan")
                for b in range(len(BIN_LABELS))]

    def high_recall(self, labels: np.ndarray) -> float:
        same = labels[self.pairs[:, 0]] == labels[self.pairs[:, 1]]
        return float(same[self.bin >= HIGH_BIN].mean())

    def precision(self, edges: np.ndarray) -> float:
        """Share of pairs whose exact Jaccard (plain-Python shingles) reaches the threshold."""
        if len(edges) == 0:
            return float("nan")
        if self._texts is None:
            with (self._folder / "corpus.jsonl").open() as lines:
                self._texts = [json.loads(next(lines))["text"] for _ in range(self.n)]
        pairs = list(map(tuple, edges.tolist()))
        for a, b in pairs:
            if (a, b) not in self._cache:
                self._cache[(a, b)] = true_jaccard(self._texts[a], self._texts[b])
        return float(np.mean([self._cache[pair] >= THRESHOLD for pair in pairs]))


def edge_quality(truth: Truth, path: Path) -> dict:
    edges = np.load(path)
    out = {}
    for stage in ("cand", "final"):
        labels = components(truth.n, edges[stage])
        out[stage] = {"found": truth.found(labels), "recall": truth.high_recall(labels),
                      "precision": truth.precision(edges[stage]), "pairs": len(edges[stage])}
    return out


def pipeline_quality(truth: Truth, run: Path) -> dict:
    import polars as pl

    near = pl.read_parquet(run / "near_dedup" / "decisions.parquet").sort("row")
    assert near.get_column("row").to_list() == list(range(truth.n)), "rows are not line numbers"
    labels = near.select(pl.coalesce("near_dup_cluster", "id")).to_series().to_numpy()
    contam = pl.read_parquet(run / "decontam" / "decisions.parquet")
    flagged = contam.filter(pl.col("contam_tier").is_not_null())
    rows = flagged.get_column("row").to_list()
    tier_of = dict(zip(rows, flagged.get_column("contam_tier").to_list()))
    item_of = dict(zip(rows, flagged.get_column("contam_item").to_list()))
    seen = set(contam.get_column("row").to_list())
    kinds = []
    for k in range(len(KINDS)):
        planted = truth.contaminated[truth.contaminated[:, 2] == k]
        caught = [d for d, i, _ in planted.tolist() if item_of.get(d) == f"{BENCH}:{i}"]
        tiers = Counter(tier_of[d] for d in caught)
        kinds.append({"planted": len(planted), "caught": len(caught), "tiers": dict(tiers),
                      "seen": sum(d in seen for d in planted[:, 0].tolist())})
    planted_docs = set(truth.contaminated[:, 0].tolist())
    false = [d for d in tier_of if d not in planted_docs]
    return {"found": truth.found(labels), "recall": truth.high_recall(labels),
            "removed": int((~near.get_column("keep")).sum()), "kinds": kinds,
            "false_flags": len(false), "clean": len(seen) - len(planted_docs & seen),
            "boilerplate_flagged": len(set(false) & set(truth.boilerplate.tolist())),
            "boilerplate": len(truth.boilerplate)}


# -- the run -----------------------------------------------------------------------------


def run_size(folder: Path, n: int, docs: int, tools: list[str]) -> dict:
    """Every requested tool on the first ``n`` documents; figures and quality per tool."""
    path, shards = (folder / "corpus.jsonl", None) if n == docs else prefix(folder, n)
    if shards is None and any(t.startswith("DataTrove") for t in tools):
        path, shards = prefix(folder, n)
    items = folder / "items.jsonl"
    truth = Truth(folder, n)
    results: dict[str, dict] = {}
    for tool in tools:
        out = folder / f"edges_{tool.replace(' ', '_')}_{n}.npz"
        if tool == "curate pipeline":
            run = folder / f"run_{n}"
            ingest = measure("curate ingest", input=path, items=items, run=run)
            stages = measure("curate stages", run=run) if ingest else None
            if ingest and stages:
                results[tool] = {**ingest, **stages, "ingest_rss": ingest["peak_rss_mb"],
                                 "stages_rss": stages["peak_rss_mb"],
                                 "quality": pipeline_quality(truth, run)}
            continue
        figures = measure(tool, input=path, shards=shards, out=out,
                          scratch=folder / "datatrove")
        if figures is not None:
            if tool.startswith("DataTrove"):  # stages 1-3: the scope of curate's e2e
                figures["e2e"] = sum(figures[k] for k in ("sig", "lsh", "cluster"))
            else:
                figures["e2e"] = sum(figures[k] for k in ("read", "sig", "lsh", "cluster"))
            figures["quality"] = edge_quality(truth, out)
            results[tool] = figures
    return {"truth": truth, "results": results}


FIXED_DOCS = 100


def fixed_costs(folder: Path, tools: list[str]) -> dict[str, float]:
    """Each tool's e2e seconds on the first 100 documents: its start-up and per-run costs
    (numba kernel load, executor and worker start-up, file set-up), reported beside the
    ratios and subtracted in the "minus fixed" column."""
    path, shards = prefix(folder, FIXED_DOCS)
    out: dict[str, float] = {}
    for tool in tools:
        figures = measure(tool, input=path, shards=shards, out=folder / "edges_fixed.npz",
                          scratch=folder / "datatrove_fixed")
        if figures is not None:
            keys = ("sig", "lsh", "cluster") if tool.startswith("DataTrove") else (
                "read", "sig", "lsh", "cluster")
            out[tool] = sum(figures[k] for k in keys)
    return out


def fmt(x: float, spec: str = ".3f") -> str:
    return "-" if x is None or x != x else format(x, spec)


def report(sizes: dict[int, dict]) -> None:
    print("\nspeed (seconds; sig = signatures from text, curate in 20,000-document batches as its "
          "NearDedup stage;\n  e2e = JSON Lines file to dedup clusters)")
    print(f"{'docs':>9} {'tool':<19} {'LSH b x r':>9} {'read':>6} {'sig':>7} {'sig docs/s':>11} "
          f"{'LSH':>6} {'cluster':>7} {'e2e':>7} {'peak RSS':>9}")
    for n, size in sizes.items():
        for tool, r in size["results"].items():
            if tool == "curate pipeline":
                continue
            print(f"{n:>9,} {tool:<19} {r['lsh_params']:>9} {fmt(r['read'], '.2f'):>6} "
                  f"{r['sig']:>7.2f} {n / r['sig']:>11,.0f} {r['lsh']:>6.2f} {r['cluster']:>7.2f} "
                  f"{r['e2e']:>7.2f} "
                  f"{r['peak_rss_mb']:>7.0f}MB")
    print("  curate kernel: sig includes the numba warm-up (first call in a fresh process: "
          "kernel load or compile), as every peer's time includes its own start-up")
    if any(t.startswith("DataTrove") for s in sizes.values() for t in s["results"]):
        print("  DataTrove: sig = stage 1 (read + signatures + sorted bucket files), "
              "LSH = stage 2, cluster = stage 3; e2e = stages 1-3 (JSON Lines to the ids to remove,\n"
              "  curate's e2e scope); stage 4 (filter + write the kept documents) is outside it, shown here")
        for n, size in sizes.items():
            for tool, r in size["results"].items():
                if tool.startswith("DataTrove"):
                    print(f"  {tool} on {n:,}: stage 4 {r['filter']:.2f}s, "
                          f"{r['removed']:,} documents removed")

    print("\ncurate pipeline (ingest JSON Lines -> records; stages near_dedup then decontam)")
    print(f"{'docs':>9} {'ingest':>7} {'near_dedup':>10} {'decontam':>9} {'dedup e2e':>10} "
          f"{'all':>7} {'ingest RSS':>11} {'stages RSS':>11}")
    for n, size in sizes.items():
        if (r := size["results"].get("curate pipeline")):
            print(f"{n:>9,} {r['ingest']:>7.2f} {r['near_dedup']:>10.2f} {r['decontam']:>9.2f} "
                  f"{r['ingest'] + r['near_dedup']:>10.2f} {r['ingest'] + r['stages']:>7.2f} "
                  f"{r['ingest_rss']:>9.0f}MB {r['stages_rss']:>9.0f}MB")

    print("\nnear-dup quality: share of planted (original, copy) pairs found in one cluster, "
          "by true Jaccard;\n  >= 0.8 is recall, below 0.8 a low share is right; precision = "
          "share of the tool's pairs with true J >= 0.8")
    header = " ".join(f"{b:>8}" for b in BIN_LABELS)
    print(f"{'docs':>9} {'tool':<19} {'pairs':<6} {header} {'rec>=0.8':>8} {'precision':>9} "
          f"{'n pairs':>9}")
    for n, size in sizes.items():
        counts = " ".join(f"{c:>8,}" for c in size["truth"].bin_counts())
        print(f"{n:>9,} {'(planted pairs)':<19} {'':<6} {counts}")
        for tool, r in size["results"].items():
            q = r["quality"]
            if tool == "curate pipeline":
                cells = " ".join(f"{fmt(x):>8}" for x in q["found"])
                print(f"{'':>9} {tool:<19} {'final':<6} {cells} {fmt(q['recall']):>8} {'':>9} "
                      f"{q['removed']:>7,} removed")
                continue
            for stage in ("cand", "final"):
                s = q[stage]
                cells = " ".join(f"{fmt(x):>8}" for x in s["found"])
                print(f"{'':>9} {tool if stage == 'cand' else '':<19} {stage:<6} {cells} "
                      f"{fmt(s['recall']):>8} {fmt(s['precision']):>9} {s['pairs']:>9,}")

    print("\ndecontamination (curate decontam stage, default tiers ngram + minhash): "
          "planted items caught")
    for n, size in sizes.items():
        if not (r := size["results"].get("curate pipeline")):
            continue
        q = r["quality"]
        for kind, k in zip(KINDS, q["kinds"]):
            tiers = ", ".join(f"{t} {c}" for t, c in sorted(k["tiers"].items())) or "-"
            print(f"{n:>9,} {kind:<19} {k['caught']:>4}/{k['planted']:<4} caught "
                  f"({k['seen']} reached decontam; by tier: {tiers})")
        print(f"{n:>9,} false flags: {q['false_flags']} of {q['clean']:,} clean documents "
              f"(stock exam phrase docs flagged: {q['boilerplate_flagged']} of {q['boilerplate']})")


def ratios(sizes: dict[int, dict], fixed: dict[str, float]) -> None:
    from curate.curation.minhash import candidate_probability

    def p08(params: str) -> float:
        bands, rows = map(int, params.split("x"))
        return candidate_probability(THRESHOLD, bands, rows)

    if fixed:
        print(f"\nfixed costs: e2e seconds on the first {FIXED_DOCS} documents (start-up, warm-up):  "
              + "  ".join(f"{t} {s:.2f}s" for t, s in fixed.items()))
    for n, size in sizes.items():
        res = size["results"]
        kernel, pipe = res.get("curate kernel"), res.get("curate pipeline")
        peers = [p for p in PEERS if p in res]
        if not kernel or not peers:
            continue
        print(f"\nratios on {n:,} documents (peer time / curate time; > 1 means curate is faster). "
              "Warm-up and start-up included for every tool;\n  'minus fixed' subtracts each tool's "
              f"{FIXED_DOCS}-document time ('-' where that leaves under a tenth of a tool's time).\n"
              "  P(0.8) = candidate probability of the LSH b x r at J = 0.8, rec = measured share of planted "
              "pairs with true J >= 0.8 found in one cluster (final pairs)")
        print(f"  {'curate kernel':<20} {'':<33} LSH {kernel['lsh_params']:>5}  "
              f"P(0.8) {p08(kernel['lsh_params']):.3f}  rec {kernel['quality']['final']['recall']:.3f}")
        cur_fixed = fixed.get("curate kernel", 0.0)
        for peer in peers:
            r = res[peer]
            if peer.startswith("DataTrove"):  # stage 1 reads the files itself
                sig = r["sig"] / (kernel["read"] + kernel["sig"])
                sig_label = "read+sig"
            else:
                sig, sig_label = r["sig"] / kernel["sig"], "sig"
            e2e = r["e2e"] / kernel["e2e"]
            ours_net, theirs_net = kernel["e2e"] - cur_fixed, r["e2e"] - fixed.get(peer, 0.0)
            # a net time under a tenth of the whole is noise (fixed costs dominate at this size)
            net = (f"{theirs_net / ours_net:>5.1f}x" if ours_net > 0.1 * kernel["e2e"]
                   and theirs_net > 0.1 * r["e2e"] else "    -")
            line = (f"  vs {peer:<17} {sig_label:>8} {sig:>5.1f}x  e2e {e2e:>5.1f}x  "
                    f"minus fixed {net}  LSH {r['lsh_params']:>5}  P(0.8) {p08(r['lsh_params']):.3f}  "
                    f"rec {r['quality']['final']['recall']:.3f}  [{r['hash']}]")
            if pipe:
                dedup = pipe["ingest"] + pipe["near_dedup"]
                line += f"  vs pipeline (ingest+near_dedup) {r['e2e'] / dedup:>4.1f}x"
            line += f"  peak RSS {r['peak_rss_mb'] / kernel['peak_rss_mb']:.2f}x"
            print(line)


def targets(sizes: dict[int, dict], scale: bool) -> None:
    n = max(sizes)
    res = sizes[n]["results"]
    print(f"\ntargets ({n:,} documents)")
    if (k := res.get("curate kernel")):
        rate, best = n / k["sig"], n / k["sig_best"]
        print(f"  signatures >= 75,000 docs/s on 2 cores: {rate:,.0f} docs/s first pass, "
              f"{best:,.0f} best of 3  {'PASS' if rate >= 75_000 else 'FAIL'}")
        rec, prec = k["quality"]["cand"]["recall"], k["quality"]["final"]["precision"]
        print(f"  candidate recall >= 0.98 at true J >= 0.8: {rec:.4f}  "
              f"{'PASS' if rec >= 0.98 else 'FAIL'}")
        print(f"  precision >= 0.99 after verification: {prec:.4f}  "
              f"{'PASS' if prec >= 0.99 else 'FAIL'}")
    if scale and (p := res.get("curate pipeline")):
        rss = max(p["stages_rss"], p["ingest_rss"])
        print(f"  near_dedup + decontam under 120 s: {p['stages']:.1f} s  "
              f"{'PASS' if p['stages'] < 120 else 'FAIL'} "
              f"(with ingest: {p['ingest'] + p['stages']:.1f} s)")
        print(f"  peak RSS under 2 GB: stages {p['stages_rss']:,.0f} MB, "
              f"ingest {p['ingest_rss']:,.0f} MB  {'PASS' if rss < 2048 else 'FAIL'}")


def main() -> None:
    from curate.curation.config import MinHashConfig

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=2_000, help="benchmark items")
    parser.add_argument("--planted-items", type=int, default=200,
                        help="items planted into documents")
    parser.add_argument("--peer-docs", type=int, nargs="+", default=[10_000, 40_000],
                        help="sizes (prefixes, multiples of 10,000) the peers and curate run on; "
                        "ratios are printed at each")
    parser.add_argument("--peers", nargs="+", choices=list(PEERS), default=list(PEERS),
                        help="the peers to run (default: all four)")
    parser.add_argument("--scale", action="store_true",
                        help="1,000,000 documents x 10,000 items (1,000 planted), curate only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    add_work(parser, "minhash")
    add_clean(parser)
    args = parse_args(parser, {"docs": 2000, "items": 100, "planted_items": 20, "peer_docs": [2000],
                               "peers": ["datasketch matched", "DataTrove matched"]})

    if args.worker:
        peak = TreePeak()
        peak.start()
        result = WORKERS[args.worker](json.loads(args.spec))
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        result["peak_rss_mb"] = max(own, peak.peak) / 2**20
        print(json.dumps(result))
        return

    if args.scale:
        args.docs, args.items, args.planted_items, args.peer_docs = 1_000_000, 10_000, 1_000, []
    peer_docs = sorted({min(n, args.docs) for n in args.peer_docs if n > 0})
    # seconds per 1,000 documents, measured on the shared 2-core machine: curate (kernel and
    # pipeline, corpus build included) about 10; datasketch 2 per configuration, DataTrove 27
    per_peer = sum(2 if p.startswith("datasketch") else 27 for p in args.peers)
    expected = 20 + 10 * (args.docs + sum(peer_docs)) / 1000 + per_peer * sum(peer_docs) / 1000
    started = announce("minhash.py", expected, f"{args.docs:,} documents, peers on "
                       + (", ".join(f"{n:,}" for n in peer_docs) or "none"))
    folder = build_corpus(args.docs, args.items, args.planted_items, args.seed,
                          args.data_root / "medical/medquad/medquad_answered.jsonl", args.work)
    truth = np.load(folder / "truth.npz")
    print(f"corpus: {args.docs:,} documents, {len(truth['pairs']):,} planted near-dup pairs, "
          f"{args.items:,} benchmark items ({args.planted_items:,} planted), seed {args.seed} "
          f"({time.perf_counter() - started:.0f}s to build or load)")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; "
          "curate's kernels use every core (numba), datasketch one, DataTrove 2 worker processes")
    bands, rows = MinHashConfig().banding
    print(f"configurations (5-word shingles, 128 permutations, threshold J = {THRESHOLD} for all):\n"
          f"  curate: XXH64 token hashes combined (numba), LSH {bands}x{rows} (tuned for recall >= 0.98 "
          "at J 0.8), exact-Jaccard verification\n"
          "  datasketch defaults: MinHash.bulk with its default hash (sha1_hash32, affine32), "
          "MinHashLSH(threshold=0.8) with its default weights (0.5, 0.5), verification by estimated J\n"
          f"  datasketch matched: MinHash.bulk(hashfunc=xxhash.xxh64_intdigest, scheme='affine64'), "
          f"MinHashLSH(params=({bands}, {rows})): curate's candidate probability\n"
          "  DataTrove defaults: MinhashConfig() (14 buckets x 8 hashes, xxhash 64-bit), "
          "LocalPipelineExecutor, 2 workers, no verification\n"
          f"  DataTrove matched: MinhashConfig(num_buckets={bands}, hashes_per_bucket={rows}), the rest as "
          "its defaults\n"
          "  (datasketch runs on one core by design; curate's kernels use both; DataTrove 2 worker "
          "processes)")
    modules = {"datasketch": "datasketch", "DataTrove": "datatrove"}
    present = {tool: installed(module, tool) for tool, module in modules.items()
               if any(p.startswith(tool) for p in args.peers)}
    peers = [p for p in PEERS if p in args.peers and present[p.split()[0]]]
    curate_tools = ["curate kernel", "curate pipeline"]
    plan = {args.docs: curate_tools}
    for n in peer_docs:
        plan[n] = curate_tools + peers
    if peer_docs:
        print(f"peers run on the first {', '.join(f'{n:,}' for n in peer_docs)} documents; curate on "
              f"those and on all {args.docs:,}")
    sizes = {n: run_size(folder, n, args.docs, tools) for n, tools in sorted(plan.items())}
    fixed = fixed_costs(folder, ["curate kernel", *peers]) if peer_docs else {}
    report(sizes)
    ratios(sizes, fixed)
    targets(sizes, args.scale)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    finish(started, [folder], args.clean)


if __name__ == "__main__":
    main()
