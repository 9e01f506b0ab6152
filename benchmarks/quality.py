"""Selection and scoring speed: diversity selection, DEITA scoring, MiniLM embedding.

(a) Diversity selection over 100,000 real-text MiniLM embeddings: MedQuAD question +
    answer pairs and Dolly + Self-Instruct instructions (about 17k texts, embedded once
    and cached in benchmarks/_work/quality/), replicated to the row count, each copy
    moved by Gaussian noise (0.01 per dimension, cosine about 0.98 to its original) and
    visited in a shuffled order. ``curate.curation.diversity.select_diverse`` against
    the straightforward loop (per record: similarities to the kept matrix, keep if the
    largest is <= tau); both must keep the same records.
(b) DEITA scoring throughput (records/s, complexity and quality, through the stage) of
    the transformers backend on the CPU, with a ~20M-parameter Llama built from a config
    (random weights, the word-level tokenizer of tests/tiny_lm.py), batch 1 vs 16.
(c) MiniLM embedding throughput (texts/s) on the CPU through ``curate.curation.embed.embed``.

    .venv/bin/python benchmarks/quality.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work" / "quality"
DATA = HERE.parent.parent / "shared" / "data"
sys.path.insert(0, str(HERE.parent / "tests"))


def real_texts() -> list[tuple[str, str]]:
    """(question, answer) pairs: MedQuAD, then Dolly and Self-Instruct."""
    medquad = _jsonl(DATA / "medical/medquad/medquad_answered.jsonl")
    pairs = [(r["question"], r["answer"]) for r in medquad if r.get("question") and r.get("answer")]
    dolly = _jsonl(DATA / "general/dolly/dolly_151.jsonl")
    pairs += [(r["instruction"], r["response"]) for r in dolly]
    for name in ("seed_tasks.jsonl", "user_oriented_instructions.jsonl"):
        pairs += [(r["instruction"], r["instances"][0]["output"])
                  for r in _jsonl(DATA / "general/self_instruct" / name)]
    return pairs


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def base_embeddings() -> np.ndarray:
    """MiniLM embeddings of every real (question, answer), cached after the first run."""
    from curate.curation.embed import embed

    cache = WORK / "minilm.npy"
    if not cache.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        texts = [f"{q}\n{a}" for q, a in real_texts()]
        np.save(cache, embed(texts, max_tokens=128))
    return np.load(cache)


def replicated(base: np.ndarray, rows: int, seed: int = 0) -> np.ndarray:
    """``rows`` unit vectors: the base rows and noisy copies of them, shuffled."""
    rng = np.random.default_rng(seed)
    index = np.arange(rows) % len(base)
    vectors = base[index] + (index >= len(base))[:, None] * rng.normal(
        0, 0.01, (rows, base.shape[1])).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors[rng.permutation(rows)].astype(np.float32)


def loop_select(embeddings: np.ndarray, tau: float) -> np.ndarray:
    """The plain loop: keep a record when no kept record is more similar than ``tau``."""
    kept = np.zeros_like(embeddings)
    mask = np.zeros(len(embeddings), bool)
    count = 0
    for i, vector in enumerate(embeddings):
        if count == 0 or (kept[:count] @ vector).max() <= tau:
            kept[count] = vector
            count += 1
            mask[i] = True
    return mask


def bench_diversity(rows: int, tau: float) -> None:
    from curate.curation.diversity import select_diverse

    base = base_embeddings()
    vectors = replicated(base, rows)
    started = time.perf_counter()
    kept, nearest, similarity = select_diverse(vectors, tau)
    ours = time.perf_counter() - started
    started = time.perf_counter()
    expected = loop_select(vectors, tau)
    theirs = time.perf_counter() - started
    differ = int((kept != expected).sum())
    dropped = np.flatnonzero(~kept)
    linked = (vectors[dropped] * vectors[nearest[dropped]]).sum(axis=1)
    print(f"(a) diversity selection, {rows:,} MiniLM embeddings ({len(base):,} real texts), "
          f"tau {tau}")
    print(f"    {'select_diverse':>16} {ours:8.2f}s   kept {int(kept.sum()):,}")
    print(f"    {'per-record loop':>16} {theirs:8.2f}s   kept {int(expected.sum()):,}")
    print(f"    select_diverse runs at {theirs / ours:.1f}x the loop's speed; "
          f"{'target met' if ours < 60 else 'TARGET MISSED'} (< 60 s)")
    assert differ == 0, f"{differ} records selected differently"
    assert kept[nearest[dropped]].all() and (nearest[dropped] < dropped).all(), \
        "a dropped record's nearest record is not one kept before it"
    assert np.allclose(similarity[dropped], linked, atol=1e-5) and (linked > tau - 1e-5).all(), \
        "a dropped record's max_similarity is not its cosine to its nearest kept record"


def bench_scoring(records: int, batch_sizes: list[int]) -> None:
    import pyarrow as pa
    from tiny_lm import build_tiny_lm

    from curate.curation.quality import Quality, QualityConfig
    from curate.engine.stage import StageContext

    pairs = real_texts()[:records]
    folder = WORK / "scorer_lm"
    if not (folder / "config.json").exists():
        build_tiny_lm(folder, texts=[f"{q} {a}" for q, a in real_texts()[:2000]],
                      hidden_size=512, layers=6, heads=8)
    params = _parameters(folder)
    table = pa.table({
        "messages": [[{"role": "user", "content": q}, {"role": "assistant", "content": a}]
                     for q, a in pairs],
        "chosen": [None] * len(pairs),
    })
    speed = {}
    print(f"(b) DEITA scoring (complexity + quality), transformers on the CPU, {records} MedQuAD "
          f"records, a {params / 1e6:.0f}M-parameter Llama, prompts cut to 512 tokens")
    for size in batch_sizes:
        stage = Quality(QualityConfig(complexity_model=str(folder), quality_model=str(folder),
                                      device="cpu", batch_size=size, max_length=512))
        stage.scorer(str(folder))  # load outside the timing
        started = time.perf_counter()
        stage.score(table, StageContext())
        speed[size] = records / (time.perf_counter() - started)
        print(f"    batch {size:>3}: {speed[size]:8.1f} records/s")
    if len(speed) > 1:
        small, large = min(speed), max(speed)
        print(f"    batch {large} runs at {speed[large] / speed[small]:.2f}x batch {small}")


def _parameters(folder: Path) -> int:
    from transformers import AutoModelForCausalLM

    return sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(folder).parameters())


def bench_embedding(texts: int) -> None:
    from curate.curation.embed import embed

    sample = [f"{q}\n{a}" for q, a in real_texts()[:texts]]
    embed(sample[:64], max_tokens=128)  # load the model outside the timing
    started = time.perf_counter()
    embed(sample, max_tokens=128)
    seconds = time.perf_counter() - started
    print(f"(c) MiniLM embedding on the CPU, {texts:,} MedQuAD texts cut to 128 tokens: "
          f"{texts / seconds:,.0f} texts/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=["a", "b", "c"], default=["a", "b", "c"])
    parser.add_argument("--rows", type=int, default=100_000, help="(a) embeddings to select from")
    parser.add_argument("--tau", type=float, default=0.9,
                        help="(a) cosine above which a record is redundant")
    parser.add_argument("--records", type=int, default=128, help="(b) records to score")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16], help="(b)")
    parser.add_argument("--texts", type=int, default=2000, help="(c) texts to embed")
    args = parser.parse_args()
    if "a" in args.parts:
        bench_diversity(args.rows, args.tau)
    if "b" in args.parts:
        bench_scoring(args.records, args.batch_sizes)
    if "c" in args.parts:
        bench_embedding(args.texts)


if __name__ == "__main__":
    main()
