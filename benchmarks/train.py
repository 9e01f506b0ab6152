"""`curate train sft` / `curate train dpo` against TRL fed the same data by hand, and the
drift of the mix's loss-token counts from what TRL trains on.

Speed: a small release is built by build-mix from real Dolly rows (text) and Dolly
preference pairs (chosen: the row's response; rejected: the next row's), then 20 SFT
steps and 20 DPO steps run on a small Llama built from a config (random weights,
a byte-level BPE tokenizer trained on Dolly with a ChatML template that marks assistant
content) twice: through curate (`train("sft" | "dpo", ...)` on the release path: format
check, config, record) and through plain TRL (`datasets.load_dataset` on the release's
parquet files, `SFTTrainer` / `DPOTrainer` with the same config). Both are timed from
the data path to the saved model, in one process, alternately; tokens/s counts the
tokens TRL reports as seen (`num_tokens`).

Drift (``--drift RELEASE``, e.g. the demo release from `make demo`): per category of
the release, the loss tokens the old counter gave (tokens of each assistant turn + 1),
what `curate.mixes.tokens.loss_tokens` gives now, and what TRL's SFT preparation masks as
assistant tokens, without truncation and at max_length 256, for the BPE tokenizer above
and tests/tiny_lm.py's word-level one.

    .venv/bin/python benchmarks/train.py [--steps 20] [--drift releases/demo/0.1.0]
    .venv/bin/python benchmarks/train.py --smoke     # 1 step each, drift on the release built here
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import time
from pathlib import Path

from _common import add_clean, add_work, announce, finish, parse_args

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "train")]

SIZE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}
BUILT = "the release built here"
"""``--drift`` without a value: the release this run builds from Dolly."""


def build_release(work: Path) -> Path:
    from train_fixtures import PREFS_ENTRY, write_yaml

    from curate.catalog import resolve_data_root
    from curate.pipeline.build import build_mix
    from curate.pipeline.run import open_run

    data = resolve_data_root()
    rows = [json.loads(line) for line in (data / "general/dolly/dolly_151.jsonl").read_text().splitlines()]
    pairs = [{"prompt": a["instruction"], "chosen": a["response"], "rejected": b["response"]}
             for a, b in zip(rows, rows[1:], strict=False)]
    (work / "prefs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    write_yaml(work / "catalog/sources/dolly_prefs.yaml", PREFS_ENTRY.format(path=work / "prefs.jsonl"))
    recipe = write_yaml(work / "bench.yaml", 'name: train-bench\nversion: "1"\n'
                        "sources: [dolly, dolly_prefs]\nstages:\n  exact_dedup: {}\n")
    run = open_run(recipe, catalog_dirs=[work / "catalog"], runs_dir=work / "runs")
    return build_mix(run, releases_dir=work / "releases").release.path


def build_model(work: Path) -> Path:
    import torch
    from train_fixtures import build_bpe_lm, dolly_texts
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = build_bpe_lm(work / "model", dolly_texts(), vocab_size=4000)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), num_key_value_heads=4,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                                 **SIZE)).save_pretrained(folder)
    return folder


def settings(steps: int) -> dict[str, object]:
    return {"max_steps": steps, "per_device_train_batch_size": 4, "max_length": 128, "logging_steps": 1,
            "save_strategy": "no", "report_to": "none", "bf16": False, "seed": 0}


def by_curate(task: str, release: Path, model: Path, steps: int, out: Path) -> tuple[float, int]:
    from curate.config import ModelSpec
    from curate.train.run import Options, train

    overrides = [f"{k}={v}" for k, v in settings(steps).items()]
    start = time.perf_counter()
    result = train(task, release, model=ModelSpec(model=str(model)), output_dir=out,
                   options=Options(overrides=overrides))
    return time.perf_counter() - start, _tokens(result.trainer)


def by_trl(task: str, release: Path, model: Path, steps: int, out: Path) -> tuple[float, int]:
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    start = time.perf_counter()
    part = "text" if task == "sft" else "preference"
    files = str(release / "data" / part / "*.parquet")
    data = datasets.load_dataset("parquet", data_files=files, split="train")
    tokenizer = AutoTokenizer.from_pretrained(model)
    lm = AutoModelForCausalLM.from_pretrained(model)
    if task == "sft":
        trainer = SFTTrainer(model=lm, processing_class=tokenizer, train_dataset=data,
                             args=SFTConfig(output_dir=str(out), assistant_only_loss=True, **settings(steps)))
    else:
        trainer = DPOTrainer(model=lm, ref_model=copy.deepcopy(lm), processing_class=tokenizer,
                             train_dataset=data,
                             args=DPOConfig(output_dir=str(out), **settings(steps)))
    trainer.train()
    trainer.save_model(str(out))
    return time.perf_counter() - start, _tokens(trainer)


def _tokens(trainer: object) -> int:
    history = trainer.state.log_history  # type: ignore[attr-defined]
    return int(max(h.get("num_tokens", 0) for h in history))


def speed(steps: int, repeats: int, work: Path) -> Path:
    """Time SFT and DPO through curate and through TRL by hand; return the release trained on."""
    release, model = build_release(work), build_model(work)
    print(f"release {release} ({sum(1 for _ in (release / 'data').rglob('*.parquet'))} data files); "
          f"model: Llama {SIZE}, BPE vocab 4000; {steps} steps, batch 4, max_length 128; "
          f"best of {repeats}, alternating")
    for task in ("sft", "dpo"):
        best: dict[str, tuple[float, int]] = {}
        for i in range(repeats):
            for name, run in (("curate", by_curate), ("trl", by_trl)):
                seconds, tokens = run(task, release, model, steps, work / f"out-{task}-{name}-{i}")
                if name not in best or seconds < best[name][0]:
                    best[name] = (seconds, tokens)
        (c_s, c_t), (t_s, t_t) = best["curate"], best["trl"]
        print(f"{task}: curate {c_t / c_s:,.0f} tokens/s ({c_s:.2f} s, {c_t:,} tokens); "
              f"TRL by hand {t_t / t_s:,.0f} tokens/s ({t_s:.2f} s, {t_t:,} tokens); "
              f"ratio curate/TRL {c_t / c_s / (t_t / t_s):.3f}")
    return release


def drift(release: Path, work: Path) -> None:
    import polars as pl
    from tiny_lm import build_tiny_lm
    from train_fixtures import build_bpe_lm, dolly_texts
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from curate.mixes.tokens import loss_tokens
    from curate.read.releases import load_release

    parts = load_release(release)
    texts = [m["content"] for name in ("text", "image_text") if name in parts
             for row in parts[name]["messages"] for m in row]
    tokenizers = {"BPE + ChatML": build_bpe_lm(work / "drift-bpe", dolly_texts() + texts[:4000]),
                  "word-level (tests/tiny_lm.py)": build_tiny_lm(work / "drift-word", texts=texts)}
    manifest = json.loads((release / "manifest.json").read_text())
    print(f"release {release}: counting in its manifest: {manifest['budget']['counting']}")
    for label, path in tokenizers.items():
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path)
        for max_length in (None, 256):
            rows = []
            for name in ("text", "image_text"):
                if name not in parts:
                    continue
                data = parts[name].remove_columns([c for c in ("images",) if c in parts[name].column_names])
                trainer = SFTTrainer(model=model, processing_class=tokenizer, train_dataset=data,
                                     args=SFTConfig(output_dir=str(work / "unused"), bf16=False,
                                                    report_to="none", assistant_only_loss=True,
                                                    max_length=max_length, shuffle_dataset=False))
                trl = {r["id"]: sum(x != -100 for x in r["labels"]) for r in trainer.train_dataset}
                frame = pl.from_arrow(data.data.table).with_columns(chosen=None, rejected=None)
                new = loss_tokens(frame, str(path), max_length=max_length)
                answers = [[m["content"] for m in row if m["role"] == "assistant"]
                           for row in frame["messages"]]
                old = [sum(len(tokenizer(a, add_special_tokens=False)["input_ids"]) + 1 for a in row)
                       for row in answers]
                rows.append(pl.DataFrame({"category": frame["category"], "id": frame["id"], "old": old,
                                          "new": new}).with_columns(
                    trl=pl.col("id").replace_strict(trl, default=0, return_dtype=pl.Int64)))
            table = (pl.concat(rows).group_by("category").agg(pl.col("old", "new", "trl").sum())
                     .sort("category"))
            print(f"\n{label}, max_length {max_length}:")
            for category, old, new, trl in table.iter_rows():
                print(f"  {category:10s} TRL {trl:>9,}  old counter {old:>9,} ({(old - trl) / trl:+.2%})  "
                      f"now {new:>9,} ({(new - trl) / trl:+.2%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--drift", nargs="?", const=BUILT, default=None, metavar="RELEASE",
                        help="A release to measure loss-token drift on; without a value, the small "
                        "release this run builds from Dolly.")
    parser.add_argument("--no-speed", action="store_true", help="skip the SFT/DPO timing")
    add_work(parser, "train", emptied=True)
    add_clean(parser)
    args = parse_args(parser, {"steps": 1, "drift": BUILT})
    # measured on this machine: about 3 s per step and task, for both sides, plus the build
    announce("train.py", 30 + (0 if args.no_speed else 2 * 2 * 3 * args.steps * args.repeats)
             + (60 if args.drift else 0), f"{args.steps} steps x {args.repeats} repeat(s)"
             + (f", drift on {args.drift}" if args.drift else ""))
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    release = None if args.no_speed else speed(args.steps, args.repeats, args.work)
    if args.drift == BUILT:
        drift(release or build_release(args.work), args.work)
    elif args.drift is not None:
        drift(Path(args.drift), args.work)
    finish(None, [args.work], args.clean)


if __name__ == "__main__":
    main()
