"""Retrieval: index build rate and query latency, numpy exact against faiss flat and HNSW.

Two parts, because embedding 100,000 questions with MiniLM on two shared CPU cores takes
far longer than a benchmark should:

1. **Build rate on real questions.** ``--embed`` MedMCQA questions (test, then dev split,
   from /work/shared/data) are indexed by ``curate.rag.index.build_index`` (MiniLM,
   sentence-transformers backend, batch 64, 256 tokens) and, as the peer, encoded by
   sentence-transformers' ``SentenceTransformer.encode`` alone with the same settings (the
   model loaded before either clock starts). Records/s of each, and their ratio (what the
   index adds: parquet parts, manifest, hashing).
2. **Search on ``--vectors`` vectors.** The vectors are *synthetic*: drawn from a Gaussian
   with the mean and (empirical) covariance of the real MiniLM question vectors of part 1, then
   normalised, so they have the real vectors' anisotropy (MiniLM vectors are not
   uniform on the sphere). The queries are ``--queries`` real question vectors from part 1.
   Timed: curate's numpy exact search (``Index.search_vectors``), curate with faiss
   ``IndexFlatIP`` and faiss alone (``IndexFlatIP.search``, as its docs use it), and
   faiss ``IndexHNSWFlat`` (M 32, efConstruction 80, efSearch 64, or each of ``--ef-search``)
   through curate, with its build time and recall@5 against exact. Latency: one query at a time (median of
   ``--single`` calls); throughput: all queries in one call.

    PYTHONPATH=. python benchmarks/rag.py [--embed 2000] [--vectors 100000] [--queries 1000]
    PYTHONPATH=. python benchmarks/rag.py --smoke     # 64 questions, 2,000 vectors (the test suite's size)

Without faiss (the rag extra) its rows are skipped, said so, and numpy exact search runs alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
from _common import announce, finish, installed, parse_args


def real_questions(n: int) -> list[str]:
    from curate.catalog import resolve_data_root

    root = resolve_data_root() / "benchmarks" / "medmcqa"
    out: list[str] = []
    for name in ("medmcqa_test.jsonl", "medmcqa_dev_full.jsonl"):
        path = root / name
        if not path.exists():
            continue
        for line in path.read_text("utf-8").splitlines():
            question = json.loads(line).get("question")
            if question and question not in out:
                out.append(question)
            if len(out) >= n:
                return out
    return out


def timed(fn, *args, **kwargs):
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - started


def overlap(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """The mean share of each query's exact top-k ids that ``found`` holds."""
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, truth, strict=True)]))


