"""Selection and scoring speed against DEITA's own code paths, and MiniLM embedding.

(a) Diversity selection over real-text MiniLM embeddings: MedQuAD question + answer
    pairs and Dolly + Self-Instruct instructions (about 17k texts, embedded once and
    cached in benchmarks/_work/quality/, ``--work``), replicated to --rows, each copy moved by Gaussian
    noise (0.01 per dimension, cosine about 0.98 to its original), in a shuffled order.
    ``curate.curation.diversity.select_diverse`` against DEITA's repr filter loop as
    DEITA writes it (``IterativeFilter.filter`` in hkust-nlp/deita
    src/deita/selection/filter/base.py, restated here because ``deita`` is not on PyPI:
    per record a torch tensor, the kept embeddings gathered again with numpy fancy
    indexing, cosine to them chunk by chunk with ``torch.mm``, keep when none exceeds
    tau; its defaults batch_size=1, normalize_emb=True; chunk_size as its example
    pipeline, 100,000), timed with torch's default thread count and with one thread (its
    per-record operations are tiny: on a loaded machine extra threads spin, measured 33x
    slower), the faster of the two used for the ratio. Both visit the records in the same
    order (DEITA sorts by score first; the sort is left out of both) and must keep the
    same records. DEITA's loop is quadratic, so it runs on the first --peer-rows records;
    curate on those and on all.
(b) DEITA scoring (complexity and quality) on the CPU with a ~20M-parameter Llama built
    from a config (random weights, the word-level tokenizer of tests/tiny_lm.py): the
    Quality stage (batched forward passes, last position only) at batch 1 and 16 against
    DEITA's ``Scorer.infer_score`` code path (src/deita/selection/scorer/base.py: per
    prompt ``model.generate(max_new_tokens=2, output_scores=True)``, the first step's
    scores at the six digit ids, softmax, expected digit), restated for the same reason,
    given the same token ids (curate's 512-token cut) so the computation is the same; the
    scores of the two must agree.
(c) MiniLM embedding throughput (texts/s) on the CPU through ``curate.curation.embed.embed``
    (no peer: sentence-transformers' ``encode`` is what it calls).

    .venv/bin/python benchmarks/quality.py     # the first run embeds about 17k texts with MiniLM
    .venv/bin/python benchmarks/quality.py --smoke     # every part at a tiny size (the test suite's)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from _common import add_clean, add_work, announce, finish, parse_args

HERE = Path(__file__).resolve().parent
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


def base_embeddings(work: Path, limit: int | None = None) -> np.ndarray:
    """MiniLM embeddings of the real (question, answer) pairs (the first ``limit``, or all),
    cached in ``work`` after the first run."""
    from curate.curation.embed import embed

    cache = work / f"minilm_{limit or 'all'}.npy"
    if not cache.exists():
        work.mkdir(parents=True, exist_ok=True)
        texts = [f"{q}\n{a}" for q, a in real_texts()[:limit]]
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


def deita_filter(embeddings: np.ndarray, tau: float, chunk_size: int = 100_000,
                 batch_size: int = 1) -> np.ndarray:
    """DEITA's ``IterativeFilter.filter`` loop on the CPU, in its order of operations (the
    score sort left out): a keep mask over ``embeddings``."""
    import warnings

    import torch

    # DEITA passes the current batch (already a tensor) through torch.tensor again
    warnings.filterwarnings("ignore", message="To copy construct from a tensor")

    def distance(matrix, matrix_2):  # compute_distance: normalize_emb, then cosine
        matrix = matrix / matrix.norm(dim=1)[:, None]
        matrix_2 = matrix_2 / matrix_2.norm(dim=1)[:, None]
        return torch.mm(matrix / matrix.norm(dim=1)[:, None], (matrix_2 / matrix_2.norm(dim=1)[:, None]).t())

    def chunk_by_chunk(existing, current):  # distance_chunk_by_chunk
        out = torch.zeros((current.size(0), existing.shape[0]), dtype=torch.float32)
        for i in range(0, existing.shape[0], chunk_size):
            chunk = torch.tensor(existing[i : i + chunk_size], dtype=torch.float32)
            block = distance(current, chunk)
            out[:, i : i + block.size(1)] = block
        return out

    kept = [0]
    for i in range(1, embeddings.shape[0], batch_size):
        current = torch.tensor(embeddings[i : i + batch_size], dtype=torch.float32)
        index = torch.arange(i, i + current.size(0), dtype=torch.int64)
        existing = embeddings[kept]
        near_kept = torch.any(chunk_by_chunk(existing, current) > tau, dim=1)
        near_batch = torch.any(chunk_by_chunk(current, current).tril(-1) > tau, dim=1)
        kept.extend(index[~(near_kept | near_batch)].tolist())
    mask = np.zeros(len(embeddings), bool)
    mask[kept] = True
    return mask


def bench_diversity(rows: int, peer_rows: int, tau: float, base_texts: int | None, work: Path) -> None:
    from curate.curation.diversity import select_diverse

    base = base_embeddings(work, base_texts)
    vectors = replicated(base, rows)
    print(f"(a) diversity selection, MiniLM embeddings of {len(base):,} real texts replicated to "
          f"{rows:,}, tau {tau}; DEITA's repr filter loop (batch_size 1, chunk_size 100,000, torch "
          f"on the CPU) on the first {min(peer_rows, rows):,}")
    sizes = sorted({min(peer_rows, rows), rows})
    for n in sizes:
        sample = vectors[:n]
        started = time.perf_counter()
        kept, nearest, similarity = select_diverse(sample, tau)
        ours = time.perf_counter() - started
        line = f"    {n:>8,} records: select_diverse {ours:8.2f}s, kept {int(kept.sum()):,}"
        if n <= peer_rows:
            import torch

            threads = torch.get_num_threads()
            timings = {}
            for count in sorted({threads, 1}, reverse=True):  # torch's default, then one thread
                torch.set_num_threads(count)
                started = time.perf_counter()
                expected = deita_filter(sample, tau)
                timings[count] = time.perf_counter() - started
                differ = int((kept != expected).sum())
                assert differ == 0, f"{differ} records selected differently from DEITA's loop"
            torch.set_num_threads(threads)
            best = min(timings.values())
            line += "; DEITA filter loop " + ", ".join(
                f"{t:.2f}s with {c} torch thread(s)" for c, t in timings.items())
            line += (f", kept {int(expected.sum()):,} (the same records); ratio DEITA (its faster "
                     f"setting) / curate {best / ours:.1f}x")
        print(line)
        dropped = np.flatnonzero(~kept)
        linked = (sample[dropped] * sample[nearest[dropped]]).sum(axis=1)
        assert kept[nearest[dropped]].all() and (nearest[dropped] < dropped).all(), \
            "a dropped record's nearest record is not one kept before it"
        assert np.allclose(similarity[dropped], linked, atol=1e-5) and (linked > tau - 1e-5).all(), \
            "a dropped record's max_similarity is not its cosine to its nearest kept record"


def deita_infer_scores(folder: Path, encoded: list[list[int]]) -> tuple[np.ndarray, float]:
    """DEITA's ``infer_score`` per prompt (generate 2 tokens, first step's scores at the
    digit ids, softmax, expected digit): the scores and the seconds taken."""
    import torch
    from scipy.special import softmax

    from curate.curation.quality import digit_token_ids
    from curate.models import load_causal_lm

    model, tokenizer = load_causal_lm(str(folder), device="cpu")
    ids = digit_token_ids(tokenizer)
    template = np.arange(1, 7)
    out = np.zeros(len(encoded))
    started = time.perf_counter()
    with torch.inference_mode():
        for k, prompt in enumerate(encoded):
            generated = model.generate(torch.tensor([prompt]), max_new_tokens=2, num_return_sequences=1,
                                       return_dict_in_generate=True, output_scores=True, do_sample=False,
                                       pad_token_id=tokenizer.pad_token_id or 0)
            logits = generated.scores[0][0].cpu().numpy()
            out[k] = float((softmax(logits[ids]) * template).sum())
    return out, time.perf_counter() - started


def bench_scoring(records: int, batch_sizes: list[int], layers: int, work: Path) -> None:
    import pyarrow as pa
    from tiny_lm import build_tiny_lm

    from curate.curation.quality import Quality, QualityConfig
    from curate.engine.stage import StageContext

    pairs = real_texts()[:records]
    folder = work / f"scorer_lm_{layers}"
    if not (folder / "config.json").exists():
        build_tiny_lm(folder, texts=[f"{q} {a}" for q, a in real_texts()[:2000]],
                      hidden_size=512, layers=layers, heads=8)
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
        stage.scorer(str(folder))  # load outside the timing (the peer's load is outside too)
        started = time.perf_counter()
        scored = stage.score(table, StageContext())
        speed[size] = records / (time.perf_counter() - started)
        print(f"    curate Quality stage, batch {size:>3}: {speed[size]:8.1f} records/s")
    from curate.curation.quality import complexity_prompt, encode_prompts, quality_prompt
    from curate.models import load_tokenizer

    tokenizer = load_tokenizer(str(folder))
    prompts = [complexity_prompt(q) for q, _ in pairs] + [quality_prompt(q, a) for q, a in pairs]
    theirs, seconds = deita_infer_scores(folder, encode_prompts(tokenizer, prompts, 512))
    peer = records / seconds
    ours = np.concatenate([np.asarray(scored.column("complexity")), np.asarray(scored.column("quality"))])
    gap = float(np.abs(ours - theirs).max())
    print(f"    DEITA infer_score path (generate, 2 new tokens, per prompt): {peer:8.1f} records/s; "
          f"largest score difference from curate's {gap:.2e}")
    for size, value in speed.items():
        print(f"    ratio curate batch {size} / DEITA path: {value / peer:.2f}x")
    assert gap < 1e-3, f"curate's scores differ from DEITA's path by up to {gap}"


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
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", choices=["a", "b", "c"], default=["a", "b", "c"])
    parser.add_argument("--rows", type=int, default=100_000, help="(a) embeddings to select from")
    parser.add_argument("--peer-rows", type=int, default=10_000,
                        help="(a) records DEITA's quadratic loop (and curate, again) runs on")
    parser.add_argument("--tau", type=float, default=0.9,
                        help="(a) cosine above which a record is redundant")
    parser.add_argument("--records", type=int, default=128, help="(b) records to score")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16], help="(b)")
    parser.add_argument("--scorer-layers", type=int, default=6,
                        help="(b) layers of the scoring Llama (hidden 512; 6 layers: about 29M parameters)")
    parser.add_argument("--texts", type=int, default=2000, help="(c) texts to embed")
    parser.add_argument("--base-texts", type=int, default=None,
                        help="(a) real texts embedded as the base (default: all, about 17k; MiniLM on 2 "
                        "CPU cores takes about 90 s for them on the first run, cached after)")
    add_work(parser, "quality")
    add_clean(parser)
    args = parse_args(parser, {"rows": 640, "peer_rows": 64, "base_texts": 64, "records": 2,
                               "batch_sizes": [1, 2], "scorer_layers": 1, "texts": 16})
    # measured on the shared 2-core machine: MiniLM about 3 texts/s (the base, on the first run,
    # and (c)); (a) DEITA's loop 65 ms per record, curate's negligible; (b) 24 s per record
    cached = (args.work / f"minilm_{args.base_texts or 'all'}.npy").exists()
    expected = (0 if cached else (args.base_texts or 17_000) / 3) \
        + ("a" in args.parts) * (0.065 * min(args.peer_rows, args.rows)) \
        + ("b" in args.parts) * 24 * args.records + ("c" in args.parts) * args.texts / 3
    started = announce("quality.py", expected, f"parts {' '.join(args.parts)}: {args.rows:,} rows "
                       f"(DEITA loop on {args.peer_rows:,}), {args.records} scored records, "
                       f"{args.texts:,} embedded texts")
    if "a" in args.parts:
        bench_diversity(args.rows, args.peer_rows, args.tau, args.base_texts, args.work)
    if "b" in args.parts:
        bench_scoring(args.records, args.batch_sizes, args.scorer_layers, args.work)
    if "c" in args.parts:
        bench_embedding(args.texts)
    finish(started, [args.work], args.clean)


if __name__ == "__main__":
    main()
