"""Seeded fault injection: `build-mix` killed with SIGKILL at chosen points resumes to the
byte-identical release, and a planted API key reaches no file a run writes.

A small recipe (250 MedQuAD rows, 151 Dolly rows, an MMLU anatomy benchmark; clean,
exact_dedup, near_dedup, decontam; offline chain-of-thought synthesis of 60 rows; a
rows budget) is built once without a fault, logging every event where the build changes
what is on disk (``fault_driver.py``: each ``os.replace`` before and after, each polars
parquet write of the release, each batch of generations). Kill points are drawn from
that log with a fixed seed, at least two in every phase (each source's ingestion, each
benchmark, each stage, synthesis, release writing). For each point a build starts from
nothing, is killed there, and a second build resumes it; the resumed release must equal
the uninterrupted one file by file, byte by byte.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from curate.catalog import resolve_data_root

DATA = resolve_data_root()
DRIVER = Path(__file__).with_name("fault_driver.py")
PROJECT = Path(__file__).resolve().parents[2]
SEED = 20
MIN_KILLS = 24
PLANTED = {
    "OPENAI_API_KEY": "sk-planted-1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d",
    "HF_TOKEN": "hf_plantedQwErTyUiOpAsDfGhJkLzXcVbNm",
    "ANTHROPIC_API_KEY": "sk-ant-planted-0f9e8d7c6b5a",
}

SOURCES = {
    "fi_medquad": """
name: fi_medquad
version: 1
license: CC-BY-4.0
domain: medical
task: qa
location: {path: medquad.jsonl}
mapping: {kind: chat, question: question, answer: answer, meta: [id, source]}
""",
    "fi_dolly": """
name: fi_dolly
version: 1
license: CC-BY-SA-3.0
domain: general
task: instruction
location: {path: dolly.jsonl}
mapping: {kind: chat, question: instruction, context: context, answer: response}
""",
}
BENCHMARK = """
name: fi_anatomy
version: 1
license: MIT
domain: medical
task: mcqa
location: {path: anatomy_test.csv}
mapping: {kind: mcqa, question: question, options: [choice0, choice1, choice2, choice3],
          answer: answer, answer_format: index}
"""
RECIPE = """
name: fault
version: "1.0.0"
seed: 3
sources: [fi_medquad, fi_dolly]
benchmarks: [fi_anatomy]
stages:
  clean: {}
  exact_dedup: {}
  near_dedup: {}
  decontam: {}
synth:
  cot:
    generator: {backend: offline}
    sources: [fi_medquad]
    max_rows: 60
    batch_size: 16
mix:
  targets: {medical: 0.6, synthetic: 0.2, general: 0.2}
  unit: rows
