"""Evaluation speed: log-likelihood MCQA questions/s, `curate eval mcqa` against
lm-eval's `simple_evaluate` on the same items and model in one run; and the audit's rows/s
over every shipped benchmark.

The model is a small Llama built from a config with random weights (hidden 256, 4 layers,
8 heads; nothing is downloaded). Both sides score the same exported items with the same
prompts, on the CPU, batch size 8, after a warm-up; each is timed around its scoring call
(lm-eval: `simple_evaluate`, which includes its own task and dataset set-up, as its docs
recommend running it; curate: `evaluate_mcqa`, which includes reading the benchmark).

    PYTHONPATH=. python benchmarks/evaluate.py [--items 200]
    PYTHONPATH=. python benchmarks/evaluate.py --smoke     # 4 items, audit of two (the test suite's size)

Without lm-eval (the eval extra) the peer is skipped, said so, and curate runs alone.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _common import announce, finish, installed, parse_args  # noqa: E402
from tiny_lm import build_tiny_lm  # noqa: E402

SHIPPED = ["medmcqa", "medmcqa_singlechoice", "medmcqa_test", "mmlu_medical", "mmlu_medical_csv",
           "mmlu_pro_health", "pubmedqa", "pubmedqa_test_mcq"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=200, help="items per benchmark")
    parser.add_argument("--benchmarks", nargs="+", default=["mmlu_medical", "medmcqa"])
    parser.add_argument("--audit", nargs="+", default=SHIPPED, metavar="BENCHMARK",
                        help="the benchmarks the audit reads (default: every shipped one)")
    args = parse_args(parser, {"items": 4, "audit": ["pubmedqa_test_mcq", "mmlu_pro_health"]})
    # measured on this machine: about 0.15 s per item and benchmark for both tools, plus the audit
    # (31 s for the 17,645 rows of the shipped benchmarks)
    announce("evaluate.py",
             10 + 0.15 * args.items * len(args.benchmarks) + 31 * len(args.audit) / len(SHIPPED),
             f"{args.items} items x {len(args.benchmarks)} benchmarks, audit of {len(args.audit)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import torch

    from curate.evaluate.audit import audit
    from curate.evaluate.config import McqaConfig
    from curate.evaluate.lm_eval_export import export_lm_eval
    from curate.evaluate.mcqa import evaluate_mcqa

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = build_tiny_lm(root / "lm", texts=["A B C D Answer:"], hidden_size=256, layers=4, heads=8)
        tasks = [export_lm_eval(b, root / "tasks", limit=args.items) for b in args.benchmarks]
        n = sum(t.items for t in tasks)
        print(f"model: Llama hidden 256, 4 layers, random weights; {n} items "
              f"({', '.join(f'{t.name}: {t.items}' for t in tasks)}); CPU, batch size 8")
        config = McqaConfig(model={"backend": "transformers", "model": str(model), "device": "cpu",
                                   "batch_size": 8}, limit=args.items)
        evaluate_mcqa(args.benchmarks[:1], config.model_copy(update={"limit": 8}), out=root / "warm")
        started = time.perf_counter()
        ours = evaluate_mcqa(args.benchmarks, config, out=root / "ours")
        curate_s = time.perf_counter() - started
        theirs, lm_eval_s = lm_eval_run(model, root / "tasks", [t.name for t in tasks]) \
            if installed("lm_eval", "lm-eval's simple_evaluate", "eval") else (None, 0.0)
    for b, t in zip(args.benchmarks, tasks, strict=False):
        print(f"  {b}: accuracy curate {ours.results['benchmarks'][b]['accuracy']['value']:.4f}"
              + (f", lm-eval {theirs['results'][t.name]['acc,none']:.4f}" if theirs else ""))
    print(f"curate eval mcqa: {n / curate_s:8.1f} questions/s ({curate_s:.2f} s)")
    scoring = ours.results["seconds"]["scoring"]
    print(f"  of which scoring (no reading, metrics, report, plots): {n / scoring:.1f} questions/s "
          f"({scoring:.2f} s)")
    if theirs:
        print(f"lm-eval:          {n / lm_eval_s:8.1f} questions/s ({lm_eval_s:.2f} s)")
        print(f"ratio (curate / lm-eval): {lm_eval_s / curate_s:.2f}x")

    result = audit(args.audit)
    r = result.results
    shipped = "shipped" if args.audit == SHIPPED else "of the shipped"
    print(f"\naudit of {len(args.audit)} {shipped} benchmarks: {r['rows']:,} rows in "
          f"{r['seconds']['total']:.2f} s = {r['rows_per_second']:,.0f} rows/s "
          f"(reading {r['seconds']['reading']:.2f} s)")
    print("| benchmark | rows | flawed | share | fit | conflicting | duplicate | truncated | "
          "repeated stem | shared |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    for name, b in result.benchmarks.items():
        f = b["flaws"]
        fit = "yes" if b["fit"] else "unfit"
        print(f"| {name} | {b['rows']:,} | {b['flawed']} | {b['share']:.2%} | {fit} | "
              f"{len(f['conflicting_answers'])} | {len(f['duplicate_item'])} | "
              f"{len(f['truncated_option'])} | "
              f"{len(b['notes']['repeated_stem'])} | {b['shared_items']} "
              f"({', '.join(k.split(':')[1] for k in b['notes'] if k.startswith('shared_with'))}) |")


def lm_eval_run(model: Path, tasks: Path, names: list[str]) -> tuple[dict, float]:
    """lm-eval's ``simple_evaluate`` on the exported ``names``, after a warm-up: its results and
    the seconds of the timed call."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(pretrained=str(model), device="cpu", batch_size=8)
    manager = TaskManager(include_path=str(tasks))
    lm_eval.simple_evaluate(model=lm, tasks=names[:1], task_manager=manager, limit=8)
    started = time.perf_counter()
    theirs = lm_eval.simple_evaluate(model=lm, tasks=names, task_manager=manager)
    return theirs, time.perf_counter() - started


if __name__ == "__main__":
    main()
    finish(None, [], False)
