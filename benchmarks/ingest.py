"""Ingestion speed and memory: curate vs `datasets.load_dataset("json")`, in one run.

MedQuAD (16,407 real QA pairs) is replicated to the requested row counts; each tool
reads the same JSON Lines file in a fresh subprocess, so peak RSS is each tool's own.
curate does more work per row (mapping to the record schema, content ids, validation,
zstd parquet shards) than `load_dataset`, which parses and writes its Arrow cache; the
third line is datasets doing that same work (a batched `map` that builds the
conversation and the id).

    .venv/bin/python benchmarks/ingest.py --rows 100000 1000000
    .venv/bin/python benchmarks/ingest.py --smoke     # 2,000 rows, seconds (the test suite's size)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import add_clean, add_work, announce, finish, parse_args

HERE = Path(__file__).resolve().parent


def replicate(source: Path, rows: int, work: Path) -> Path:
    """A JSON Lines file of ``rows`` rows in ``work``: the source's lines repeated, cut to size."""
    target = work / f"medquad_{rows}.jsonl"
    if target.exists():
        return target
    work.mkdir(parents=True, exist_ok=True)
    lines = source.read_bytes().splitlines(keepends=True)
    with target.open("wb") as out:
        written = 0
        while written < rows:
            chunk = lines[: rows - written]
            out.writelines(chunk)
            written += len(chunk)
    return target


def run_curate(path: Path, rows: int, work: Path) -> dict:
    from curate.catalog import Catalog
    from curate.ingest import ingest_source
    from curate.ingest.runner import DEFAULT_BATCH_ROWS
    from curate.store import RunStore

    entry = Catalog.load().source("medquad")
    source = entry.model_copy(update={"location": entry.location.model_copy(update={"path": str(path)})})
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        started = time.perf_counter()
        result = ingest_source(source, RunStore(Path(tmp)).source("medquad"), data_root=work,
                               batch_rows=int(os.environ.get("BATCH", DEFAULT_BATCH_ROWS)))
        seconds = time.perf_counter() - started
    assert result.error is None and result.records == rows, result
    return {"seconds": seconds, "rows": result.records}


def run_datasets(path: Path, rows: int, work: Path) -> dict:
    import datasets

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        started = time.perf_counter()
        dataset = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=tmp)
        seconds = time.perf_counter() - started
        count = dataset.num_rows
    assert count == rows
    return {"seconds": seconds, "rows": count}


def run_datasets_same_work(path: Path, rows: int, work: Path) -> dict:
    """What a datasets user writes to get what curate gives: load, then a batched map that
    builds the conversation and the content id (curate's own plain-Python ``record_id``)."""
    import datasets

    from curate.records import record_id

    def to_records(batch: dict) -> dict:
        messages = [[{"role": "user", "content": q}, {"role": "assistant", "content": a}]
                    for q, a in zip(batch["question"], batch["answer"])]
        ids = [record_id({"kind": "chat", "messages": m}) for m in messages]
        return {"id": ids, "messages": messages}

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        started = time.perf_counter()
        dataset = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=tmp)
        dataset = dataset.map(to_records, batched=True, batch_size=10_000)
        seconds = time.perf_counter() - started
        count = dataset.num_rows
    assert count == rows
    return {"seconds": seconds, "rows": count}


def measure(tool: str, path: Path, rows: int, work: Path) -> dict:
    """Run one tool in a fresh interpreter; return its time and peak RSS."""
    out = subprocess.run(
        [sys.executable, __file__, "--worker", tool, "--file", str(path), "--rows", str(rows),
         "--work", str(work)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--data-root", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--worker", choices=list(TOOLS), help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    add_work(parser, "ingest")
    add_clean(parser)
    args = parse_args(parser, {"rows": [2000]})

    if args.worker:
        result = TOOLS[args.worker](args.file, args.rows[0], args.work)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return

    source = args.data_root / "medical/medquad/medquad_answered.jsonl"
    # measured on this machine: about 60 microseconds per row for the three tools together
    announce("ingest.py", 5 + 60e-6 * sum(args.rows), "rows " + ", ".join(f"{n:,}" for n in args.rows))
    print(f"{'rows':>10} {'tool':>18} {'seconds':>8} {'rows/s':>10} {'peak RSS':>9}")
    rss: dict[int, float] = {}
    for rows in args.rows:
        path = replicate(source, rows, args.work)
        results = {tool: measure(tool, path, rows, args.work) for tool in TOOLS}
        for tool, r in results.items():
            print(f"{rows:>10,} {tool:>18} {r['seconds']:>8.2f} {rows / r['seconds']:>10,.0f} "
                  f"{r['peak_rss_mb']:>7.0f}MB")
        for peer in ("datasets", "datasets+same work"):
            speed = results[peer]["seconds"] / results["curate"]["seconds"]
            print(f"{'':>10} curate runs at {speed:.2f}x the speed of {peer}")
        rss[rows] = results["curate"]["peak_rss_mb"]
    if len(rss) > 1:
        small, large = min(rss), max(rss)
        print(f"curate peak RSS grows {rss[large] / rss[small]:.2f}x for {large / small:.0f}x the rows")
    finish(None, [args.work / f"medquad_{rows}.jsonl" for rows in args.rows], args.clean)


TOOLS = {"datasets": run_datasets, "datasets+same work": run_datasets_same_work,
         "curate": run_curate}

if __name__ == "__main__":
    main()
