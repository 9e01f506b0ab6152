"""Passage retrieval: build rate on real passages, answer recall on them, and query latency at
100,000 passages, numpy exact against faiss HNSW with its recall@k against exact.

1. **Real passages.** The answers of the first ``--records`` MedQuAD pairs (/work/shared/data,
   the 1,500 sample) are cut into passages (``curate.rag.passages``: ``--chunk-words`` words,
   ``--chunk-overlap`` overlapping) and indexed by ``curate.rag.build.index_passages`` (MiniLM,
   256 tokens). Printed: passages/s embedded, and answer recall@k: the share of the pairs'
   questions whose own answer has a passage among the k retrieved (exact search).
2. **100,000 passages.** As in ``benchmarks/rag.py``: ``--vectors`` synthetic vectors drawn
   from a Gaussian with the mean and covariance of the real passage vectors of part 1
   (normalised), queried by the real question vectors of part 1. Timed: curate's numpy exact
   search and faiss ``IndexHNSWFlat`` through curate (M 32, efConstruction 80, each
   ``--ef-search``), one query at a time (median of ``--single``) and all queries in one call;
   recall@k of HNSW against exact.

    PYTHONPATH=. python benchmarks/passages.py [--records 300] [--vectors 100000]
    PYTHONPATH=. python benchmarks/passages.py --smoke     # 24 records, 2,000 vectors

Without faiss (the rag extra) the HNSW rows are skipped, said so, and exact search runs alone.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
from _common import announce, finish, installed, parse_args
from rag import latency, overlap, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=300, help="MedQuAD pairs cut into passages (part 1)")
    parser.add_argument("--chunk-words", type=int, default=120)
    parser.add_argument("--chunk-overlap", type=int, default=20)
    parser.add_argument("--vectors", type=int, default=100_000, help="passages searched (part 2)")
    parser.add_argument("--single", type=int, default=200, help="one-query calls timed for latency")
    parser.add_argument("--k", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--ef-search", type=int, nargs="+", default=[64, 128, 256])
    args = parse_args(parser, {"records": 24, "vectors": 2000, "single": 5, "ef_search": [64]})
    announce("passages.py", 20 + args.records * 3 / 8 + args.vectors / 1500,
             f"{args.records:,} MedQuAD answers as passages, {args.vectors:,} vectors searched")
    import torch

    from curate.catalog import resolve_data_root
    from curate.rag.build import index_passages
    from curate.rag.config import PassageConfig, SearchConfig
    from curate.rag.index import RECORD_SCHEMA, Index

    torch.set_num_threads(2)
    root = resolve_data_root()
    lines = (root / "medical/medquad/medquad_sample_1500.jsonl").read_text("utf-8").splitlines()
    pairs = [json.loads(line) for line in lines if line.strip()][:args.records]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
        config = PassageConfig(chunk_words=args.chunk_words, chunk_overlap=args.chunk_overlap)
        built, seconds = timed(index_passages, str(Path(tmp) / "pairs.jsonl"), Path(tmp) / "ix",
                               source="medquad_sample", passages=config)
        index = built.index
        rows = [json.loads(m)["row"] for m in index.records.get_column("meta").to_list()]
        questions = [p["question"] for p in pairs]
        queries = index.embed(questions)
        rate = built.records_per_second or 0.0
        print(f"part 1: {len(pairs):,} MedQuAD answers -> {len(index):,} passages of up to "
              f"{args.chunk_words} words ({args.chunk_overlap} overlapping); indexed in {seconds:.1f} s "
              f"with the model's loading, embedding {rate:,.1f} passages/s (MiniLM 256 tokens, 2 threads)")
        kmax = max(args.k)
        positions, _ = index.search_vectors(queries, kmax)
        for k in args.k:
            found = np.mean([any(rows[p] == q for p in positions[q, :k] if p >= 0)
                             for q in range(len(pairs))])
            print(f"answer recall@{k} (the question's own answer among the {k} passages, exact): {found:.3f}")
        real = index.vectors

    rng = np.random.default_rng(0)
    mean = real.mean(axis=0)
    centered = (real - mean) / np.sqrt(max(len(real) - 1, 1))
    vectors = np.empty((args.vectors, real.shape[1]), np.float32)
    for start in range(0, args.vectors, 10_000):
        z = rng.standard_normal((min(10_000, args.vectors - start), len(real))).astype(np.float32)
        vectors[start:start + len(z)] = mean + z @ centered
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"p{i:07d}" for i in range(args.vectors)]
    records = pl.DataFrame({"id": ids, "source": "synthetic", "question": "", "options": None, "answer": None,
                            "cot": None, "meta": None},
                           schema=pl.from_arrow(RECORD_SCHEMA.empty_table()).schema)

    def make(kind: str) -> Index:
        return Index(path=Path("."), manifest={"kind": "passages"}, records=records, vectors=vectors,
                     config=SearchConfig(search=kind))

    print(f"\npart 2: {args.vectors:,} synthetic passage vectors (Gaussian fitted to the {len(real):,} real "
          f"ones, normalised), {len(queries):,} real question vectors, 2 threads")
    exact = make("numpy")
    truth, exact_all = timed(exact.search_vectors, queries, kmax)
    one = latency(lambda q: exact.search_vectors(q, kmax), queries, args.single)
    header = "".join(f"{f'recall@{k}':>11}" for k in args.k)
    print(f"{'':28}{'build s':>9}{'1-query ms':>12}{'queries/s':>11}{header}")
    print(f"{'curate numpy exact':28}{0:>9.2f}{1000 * one:>12.3f}{len(queries) / exact_all:>11,.0f}"
          + "".join(f"{1.0:>11.3f}" for _ in args.k))
    if installed("faiss", "faiss HNSW (curate's approximate search)", "rag"):
        import faiss

        faiss.omp_set_num_threads(2)
        hnsw = make("hnsw")
        _, build = timed(hnsw.faiss_index)
        for ef in args.ef_search:
            hnsw.faiss_index().hnsw.efSearch = ef
            approx, total = timed(hnsw.search_vectors, queries, kmax)
            single = latency(lambda q: hnsw.search_vectors(q, kmax), queries, args.single)
            recalls = "".join(f"{overlap(approx[0][:, :k], truth[0][:, :k], k):>11.3f}" for k in args.k)
            print(f"{f'curate faiss HNSW ef {ef}':28}{build:>9.2f}{1000 * single:>12.3f}"
                  f"{len(queries) / total:>11,.0f}{recalls}")
        print(f"recall@k: share of the exact top-k passages HNSW returns ({args.vectors:,} passages)")
    finish(None, [], False)


if __name__ == "__main__":
    main()
