"""Benchmarks that cannot rot: every script in benchmarks/ runs at its ``--smoke`` size in a
subprocess (the real code path and its peer where the peer is installed), exits 0, prints the
ratio or table it exists for, and writes nothing into the repository.

A script without an entry in ``SMOKE`` fails here: a new benchmark comes with its smoke run.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))


@dataclass(frozen=True)
class Expect:
    """A line the smoke run prints (a regular expression); with ``peer``, only when that module
    is installed, else the script's note that the peer was skipped."""

    pattern: str
    peer: str | None = None


ARGUMENTS = {"run_all": ("--smoke", "--only", "ingest")}
"""The smoke command's arguments where they are not ``--smoke`` alone (make bench's runner: one
script, to a temporary BENCHMARKS.md)."""

SMOKE: dict[str, tuple[Expect, ...]] = {
    "build_mix": (
        Expect(r"curate same scope \(exact dedup, mix, release\): +[\d.]+s"),
        Expect(r"ratio datasets \(token-weighted\) / curate same scope: time [\d.]+x; largest share error"),
    ),
    "decontam": (
        Expect(r"benchmark +form +tiers 1 ngram +tiers 1-3 lexical +13-gram +ahead"),
        Expect(r"false positives on clean rows: \d+ of 100 .*; 13-gram baseline \d+"),
    ),
    "engines": (
        Expect(r"stages: exact_dedup [\d.]+ s \([\d,]+ rows/s\), near_dedup [\d.]+ s .*, decontam [\d.]+ s"),
        Expect(r"ratio ray 2 / local: time [\d.]+x, peak memory [\d.]+x", peer="ray"),
        Expect(r"releases: identical across local"),
    ),
    "evaluate": (
        Expect(r"curate eval mcqa: +[\d.]+ questions/s"),
        Expect(r"ratio \(curate / lm-eval\): [\d.]+x", peer="lm_eval"),
        Expect(r"\| pubmedqa_test_mcq \| 500 \| \d+ \|"),
    ),
    "gpu_smoke": (
        Expect(r"smoke: the dry run, everything that runs without a GPU"),
        Expect(r"dry run: recipe valid; would run quality \(vllm, in_turn\) then synth cot \(vllm\) "
               r"on 5 rows"),
    ),
    "guard": (
        Expect(r"planted fifth_word +[\d.]+ +[\d.]+ +[\d.]+"),
        Expect(r"threshold +verbatim +shuffled +paraphrased +fifth_word +queries hit +records hit"),
        Expect(r"MedPrompt retrieval, k 5, 12 test questions: planted copies returned 0"),
    ),
    "ingest": (
        Expect(r"curate runs at [\d.]+x the speed of datasets\n"),
        Expect(r"curate runs at [\d.]+x the speed of datasets\+same work"),
    ),
    "minhash": (
        Expect(r"vs datasketch matched +sig +[\d.]+x +e2e +[\d.]+x", peer="datasketch"),
        Expect(r"vs DataTrove matched +read\+sig +[\d.]+x +e2e +[\d.]+x", peer="datatrove"),
        Expect(r"curate pipeline +final( +[\d.]+){6}"),
        Expect(r"candidate recall >= 0\.98 at true J >= 0\.8: [\d.]+"),
    ),
    "multimodal": (
        Expect(r'"wrong type \(\d+: \d+ yes/no<-term, \d+ open<-yes/no\)"'),
        Expect(r'"duplicate images \(10 re-encoded \+ resized\)"'),
        Expect(r"stage / peer speed: [\d.]+x"),
    ),
    "passages": (
        Expect(r"answer recall@5 \(the question's own answer among the 5 passages, exact\): [\d.]+"),
        Expect(r"curate numpy exact +[\d.]+ +[\d.]+ +[\d,]+ +1\.000 +1\.000"),
        Expect(r"curate faiss HNSW ef 64( +[\d.,]+){5}", peer="faiss"),
    ),
    "quality": (
        Expect(r"ratio DEITA \(its faster setting\) / curate [\d.]+x"),
        Expect(r"ratio curate batch 2 / DEITA path: [\d.]+x"),
        Expect(r"\(c\) MiniLM embedding on the CPU, 16 MedQuAD texts .*: [\d,]+ texts/s"),
    ),
    "rag": (
        Expect(r"ratio curate/peer: [\d.]+x"),
        Expect(r"curate numpy exact +[\d.]+ +- +[\d.]+ +[\d,]+ +1\.000"),
        Expect(r"faiss IndexFlatIP alone( +[\d.,]+){5}", peer="faiss"),
    ),
    "run_all": (
        Expect(r"== python benchmarks/ingest\.py --smoke"),
        Expect(r"curate runs at [\d.]+x the speed of datasets\+same work"),
        Expect(r"wrote .*BENCHMARKS\.md \(1 scripts\)"),
    ),
    "synth": (
        Expect(r"curate openai backend, concurrency 16: +[\d.]+ requests/s"),
        Expect(r"ratio curate / SDK at concurrency 16: [\d.]+x", peer="openai"),
        Expect(r"CoT run, 4 MedMCQA dev rows, gold withheld, .* completion tokens per source row"),
    ),
    "train": (
        Expect(r"sft: curate [\d,]+ tokens/s .* ratio curate/TRL [\d.]+"),
        Expect(r"dpo: curate [\d,]+ tokens/s .* ratio curate/TRL [\d.]+"),
        Expect(r"BPE \+ ChatML, max_length 256:\n +\w+ +TRL +[\d,]+ +old counter"),
    ),
}


def repository_files() -> set[str]:
    """What git sees in the repository, ignored files included (bytecode caches left out); empty
    outside a git checkout."""
    if not (ROOT / ".git").exists():
        return set()
    out = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return {line for line in out.splitlines() if "__pycache__" not in line}


def test_every_smoke_entry_names_a_script():
    assert sorted(SMOKE) == SCRIPTS


@pytest.fixture
def short_folder():
    """A folder with a short path for Ray's sockets (107 bytes at most; tmp_path is longer)."""
    folder = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_script_runs_at_its_smoke_size(script, tmp_path, short_folder):
    assert script in SMOKE, (f"benchmarks/{script}.py has no smoke entry: give it --smoke (see "
                             "benchmarks/_common.py parse_args) and add it to SMOKE here")
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "PYTHONPATH": path,
           "TMPDIR": str(tmp_path), "RAY_TMPDIR": str(short_folder),
           "CURATE_CACHE_DIR": str(tmp_path / "cache"), "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    before = repository_files()
    proc = subprocess.run([sys.executable, str(BENCHMARKS / f"{script}.py"),
                           *ARGUMENTS.get(script, ("--smoke",))], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    shown = f"stdout:\n{proc.stdout}\nstderr (last 3,000 characters):\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, shown
    for expect in SMOKE[script]:
        if expect.peer is None or importlib.util.find_spec(expect.peer) is not None:
            assert re.search(expect.pattern, proc.stdout), f"no line matches {expect.pattern!r}\n{shown}"
        else:
            assert "peer skipped: " in proc.stdout and f"needs `{expect.peer}`" in proc.stdout, shown
    assert repository_files() == before, f"the smoke run wrote into the repository\n{shown}"
    # a script's --smoke work folder is <script>-smoke-*, removed at its end (run_all's
    # bench-smoke-*/BENCHMARKS.md is its output, kept)
    left = [p.name for p in tmp_path.iterdir()
            if "-smoke-" in p.name and not p.name.startswith("bench-smoke-")]
    assert not left, f"the smoke run left its temporary work folder behind: {left}"