def latency(fn, queries: np.ndarray, single: int) -> float:
    times = []
    for i in range(single):
        q = queries[i % len(queries)][None, :]
        started = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embed", type=int, default=2000, help="real questions embedded (part 1)")
    parser.add_argument("--vectors", type=int, default=100_000, help="vectors searched (part 2)")
    parser.add_argument("--queries", type=int, default=1000, help="real query vectors (part 2)")
    parser.add_argument("--single", type=int, default=200, help="one-query calls timed for latency")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[64],
                        help="HNSW efSearch values to time (one graph, built once)")
    args = parse_args(parser, {"embed": 64, "vectors": 2000, "queries": 20, "single": 5})
    # measured on the shared 2-core machine: MiniLM about 30 questions/s (twice: peer and curate),
    # HNSW built at about 2,000 vectors/s
    announce("rag.py", 15 + 2 * args.embed / 30 + args.vectors / 2000,
             f"{args.embed:,} questions embedded, {args.vectors:,} vectors searched by "
             f"{args.queries:,} queries")
    import torch

    from curate.curation.embed import load_embedder
    from curate.rag.config import SearchConfig
    from curate.rag.index import RECORD_SCHEMA, Index, build_index

    torch.set_num_threads(2)
    questions = real_questions(args.embed)
    print(f"part 1: {len(questions):,} real MedMCQA questions, MiniLM (torch backend, batch 64, 256 tokens), "
          f"2 threads")
    model = load_embedder("minilm")
    model.encode(questions[:64], batch_size=64)  # warm-up
    model.max_seq_length = 256
    raw, peer_s = timed(model.encode, questions, batch_size=64, normalize_embeddings=True,
                        convert_to_numpy=True, show_progress_bar=False)
    table = pa.Table.from_pylist([{"id": f"q{i:06d}", "source": "medmcqa", "question": q,
                                   "options": ["a", "b"], "answer": 0} for i, q in enumerate(questions)],
                                 schema=RECORD_SCHEMA)
    with tempfile.TemporaryDirectory() as tmp:
        built, ours_s = timed(build_index, table, Path(tmp) / "ix", input_name="bench")
        real = built.index.vectors
        _, append_s = timed(build_index, table, Path(tmp) / "ix", input_name="again")
    cosine = float(np.min(np.sum(real * raw, axis=1)))  # ids q000000... sort in input order
    print(f"{'':28}{'records/s':>12}{'seconds':>10}")
    print(f"{'sentence-transformers encode':28}{len(questions) / peer_s:>12,.1f}{peer_s:>10.2f}")
    print(f"{'curate build_index':28}{len(questions) / ours_s:>12,.1f}{ours_s:>10.2f}")
    print(f"ratio curate/peer: {peer_s / ours_s:.2f}x; re-appending the same records (nothing embedded): "
          f"{append_s:.2f} s; min cosine curate vs peer vectors {cosine:.5f}")

    rng = np.random.default_rng(0)
    mean = real.mean(axis=0)
    centered = (real - mean) / np.sqrt(max(len(real) - 1, 1))  # z @ centered ~ N(0, covariance of real)
    vectors = np.empty((args.vectors, real.shape[1]), np.float32)
    for start in range(0, args.vectors, 10_000):
        z = rng.standard_normal((min(10_000, args.vectors - start), len(real))).astype(np.float32)
        vectors[start:start + len(z)] = mean + z @ centered
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chosen = rng.choice(len(real), size=min(args.queries, len(real)), replace=False)
    queries = np.ascontiguousarray(real[chosen])
    ids = [f"v{i:07d}" for i in range(args.vectors)]
    records = pl.DataFrame({"id": ids, "source": "synthetic", "question": "",
                            "options": [["a", "b"]] * len(ids), "answer": 0, "cot": None, "meta": None},
                           schema=pl.from_arrow(RECORD_SCHEMA.empty_table()).schema)

    def index(kind: str) -> Index:
        return Index(path=Path("."), manifest={}, records=records, vectors=vectors,
                     config=SearchConfig(search=kind))

    print(f"\npart 2: {args.vectors:,} synthetic vectors (Gaussian fitted to the {len(real):,} real MiniLM "
          f"vectors, normalised; 384 dimensions), {len(queries):,} real query vectors, k = {args.k}, "
          "2 threads")
    exact = index("numpy")
    rows = []
    truth, exact_all = timed(exact.search_vectors, queries, args.k)
    one = latency(lambda q: exact.search_vectors(q, args.k), queries, args.single)
    rows.append(("curate numpy exact", 0.0, one, exact_all, 1.0))
    if installed("faiss", "faiss (IndexFlatIP, and curate's faiss and HNSW search)", "rag"):
        rows += faiss_rows(index, vectors, queries, truth, args)
    print(f"{'':26}{'build s':>9}{'build rec/s':>13}{'1-query ms':>12}{'queries/s':>11}{'recall@5':>10}")
    for name, build, single, total, quality in rows:
        rate = f"{args.vectors / build:>13,.0f}" if build else f"{'-':>13}"
        print(f"{name:26}{build:>9.2f}{rate}{1000 * single:>12.3f}{len(queries) / total:>11,.0f}"
              f"{quality:>10.3f}")
    if len(rows) > 1:
        print("recall@5: share of the exact top-5 ids found (curate faiss flat: identical rank lists, "
              "the same order with ties by id)")
        print(f"HNSW (ef {args.ef_search[0]}) vs numpy exact, one query: {rows[0][2] / rows[3][2]:.1f}x "
              f"faster; faiss flat vs numpy exact: {rows[0][2] / rows[1][2]:.1f}x")
    finish(None, [], False)


def faiss_rows(make_index, vectors: np.ndarray, queries: np.ndarray, truth, args: argparse.Namespace
               ) -> list[tuple]:
    """The table's rows for curate's faiss flat and HNSW search (``make_index(kind)``) and for
    faiss alone: (name, build seconds, one-query seconds, all-queries seconds, recall@k against
    the exact ``truth``)."""
    import faiss

    faiss.omp_set_num_threads(2)
    flat = make_index("faiss")
    hnsw = make_index("hnsw")
    _, flat_build = timed(flat.faiss_index)
    _, hnsw_build = timed(hnsw.faiss_index)
    peer = faiss.IndexFlatIP(vectors.shape[1])
    peer.add(vectors)
    rows = []
    found, flat_all = timed(flat.search_vectors, queries, args.k)
    same = float(np.mean(found[0] == truth[0]))
    rows.append(("curate faiss flat", flat_build, latency(lambda q: flat.search_vectors(q, args.k), queries,
                                                           args.single), flat_all, same))
    (_, peer_ids), peer_all = timed(peer.search, queries, args.k)
    peer_same = overlap(peer_ids, truth[0], args.k)
    rows.append(("faiss IndexFlatIP alone", flat_build, latency(lambda q: peer.search(q, args.k), queries,
                                                                 args.single), peer_all, peer_same))
    for ef in args.ef_search:
        hnsw.faiss_index().hnsw.efSearch = ef  # a search-time setting: the graph is built once
        approx, hnsw_all = timed(hnsw.search_vectors, queries, args.k)
        recall = overlap(approx[0], truth[0], args.k)
        one = latency(lambda q: hnsw.search_vectors(q, args.k), queries, args.single)
        rows.append((f"curate faiss HNSW ef {ef}", hnsw_build, one, hnsw_all, recall))
    return rows


if __name__ == "__main__":
    main()
