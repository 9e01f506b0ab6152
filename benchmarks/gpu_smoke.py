"""GPU smoke test: DEITA scoring and chain-of-thought generation on vLLM in ONE `build-mix`.

For a machine with a CUDA GPU and `pip install 'curate[vllm]'`; it takes a few minutes
(most of it vLLM's start-up, three times). It

1. builds a tiny random Llama (hidden 256, 4 heads of 64: a head size vLLM's kernels take)
   and a word-level tokenizer with a chat template from a config, and saves it: no download;
2. writes a catalog entry for the first ROWS records of the MedQuAD sample (the demo's data)
   and a recipe that runs the `quality` stage on vLLM with that model as both scorers,
   loaded in turn, then `synth: {cot: ...}` with the same model as a vLLM generator;
3. runs the recipe with `curate.pipeline.build.build_mix` in this process, as `curate
   build-mix` does, sampling the device's used memory (all processes: vLLM's engine core runs
   in its own) every 0.1 s, and prints what ran and the peak GPU memory of each step.

The scores and texts of a random model mean nothing; what the run shows is that the engines
start within their memory share, prompts fit the engine's context, the retry temperatures
are accepted and every engine is shut down before the next one starts. For outputs that
repeat exactly, set `VLLM_BATCH_INVARIANT=1` (or run single-process with
`VLLM_ENABLE_V1_MULTIPROCESSING=0`); see the README's GPU section.

    python benchmarks/gpu_smoke.py                 # the run (needs a GPU and vLLM)
    python benchmarks/gpu_smoke.py --dry-run       # build the model and the recipe, check them, run nothing
    python benchmarks/gpu_smoke.py --smoke         # the dry run on 5 rows in a temporary folder (the test
                                                   # suite's size; everything that runs without a GPU)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SOURCE = "gpu_smoke_medquad"
sys.path.insert(0, str(HERE))  # _common; taken off again, as the tests import this file
try:
    from _common import add_clean, add_work, announce, finish, parse_args  # noqa: E402
finally:
    sys.path.remove(str(HERE))


def read_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gpu_smoke.py",
        description="Run DEITA scoring and CoT generation on vLLM in one build-mix with a tiny "
        "random Llama; print what ran and the peak GPU memory per step.")
    parser.add_argument("--rows", type=int, default=50, help="Demo records to run on (default 50).")
    add_work(parser, "gpu_smoke", emptied=True)  # the model, catalog, run and release
    parser.add_argument("--data-root", default=None,
                        help="The shared data folder [default: $CURATE_DATA_ROOT or ../shared/data].")
    parser.add_argument("--max-model-len", type=int, default=256,
                        help="The engines' context length (vLLM's max_model_len; default 256).")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.6,
                        help="Share of the GPU each engine takes (default 0.6: more than half, so "
                        "an engine left running would make the next one fail to start).")
    parser.add_argument("--dry-run", action="store_true",
                        help="Build the model, the catalog entry and the recipe and validate them; "
                        "load no engine (runs without a GPU or vLLM).")
    add_clean(parser)
    return parse_args(parser, {"dry_run": True, "rows": 5}, argv)


# -- the tiny model -----------------------------------------------------------------------------

DEITA_WORDS = (
    "You are a helpful assistant. Please identify the complexity score of the following user "
    "query. ##Query: ##Complexity: Please identify the quality score of the Response "
    "corresponding to the Question. #Question#: #Response#: ##Quality: Answer: Question: "
    "Options: Explain step by step, then conclude with"
)


def build_tiny_llama(folder: Path, texts: list[str], *, max_positions: int) -> Path:
    """A random Llama (hidden 256, 4 heads of 64, bfloat16) and the word-level tokenizer of
    tests/tiny_lm.py (every word of ``texts`` and of DEITA's prompts, each digit one token),
    saved with ``save_pretrained``."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from tiny_lm import build_tiny_lm

    return build_tiny_lm(folder, texts=[DEITA_WORDS, *texts], hidden_size=256, heads=4,
                         max_positions=max_positions, dtype="bfloat16")


# -- the catalog entry and the recipe -------------------------------------------------------------

def write_inputs(work: Path, rows: int, data_root: Path, args: argparse.Namespace) -> tuple[Path, Path]:
    """The first ``rows`` MedQuAD sample records, a catalog entry for them, and the recipe."""
    import yaml

    sample = data_root / "medical" / "medquad" / "medquad_sample_1500.jsonl"
    if not sample.exists():
        sys.exit(f"gpu_smoke: {sample} not found; pass --data-root (the shared data folder)")
    lines = sample.read_text(encoding="utf-8").splitlines()[:rows]
    data = work / "data" / f"medquad_{rows}.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    texts = [f"{r['question']} {r['answer']}" for r in map(json.loads, lines)]
    model = build_tiny_llama(work / "tiny-llama", texts, max_positions=2 * args.max_model_len)
    catalog = work / "catalog"
    (catalog / "sources").mkdir(parents=True, exist_ok=True)
    (catalog / "sources" / f"{SOURCE}.yaml").write_text(yaml.safe_dump({
        "name": SOURCE, "version": 1, "license": "CC-BY-4.0", "domain": "medical",
        "origin": "real", "task": "qa", "description": f"The first {rows} MedQuAD sample pairs.",
        "location": {"path": str(data)},
        "mapping": {"kind": "chat", "question": "question", "answer": "answer"},
    }, sort_keys=False))
    engine = {"gpu_memory_utilization": args.gpu_memory_utilization,
              "max_model_len": args.max_model_len}
    recipe = {
        "name": "gpu-smoke", "version": "0.0.1", "seed": 0,
        "description": "GPU smoke test: DEITA scoring and CoT generation on vLLM in one build.",
        "sources": [SOURCE], "benchmarks": [],
        "stages": {"quality": {
            "backend": "vllm", "complexity_model": str(model), "quality_model": str(model),
            "scorer_loading": "in_turn", "drop_fraction": 0.2, "collapse_min_std": 0.0,
            "collapse_max_identical": 1.0, **engine}},
        "synth": {"cot": {
            "generator": {"backend": "vllm", "model": str(model), **engine},
            "sources": [SOURCE], "max_attempts": 10, "max_tokens": 32,
            "gold_answer": "withheld", "open_qa_check": "non_empty"}},
    }
    path = work / "gpu-smoke.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path, catalog


# -- the run ------------------------------------------------------------------------------------

class MemorySampler:
    """Peak device memory in use (all processes) per step, sampled every 0.1 s."""

    def __init__(self) -> None:
        import torch

        self.torch = torch
        self.step = "start"
        self.peaks: dict[str, float] = {}
        self.started: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _used_gib(self) -> float:
        free, total = self.torch.cuda.mem_get_info()
        return (total - free) / 2**30

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peaks[self.step] = max(self.peaks.get(self.step, 0.0), self._used_gib())

    def at(self, step: str) -> None:
        if step != self.step:
            self.step = step
            self.started.setdefault(step, time.perf_counter())

    def __enter__(self) -> MemorySampler:
        self.peaks["before"] = self._used_gib()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peaks["after"] = self._used_gib()


def run(recipe: Path, catalog: Path, work: Path) -> None:
    from curate.pipeline.build import build_mix
    from curate.pipeline.run import open_run

    run_ = open_run(recipe, catalog_dirs=[catalog], runs_dir=work / "runs")
    with MemorySampler() as memory:
        result = build_mix(run_, releases_dir=work / "releases",
                           progress=lambda tick: memory.at(f"ingest {tick.part}" if tick.step == "ingest"
                                                           else tick.name))
    print("\nstep                      seconds  reused     peak GPU memory in use (GiB, all processes)")
    print(f"{'before':<26}{'':>8}  {'':<9}  {memory.peaks['before']:.2f}")
    for stage in result.stages:
        print(f"{stage.name:<26}{stage.stats['seconds']:>8.1f}  {stage.reused:<9}  "
              f"{memory.peaks.get(stage.name, float('nan')):.2f}")
    if result.synth is not None:
        print(f"{'synth_cot':<26}{'':>8}  {'':<9}  {memory.peaks.get('synth_cot', float('nan')):.2f}  "
              f"({result.synth['synthetic']} of {result.synth['rows']} rows kept; attempts "
              f"{result.synth['attempts']}, rejected {result.synth['rejected']})")
    print(f"{'after (engines closed)':<26}{'':>8}  {'':<9}  {memory.peaks['after']:.2f}")
    if result.release is not None:
        print(f"release: {result.release.path}")


def main(argv: list[str] | None = None) -> None:
    args = read_args(argv)
    sys.path.insert(0, str(HERE.parent))
    from curate.catalog import resolve_data_root

    started = announce("gpu_smoke.py", 10 if args.dry_run else 300, f"{args.rows} rows" + (
        ", dry run" if args.dry_run else ", vLLM on the GPU"))
    if args.smoke:
        print("smoke: the dry run, everything that runs without a GPU: the tiny model (built and "
              "saved), the catalog entry and the recipe (validated by plan_mix, as build-mix does "
              "first); no vLLM engine, no generation, no GPU memory figures")
    work = args.work.resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    print(f"gpu_smoke: {args.rows} rows, max_model_len {args.max_model_len}, "
          f"gpu_memory_utilization {args.gpu_memory_utilization} per engine; work folder {work}")
    print("VLLM_BATCH_INVARIANT=" + os.environ.get("VLLM_BATCH_INVARIANT", "(unset)")
          + ", VLLM_ENABLE_V1_MULTIPROCESSING="
          + os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING", "(unset)"))
    recipe, catalog = write_inputs(work, args.rows, resolve_data_root(args.data_root), args)
    print(f"model: {work / 'tiny-llama'} (random weights)\nrecipe: {recipe}")
    if args.dry_run:
        from curate.pipeline.build import plan_mix
        from curate.pipeline.run import open_run

        plan = plan_mix(open_run(recipe, catalog_dirs=[catalog], runs_dir=work / "runs"))
        quality = plan.recipe["stages"]["quality"]
        generator = plan.recipe["synth"]["cot"]["generator"]
        print(f"dry run: recipe valid; would run quality ({quality['backend']}, "
              f"{quality['scorer_loading']}) then synth cot ({generator['backend']}) "
              f"on {args.rows} rows; no engine loaded")
        finish(started, [work], args.clean)
        return
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        sys.exit("gpu_smoke: vLLM is not installed: pip install 'curate[vllm]' (on a machine with a GPU)")
    import torch

    if not torch.cuda.is_available():
        sys.exit("gpu_smoke: no CUDA device visible")
    run(recipe, catalog, work)
    finish(started, [work], args.clean)


if __name__ == "__main__":
    main()
