"""`curate build-mix` against the same mix done with Hugging Face `datasets`: wall time,
peak RSS and realised shares.

Real data replicated with perturbations: MedQuAD pairs (medical) and Dolly +
Self-Instruct (general), each copy with 30% of its answer's words replaced by words drawn
from the same corpus, so copies are neither exact nor near duplicates of each other.

- curate, full recipe: exact dedup, near-dup dedup and decontamination (n-gram and
  MinHash tiers) against MMLU-medical, then a 60/40 loss-token mix with the largest
  budget the data allows, and the release written.
- curate, same scope as the peer: exact dedup and the 60/40 mix only.
- peer, `datasets` as its documentation shows: ``load_dataset("json")`` per source,
  ``map(batched=True)`` to chat messages and loss tokens (the same whitespace estimate
  curate uses without a tokenizer: 1.3 per word + 1 per turn), ``filter`` of exact
  duplicates (a hash of the text, seen-set), ``shuffle(seed=0)``, ``interleave_datasets`` with
  ``probabilities`` (``stopping_strategy="first_exhausted"``) twice: the targets as a
  user writes them, [0.6, 0.4] (row probabilities), and token-weighted (each target
  divided by its source's mean loss tokens per row, what a user who knows would write);
  each cut at the loss tokens of curate's same-scope release and written to Parquet. It
  has no near-dup or decontamination step, so its time compares with the same-scope
  curate run only.

Each run is a fresh subprocess (peak RSS is its own).

    .venv/bin/python benchmarks/build_mix.py --rows 100000 1000000   # about 15 min
    .venv/bin/python benchmarks/build_mix.py --smoke     # 2,000 records, seconds (the test suite's size)
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import add_clean, add_work, announce, finish, parse_args

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"


def _rows(path: Path, question: str, answer: str) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(r[question], r[answer]) for r in rows if r.get(question) and r.get(answer)]


def make_corpus(rows: int, work: Path) -> Path:
    """JSON Lines of ``rows`` chats in ``work``, 70% medical, 30% general, perturbed copies."""
    folder = work / f"corpus_{rows}"
    if (folder / "done").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    medical = _rows(DATA / "medical/medquad/medquad_answered.jsonl", "question", "answer")
    general = _rows(DATA / "general/dolly/dolly_151.jsonl", "instruction", "response")
    for name in ("seed_tasks.jsonl", "user_oriented_instructions.jsonl"):
        general += [(r["instruction"], r["instances"][0]["output"]) for r in
                    map(json.loads, (DATA / "general/self_instruct" / name).read_text().splitlines())
                    if r["instances"][0]["output"]]
    rng = random.Random(0)
    vocabulary = " ".join(a for _, a in medical[:2000] + general).split()
    split = int(rows * 0.7)
    for name, pool, count in (("medical", medical, split), ("general", general, rows - split)):
        with (folder / f"{name}.jsonl").open("w") as out:
            for i in range(count):
                question, answer = pool[i % len(pool)]
                words = answer.split()
                for j in rng.sample(range(len(words)), int(len(words) * 0.3)):
                    words[j] = rng.choice(vocabulary)
                out.write(json.dumps({"q": f"{question} (case {i})", "a": " ".join(words)}) + "\n")
    (folder / "done").touch()
    return folder


FULL = "{exact_dedup: {}, near_dedup: {}, decontam: {}}"
SCOPE = "{exact_dedup: {}}"


def write_catalog(corpus: Path, stages: str = FULL) -> tuple[Path, Path]:
    catalog = corpus / "catalog"
    for name in ("medical", "general"):
        (catalog / "sources").mkdir(parents=True, exist_ok=True)
        (catalog / "sources" / f"bench_{name}.yaml").write_text(
            f"name: bench_{name}\nversion: 1\nlicense: CC-BY-4.0\ndomain: {name}\ntask: qa\n"
            f"location: {{path: {corpus / (name + '.jsonl')}}}\n"
            "allow_outside_data_root: true\nmapping: {kind: chat, question: q, answer: a}\n")
    recipe = corpus / ("recipe.yaml" if stages == FULL else "recipe_scope.yaml")
    recipe.write_text(
        f"name: bench{'' if stages == FULL else '_scope'}\nversion: '1'\nseed: 0\n"
        "sources: [bench_medical, bench_general]\n"
        + ("benchmarks: [mmlu_medical]\n" if stages == FULL else "")
        + f"stages: {stages}\n"
        "mix: {targets: {medical: 0.6, general: 0.4}}\n")
    return catalog, recipe


def run_build(rows: int, stages: str, work: Path) -> dict:
    from curate.pipeline.build import build_mix
    from curate.pipeline.run import open_run

    corpus = make_corpus(rows, work)
    catalog, recipe = write_catalog(corpus, stages)
    for folder in ("runs", "releases"):
        shutil.rmtree(corpus / folder, ignore_errors=True)
    started = time.perf_counter()
    run = open_run(recipe, catalog_dirs=[catalog], runs_dir=corpus / "runs", data_root=DATA)
    result = build_mix(run, releases_dir=corpus / "releases")
    seconds = time.perf_counter() - started
    timings = {s.name: s.stats["seconds"] for s in result.stages}
    composition = result.release.manifest["composition"]
    return {"seconds": seconds, "stages": timings, "composition": composition,
            "tokens": sum(c["loss_tokens"] for c in composition)}


def run_peer(rows: int, budget: int, work: Path) -> dict:
    """The same-scope mix with `datasets`: load, map, filter exact duplicates, interleave."""
    import hashlib

    import datasets
    import numpy as np

    corpus = make_corpus(rows, work)
    cache = corpus / "hf_cache"
    shutil.rmtree(cache, ignore_errors=True)
    datasets.disable_progress_bars()
    started = time.perf_counter()
    seen: set[bytes] = set()

    def to_chat(batch: dict, category: str) -> dict:
        return {"messages": [[{"role": "user", "content": q}, {"role": "assistant", "content": a}]
                             for q, a in zip(batch["q"], batch["a"])],
                "loss_tokens": [round(len(a.split()) * 1.3) + 1 for a in batch["a"]],
                "category": [category] * len(batch["q"]),
                "hash": [hashlib.sha1(f"{q}\x00{a}".encode()).digest()
                         for q, a in zip(batch["q"], batch["a"])]}

    def first_time(h: bytes) -> bool:
        if h in seen:
            return False
        seen.add(h)
        return True

    parts = []
    for category in ("medical", "general"):
        ds = datasets.load_dataset("json", data_files=str(corpus / f"{category}.jsonl"), split="train",
                                   cache_dir=str(cache))
        ds = ds.map(to_chat, batched=True, fn_kwargs={"category": category}, remove_columns=["q", "a"])
        # shuffled, as the datasets docs do before sampling: files in source order are not random
        parts.append(ds.filter(first_time, input_columns="hash").shuffle(seed=0))
    prepared = time.perf_counter() - started
    means = [float(np.mean(ds["loss_tokens"])) for ds in parts]
    weighted = [t / m for t, m in zip((0.6, 0.4), means)]
    variants = {}
    for label, probabilities in (("targets", [0.6, 0.4]),
                                 ("token-weighted", [w / sum(weighted) for w in weighted])):
        began = time.perf_counter()
        mixed = datasets.interleave_datasets(parts, probabilities=probabilities, seed=0,
                                             stopping_strategy="first_exhausted")
        tokens = np.cumsum(np.asarray(mixed["loss_tokens"], dtype=np.int64))
        take = int(np.searchsorted(tokens, budget, side="right"))
        mixed = mixed.select(range(take)).remove_columns("hash")
        mixed.to_parquet(str(corpus / "peer_mix.parquet"))
        seconds = prepared + time.perf_counter() - began
        categories = np.asarray(mixed["category"])
        counts = np.asarray(mixed["loss_tokens"], dtype=np.int64)
        total = max(int(counts.sum()), 1)
        variants[label] = {
            "seconds": seconds, "tokens": total, "probabilities": [round(p, 3) for p in probabilities],
            "composition": [{"category": c, "target": t, "rows": int((categories == c).sum()),
                             "realised": float(counts[categories == c].sum() / total),
                             "loss_tokens": int(counts[categories == c].sum())}
                            for c, t in (("medical", 0.6), ("general", 0.4))]}
        (corpus / "peer_mix.parquet").unlink()
    shutil.rmtree(cache, ignore_errors=True)
    return {"variants": variants, "version": datasets.__version__}


def worker(kind: str, rows: int, work: Path, budget: int = 0) -> dict:
    """One run in a fresh interpreter: its figures, peak RSS included."""
    out = subprocess.run([sys.executable, __file__, "--worker", kind, "--rows", str(rows),
                          "--budget", str(budget), "--work", str(work)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def shares(composition: list[dict]) -> str:
    return ", ".join(f"{c['category']} {c['realised']:.2%} (target {c['target']:.0%}, {c['rows']:,} rows)"
                     for c in composition)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000],
                        help="corpus sizes (records, 70%% medical); each gets all three runs")
    parser.add_argument("--worker", choices=["full", "scope", "peer"], help=argparse.SUPPRESS)
    parser.add_argument("--budget", type=int, default=0, help=argparse.SUPPRESS)
    add_work(parser, "build_mix")
    add_clean(parser)
    args = parse_args(parser, {"rows": [2000]})
    if args.worker:
        if args.worker == "peer":
            result = run_peer(args.rows[0], args.budget, args.work)
        else:
            result = run_build(args.rows[0], FULL if args.worker == "full" else SCOPE, args.work)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        # CPU seconds beside the wall: on a shared machine the wall grows with the load
        result["cpu_s"] = sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))
        print(json.dumps(result))
        return
    # measured on the shared 2-core machine (load 8-12): 44 s at 5,000 records, 50 s at 20,000
    started = announce("build_mix.py", sum(40 + 1e-3 * n for n in args.rows), "records " + ", ".join(
        f"{n:,}" for n in args.rows) + ": curate full recipe, curate same scope, datasets")
    rss = {}
    for rows in args.rows:
        make_corpus(rows, args.work)
        full = worker("full", rows, args.work)
        scope = worker("scope", rows, args.work)
        peer = worker("peer", rows, args.work, budget=scope["tokens"])
        rss[rows] = full["peak_rss_mb"]
        stages = ", ".join(f"{name} {s:.1f}s" for name, s in full["stages"].items())
        print(f"{rows:>10,} records")
        print(f"  curate full recipe (exact + near dedup, decontam, mix, release): {full['seconds']:7.1f}s "
              f"({full['cpu_s']:.0f} CPU s), peak RSS {full['peak_rss_mb']:6.0f} MB; stages: {stages}")
        print(f"    realised: {shares(full['composition'])}")
        print(f"  curate same scope (exact dedup, mix, release):                   {scope['seconds']:7.1f}s "
              f"({scope['cpu_s']:.0f} CPU s), peak RSS {scope['peak_rss_mb']:6.0f} MB")
        print(f"    realised: {shares(scope['composition'])}")
        ours = max(abs(c["realised"] - c["target"]) for c in scope["composition"])
        for label, v in peer["variants"].items():
            worst = max(abs(c["realised"] - c["target"]) for c in v["composition"])
            print(f"  datasets {peer['version']}, probabilities {label} {v['probabilities']} "
                  f"(load_dataset json, map, filter, interleave_datasets, to_parquet): {v['seconds']:7.1f}s, "
                  f"{v['tokens']:,} loss tokens (curate: {scope['tokens']:,})")
            print(f"    realised: {shares(v['composition'])}")
            print(f"  ratio datasets ({label}) / curate same scope: time "
                  f"{v['seconds'] / scope['seconds']:.2f}x; largest share error: curate {ours:.2%}, "
                  f"datasets {worst:.2%}")
        print(f"  peak RSS: datasets {peer['peak_rss_mb']:.0f} MB (both variants in one process), "
              f"{peer['peak_rss_mb'] / scope['peak_rss_mb']:.2f}x curate same scope")
    if len(rss) > 1:
        small, large = min(rss), max(rss)
        print(f"curate full recipe: peak RSS grows {rss[large] / rss[small]:.2f}x for "
              f"{large / small:.0f}x the records")
    finish(started, [args.work], args.clean)


if __name__ == "__main__":
    main()
