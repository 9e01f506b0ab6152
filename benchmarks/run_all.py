"""`make bench`: every benchmark script at a size that fits about 15 minutes on 2 cores,
one after another, and BENCHMARKS.md written from what they printed.

BENCHMARKS.md gives the machine (CPU, cores, memory), the versions of curate's libraries
and of every peer, the load average at the start and the end (a shared machine is said to
be shared: its figures are slower than an idle machine's, and ratios between tools that
use different numbers of cores shift), then per script: the command, its peer and the
peer's configuration, a sentence on what is and is not comparable, its wall time and its
full output (every figure with its peer and ratio, as the script prints them).

    .venv/bin/python benchmarks/run_all.py                 # writes BENCHMARKS.md
    .venv/bin/python benchmarks/run_all.py --only synth minhash --out /tmp/B.md
    .venv/bin/python benchmarks/run_all.py --smoke         # every script at its --smoke size (minutes)

``--smoke`` runs each script with its own ``--smoke`` (the test suite's size: the code paths and
the peers, figures that mean nothing) and writes to a temporary folder unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# name -> (arguments at the `make bench` size, the peer and its configuration, what compares)
SCRIPTS: dict[str, tuple[list[str], str, str]] = {
    "ingest": (
        ["--rows", "100000", "--clean"],
        '`datasets.load_dataset("json")` (parse + Arrow cache), and the same plus a batched `map` '
        "doing curate's per-row work",
        "Comparable: the same JSON Lines file, each tool in a fresh process, file to dataset on disk. "
        "Not: plain `load_dataset` does less work per row than curate (no record schema, ids or "
        "validation); the `same work` line is the like-for-like one.",
    ),
    "minhash": (
        ["--docs", "20000", "--peer-docs", "10000", "--peers", "datasketch defaults", "datasketch matched",
         "DataTrove defaults", "--clean"],
        "datasketch 2 (defaults, and xxh64 + LSH params matched to curate's candidate probability) "
        "and DataTrove (defaults, and buckets x hashes matched), configurations printed in the output",
        "Comparable: the same corpus and 5-word shingles, 128 permutations, warm-up and start-up "
        "included for every tool (and reported separately as fixed costs), e2e scoped from the "
        "JSON Lines file to the duplicate clusters for all. Not: datasketch runs on one core by "
        "design and curate's kernels on both; DataTrove has no verification step, so its precision "
        "is that of its candidates; datasketch verifies by estimated, curate by exact Jaccard.",
    ),
    "decontam": (
        ["--items", "30", "--clean", "1500"],
        "lm-eval's 13-gram decontamination (`Janitor`, as its docs describe it)",
        "Comparable: recall and false positives on the same planted and clean real rows. Not a speed "
        "comparison: the baseline is a recall/precision reference only.",
    ),
    "quality": (
        ["--rows", "20000", "--peer-rows", "1000", "--records", "4", "--texts", "100",
         "--base-texts", "1000", "--clean"],
        "DEITA's own code paths restated (`deita` is not on PyPI): its `IterativeFilter.filter` repr "
        "loop, and `Scorer.infer_score` (generate 2 tokens per prompt)",
        "Comparable: the same embeddings, order and tau (both must keep the same records); the same "
        "tiny random Llama and token ids for scoring (the scores must agree). Not: DEITA sorts by "
        "score before filtering (left out of both); the scorer is a random 20M-parameter model, "
        "so the records/s say nothing about DEITA's 7B scorers on a GPU. MiniLM embedding has no peer.",
    ),
    "synth": (
        ["--requests", "160", "--rows", "60"],
        "the `openai` SDK's `AsyncOpenAI` with an `asyncio.Semaphore` of the same concurrency",
        "Comparable: the same requests to the same local fixed-latency server, both clients built "
        "outside the timing with one untimed warm-up round. Not: no model runs, so this measures "
        "client overhead and concurrency against latency, not generation speed.",
    ),
    "build_mix": (
        ["--rows", "20000", "--clean"],
        "Hugging Face `datasets`: `load_dataset`, `map`, `filter`, `shuffle`, `interleave_datasets` "
        "with probabilities",
        "Comparable: curate's same-scope run (exact dedup + 60/40 mix + release) against the "
        "peer doing those steps; realised shares for both. Not: the peer has no near-dup or "
        "decontamination step (curate's full recipe is shown beside, without a ratio), and "
        "`interleave_datasets` takes row probabilities where curate targets loss-token shares: the "
        "peer runs with the targets as written and token-weighted (each divided by its source's "
        "mean loss tokens), after `shuffle(seed=0)`.",
    ),
    "evaluate": (
        ["--items", "30"],
        "lm-eval's `simple_evaluate` on the same exported items and model",
        "Comparable: the same items, prompts, model and batch size, after a warm-up. Not: lm-eval's "
        "time includes its own task and dataset set-up (as its docs recommend running it).",
    ),
    "multimodal": (
        [],
        "imagehash called per image in a plain loop (`imagehash.phash(Image.open(...))`)",
        "Comparable: the image stage's scoring against the peer over the same distinct images, "
        "timed the same way. Not: the stage does more per image (decode and size checks) than the "
        "peer's phash alone; precision/recall have no peer.",
    ),
    "train": (
        ["--steps", "3", "--clean"],
        "TRL's `SFTTrainer` / `DPOTrainer` fed the release by hand with the same config",
        "Comparable: the same release, model, steps and config, timed from the data path to the "
        "saved model. Not: a random tiny model on the CPU; tokens/s says nothing about GPU training.",
    ),
    "rag": (
        ["--embed", "300", "--vectors", "20000", "--queries", "300", "--single", "100"],
        "sentence-transformers' `encode` (index build); faiss `IndexFlatIP` and `IndexHNSWFlat` (search)",
        "Comparable: the same questions and vectors, exact top-k checked identical to faiss flat. "
        "Not: the searched vectors are synthetic (a Gaussian fitted to real MiniLM question vectors, "
        "normalised); HNSW is approximate, so its recall@5 is printed beside its speed.",
    ),
}

# the headline comparisons first, so a run cut short still has them
ORDER = ("minhash", "synth", "build_mix", "quality", "ingest", "decontam", "evaluate", "multimodal", "train",
         "rag")
PACKAGES = ("numpy", "polars", "pyarrow", "numba", "xxhash", "torch", "transformers", "datasets",
            "sentence-transformers", "trl", "datasketch", "datatrove", "openai", "lm-eval",
            "imagehash", "spacy", "faiss-cpu")


def version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine() -> list[str]:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kb / 2**20:.1f} GB"
    except (OSError, ValueError, IndexError):
        pass
    return [f"- CPU: {cpu}, {os.cpu_count()} cores visible; memory {memory}",
            f"- {platform.platform()}, Python {platform.python_version()}"]


def load_line(when: str) -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average at the {when}: {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md", help="the file to write")
    parser.add_argument("--only", nargs="+", choices=list(SCRIPTS), help="run only these scripts")
    parser.add_argument("--keep", action="store_true",
                        help="keep the sections of --out for the scripts not run this time")
    parser.add_argument("--label", default="",
                        help="a line put at the top of the file (say how the machine was loaded)")
    parser.add_argument("--smoke", action="store_true",
                        help="run every script with --smoke (the test suite's size: seconds each, the "
                        "figures mean nothing); --out defaults to a new temporary folder")
    args = parser.parse_args()
    if args.smoke:
        if args.out == parser.get_default("out"):
            args.out = Path(tempfile.mkdtemp(prefix="bench-smoke-")) / "BENCHMARKS.md"
        args.label = " ".join(filter(None, [args.label, "Smoke run (`run_all.py --smoke`): every script at "
                                            "the test suite's size; the figures mean nothing."]))
    names = [n for n in ORDER if n in (args.only or ORDER)]
    started_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    start_load = os.getloadavg()[0]
    size = ("at their --smoke sizes (seconds each)" if args.smoke
            else "sized for about 15 minutes on 2 cores (longer on a loaded machine)")
    print(f"make bench: {len(names)} scripts, {size}; {load_line('start')}", flush=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    sections, total = [], time.perf_counter()
    planned = len(names)
    if args.keep and args.out.exists():  # earlier sections of scripts not run now, in order
        earlier = re.split(r"(?m)^(?=## \w+\.py$)", args.out.read_text())[1:]
        sections = [part.rstrip() + "\n" for part in earlier if part.split("\n", 1)[0][3:-3] not in names]
    planned = len(sections) + len(names)

    def write(done: bool) -> None:
        end_load = os.getloadavg()[0]
        cores = os.cpu_count() or 1
        shared = max(start_load, end_load) > 0.75 * cores
        header = [
            "# Benchmarks",
            "",
            *([f"**{args.label}**", ""] if args.label else []),
            *([] if done else [f"**Incomplete: {len(sections)} of {planned} scripts so far.**", ""]),
            f"Written by `make bench` (`benchmarks/run_all.py`), started {started_at}, "
            f"{(time.perf_counter() - total) / 60:.0f} minutes for {len(sections)} scripts. Each script "
            "runs curate and its named peer in one run and prints the ratio; every figure below is the "
            "script's own output. Re-run `make bench` to regenerate this file.",
            "",
            "## Machine",
            "",
            *machine(),
            f"- Load average at the start: {start_load:.2f}; at the end: {end_load:.2f} ({cores} cores)",
        ]
        if shared:
            header.append(
                f"- **This machine was shared while the benchmarks ran** (load average up to "
                f"{max(start_load, end_load):.1f} on {cores} cores): every time below is slower than "
                "on an idle machine, run-to-run noise is large, and ratios between tools that use "
                "different numbers of cores (datasketch one, curate's kernels all) shift with the load.")
        header += ["", "## Versions", "",
                   ", ".join(f"{p} {version(p)}" for p in ("curate", *PACKAGES)), ""]
        args.out.write_text("\n".join(header) + "\n" + "\n".join(sections))

    for name in names:
        arguments, peer, comparable = SCRIPTS[name]
        arguments = ["--smoke"] if args.smoke else arguments
        command = [sys.executable, str(HERE / f"{name}.py"), *arguments]
        shown = shlex.join(["python", f"benchmarks/{name}.py", *arguments])
        print(f"\n== {shown}", flush=True)
        began = time.perf_counter()
        proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - began
        output = proc.stdout.rstrip()
        if proc.returncode != 0:
            output += "\n\n[stderr, last 20 lines]\n" + "\n".join(proc.stderr.strip().splitlines()[-20:])
        print(output, flush=True)
        status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
        sections.append(
            f"## {name}.py\n\n`{shown}`: {status}, {seconds:.0f} s wall\n\n"
            f"**Peer:** {peer}.\n\n**What compares:** {comparable}\n\n```text\n{output}\n```\n")
        write(done=False)
    write(done=True)
    print(f"\nwrote {args.out} ({len(sections)} scripts); {load_line('end')}")


if __name__ == "__main__":
    main()