"""
STAGES = ("clean", "exact_dedup", "near_dedup", "decontam")


def _project(tmp: Path) -> Path:
    """Data root, catalog folder and recipe of the campaign, under ``tmp``."""
    data = tmp / "data"
    data.mkdir(parents=True)
    lines = (DATA / "medical/medquad/medquad_sample_1500.jsonl").read_bytes().splitlines(keepends=True)
    (data / "medquad.jsonl").write_bytes(b"".join(lines[:250]))
    shutil.copy(DATA / "general/dolly/dolly_151.jsonl", data / "dolly.jsonl")
    shutil.copy(DATA / "benchmarks/mmlu_medical/csv/anatomy_test.csv", data / "anatomy_test.csv")
    for name, text in SOURCES.items():
        (tmp / "catalog/sources").mkdir(parents=True, exist_ok=True)
        (tmp / f"catalog/sources/{name}.yaml").write_text(text.lstrip())
    (tmp / "catalog/benchmarks").mkdir(parents=True, exist_ok=True)
    (tmp / "catalog/benchmarks/fi_anatomy.yaml").write_text(BENCHMARK.lstrip())
    (tmp / "recipe.yaml").write_text(RECIPE.lstrip())
    return tmp


def _build(project: Path, work: Path, *, kill_at: int = 0, log: Path | None = None
           ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **PLANTED, "PYTHONPATH": str(PROJECT), "CURATE_FAULT_AT": str(kill_at),
           "NUMBA_CACHE_DIR": str(project / "numba-cache"), "HF_HUB_OFFLINE": "1"}
    if log is not None:
        env["CURATE_FAULT_LOG"] = str(log)
    command = [sys.executable, str(DRIVER), "--", "build-mix", str(project / "recipe.yaml"),
               "--catalog", str(project / "catalog"), "--data-root", str(project / "data"),
               "--runs", str(work / "runs"), "--releases", str(work / "releases"), "--batch-rows", "64"]
    return subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=600)


def _phase(kind: str, path: str) -> str:
    """Which part of the build an event belongs to."""
    if kind == "generate" or "/synth_cot/" in path or "/_cache/" in path:
        return "synthesis"
    if "/releases/" in path or kind == "parquet":
        return "release"
    for folder in ("ingest", "benchmarks"):
        if f"/{folder}/" in path:
            return f"{folder}:{path.split(f'/{folder}/')[1].split('/')[0]}"
    for stage in STAGES:
        if f"/{stage}/" in path:
            return f"stage:{stage}"
    return "run"


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _planted_hits(folder: Path) -> list[str]:
    secrets = [v.encode() for v in PLANTED.values()]
    return [str(p) for p in folder.rglob("*") if p.is_file()
            and any(s in p.read_bytes() for s in secrets)]


@pytest.mark.slow
def test_killed_builds_resume_to_the_identical_release(tmp_path):
    project = _project(tmp_path / "project")
    reference = tmp_path / "reference"
    reference.mkdir()
    log = tmp_path / "events.log"
    done = _build(project, reference, log=log)
    assert done.returncode == 0, done.stderr[-2000:]
    release = reference / "releases/fault/1.0.0"
    expected = _files(release)
    assert {"manifest.json", "README.md", "removed.parquet"} <= set(expected)
    assert any(name.startswith("data/text/") for name in expected)

    events = [line.split("\t") for line in log.read_text().splitlines()]
    by_phase: dict[str, list[int]] = defaultdict(list)
    for number, kind, path in events:
        by_phase[_phase(kind, path)].append(int(number))
    wanted = {"ingest:fi_medquad", "ingest:fi_dolly", "benchmarks:fi_anatomy", "synthesis",
              "release", *(f"stage:{s}" for s in STAGES)}
    assert wanted <= set(by_phase), sorted(by_phase)
    rng = random.Random(SEED)
    points = {n for phase in sorted(by_phase)
              for n in rng.sample(by_phase[phase], min(2, len(by_phase[phase])))}
    rest = sorted({int(e[0]) for e in events} - points)
    points |= set(rng.sample(rest, max(0, MIN_KILLS - len(points))))
    phase_of = {int(n): _phase(k, p) for n, k, p in events}

    identical, leftovers, tried = 0, 0, []
    for point in sorted(points):
        work = tmp_path / f"kill-{point:04d}"
        work.mkdir()
        killed = _build(project, work, kill_at=point)
        assert killed.returncode == -signal.SIGKILL, (point, killed.returncode, killed.stderr[-2000:])
        resumed = _build(project, work)
        assert resumed.returncode == 0, (point, resumed.stderr[-2000:])
        got = _files(work / "releases/fault/1.0.0")
        assert set(got) == set(expected), (point, phase_of[point], sorted(set(got) ^ set(expected)))
        differ = [name for name in expected if got[name] != expected[name]]
        assert not differ, (point, phase_of[point], differ)
        identical += 1
        leftovers += sum(1 for p in (work / "releases/fault").iterdir()
                         if p.name.startswith(".") and p.is_dir())  # not the lock file
        tried.append(f"{point}:{phase_of[point]}")
        assert not _planted_hits(work), point
        for output in (killed.stdout, killed.stderr, resumed.stdout, resumed.stderr):
            assert not any(v in output for v in PLANTED.values())
    assert not _planted_hits(reference)
    assert not _planted_hits(project)
    phases = sorted({phase_of[p] for p in points})
    print(f"\nfault injection (seed {SEED}): {len(points)} kill points tried over {len(phases)} phases "
          f"({', '.join(phases)}); {identical} resumed releases byte-identical to the uninterrupted one; "
          f"{len(events)} fault points in a whole build; {leftovers} temporary release folders left "
          f"by killed builds; planted API keys found in 0 of the files the runs wrote")
    print("kill points:", " ".join(tried))
    assert identical == len(points) >= MIN_KILLS
    assert leftovers == 0  # the next build removes what a killed one left (release.py)
