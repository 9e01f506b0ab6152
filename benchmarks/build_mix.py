"""`curate build-mix` at scale: wall time, peak RSS and realised shares, 100k vs 1M records.

Real data replicated with perturbations: MedQuAD pairs (medical) and Dolly +
Self-Instruct (general), each copy with 30% of its answer's words replaced by words drawn
from the same corpus, so copies are neither exact nor near duplicates of each other.
The recipe runs exact dedup, near-dup dedup and decontamination (n-gram and MinHash
tiers) against MMLU-medical, then a 60/40 loss-token mix with the largest budget the
data allows, and writes the release. Each size runs in a fresh subprocess.

    .venv/bin/python benchmarks/build_mix.py --rows 100000 1000000
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

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work" / "build_mix"
DATA = HERE.parent.parent / "shared" / "data"


def _rows(path: Path, question: str, answer: str) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(r[question], r[answer]) for r in rows if r.get(question) and r.get(answer)]


def make_corpus(rows: int) -> Path:
    """JSON Lines of ``rows`` chats, 70% medical, 30% general, perturbed copies."""
    folder = WORK / f"corpus_{rows}"
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


def write_catalog(corpus: Path) -> tuple[Path, Path]:
    catalog = corpus / "catalog"
    for name in ("medical", "general"):
        (catalog / "sources").mkdir(parents=True, exist_ok=True)
        (catalog / "sources" / f"bench_{name}.yaml").write_text(
            f"name: bench_{name}\nversion: 1\nlicense: CC-BY-4.0\ndomain: {name}\ntask: qa\n"
            f"location: {{path: {corpus / (name + '.jsonl')}}}\n"
            "allow_outside_data_root: true\nmapping: {kind: chat, question: q, answer: a}\n")
    recipe = corpus / "recipe.yaml"
    recipe.write_text(
        "name: bench\nversion: '1'\nseed: 0\nsources: [bench_medical, bench_general]\n"
        "benchmarks: [mmlu_medical]\n"
        "stages: {exact_dedup: {}, near_dedup: {}, decontam: {}}\n"
        "mix: {targets: {medical: 0.6, general: 0.4}}\n")
    return catalog, recipe


def run_build(rows: int) -> dict:
    from curate.pipeline.build import build_mix
    from curate.pipeline.run import open_run

    corpus = make_corpus(rows)
    catalog, recipe = write_catalog(corpus)
    for folder in ("runs", "releases"):
        shutil.rmtree(corpus / folder, ignore_errors=True)
    started = time.perf_counter()
    run = open_run(recipe, catalog_dirs=[catalog], runs_dir=corpus / "runs", data_root=DATA)
    result = build_mix(run, releases_dir=corpus / "releases")
    seconds = time.perf_counter() - started
    stages = {s.name: s.stats["seconds"] for s in result.stages}
    return {"seconds": seconds, "stages": stages, "composition": result.release.manifest["composition"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = run_build(args.rows[0])
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    rss = {}
    for rows in args.rows:
        make_corpus(rows)
        out = subprocess.run([sys.executable, __file__, "--worker", "--rows", str(rows)],
                             check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rss[rows] = r["peak_rss_mb"]
        shares = ", ".join(f"{c['category']} {c['realised']:.2%} (target {c['target']:.0%}, "
                           f"{c['rows']:,} rows)" for c in r["composition"])
        stages = ", ".join(f"{name} {s:.1f}s" for name, s in r["stages"].items())
        print(f"{rows:>10,} records: {r['seconds']:7.1f}s wall, peak RSS {r['peak_rss_mb']:6.0f} MB")
        print(f"{'':>10}  stages: {stages}")
        print(f"{'':>10}  realised: {shares}")
    if len(rss) > 1:
        small, large = min(rss), max(rss)
        print(f"peak RSS grows {rss[large] / rss[small]:.2f}x for {large / small:.0f}x the records")


if __name__ == "__main__":
    main()
