"""The README runs as written (issue 16, item 5).

Every shell command in the README's code blocks (```bash / ```sh / ```shell / ```console
blocks: every line; unlabelled blocks: the lines that start with `curate `) is extracted
and CLASSIFIED in ``TOUR`` below, then run in order in a temporary copy of the demo (the
session's demo build, ``conftest.demo_build``; network-free):

- ``RUN``: as written (``curate ...`` in-process through click, anything else with bash);
- ``HELP``: the command with ``--help`` appended, so its command path and every option it
  names must exist (for commands that need GPUs, hub models or a served model);
- ``DRY``: the command with ``--dry-run`` appended (the hub);
- ``JSON``: ``curate ... --json | jq ...``: the curate part runs and its stdout must be
  one JSON document (jq itself may be missing);
- ``SKIP``: not run, with the reason.

A README command that no row of ``TOUR`` matches fails the test, saying how to add one.
"""

from __future__ import annotations

import csv
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import DATA, DemoBuild
from newcomer import newcomer_rows, write_jsonl

from curate.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

RUN, HELP, DRY, JSON, SKIP = "run", "help", "dry-run", "json", "skip"

TOUR: list[tuple[str, str, str]] = [
    # (regex that must match the start of the command, how it runs, why)
    (r"make (demo|test)\b", SKIP, "the suite is `make test`; its demo build is conftest.demo_build"),
    (r"curate catalog (ls|validate)\b", RUN, "the shipped catalogs"),
    (r"curate catalog add my_(dolly raw\.csv|ultrachat --hf) ", RUN,
     "writes into the copied catalogs (a hub entry needs no download)"),
    (r"curate build-mix catalogs/mixes/demo\.yaml$", RUN, "resumes the copied demo run: all reused"),
    (r"curate build-mix catalogs/mixes/demo\.yaml --engine ray", HELP,
     "a Ray cluster; tests/engine/test_ray.py builds the demo on one"),
    (r"sbatch ", SKIP, "a Slurm cluster (run by hand on a single-node slurm-wlm one)"),
    (r"ACCELERATE_CONFIG=\S+ sbatch .*slurm/train\.sbatch ", SKIP,
     "GPU nodes under Slurm; tests/train/test_train_launch.py checks the launches it builds"),
    (r"accelerate launch .* -m curate\.cli +train (sft|dpo) ", SKIP,
     "GPUs and a 72B model; tests/train/test_train_launch.py runs two CPU processes"),
    (r"curate (inspect|release ls)\b.* --json \| jq ", JSON, "jq may be missing; the JSON is parsed here"),
    (r"curate inspect runs/demo/0\.1\.0$", RUN, "the copied demo run"),
    (r"curate (clean|dedup|decontaminate|diversify) (my_sft|my|clean|dedup|raw)\.(jsonl|csv) ", RUN,
     "on a newcomer's file (tests/newcomer.py) and Dolly rows as raw.csv"),
    (r"curate score ", HELP, "DEITA's two 13B scorers are not here"),
    (r"curate check-(images|answers) data\.jsonl ", RUN, "on VQA-RAD rows (data.jsonl)"),
    (r"curate check-relevance ", HELP, "needs a CLIP model folder (./my-clip)"),
    (r"curate check-boxes ", HELP, "`my_boxes` is the reader's own catalog entry"),
    (r"curate release (ls|show|export|verify)\b", RUN, "the copied demo release"),
    (r"sed -e .* catalogs/mixes/demo\.yaml > demo-0\.2\.0\.yaml$", RUN, "a second version of the demo"),
    (r"curate build-mix demo-0\.2\.0\.yaml --run-id 0\.1\.0$", RUN, "reuses the demo run's stages"),
    (r"curate release diff releases/demo/0\.1\.0 releases/demo/0\.2\.0", RUN, "the two versions"),
    (r"curate release push ", DRY, "no hub here"),
    (r"curate safety pairs ", HELP, "vLLM target, reference and judge models"),
    (r"curate build-mix safety-dpo\.yaml ", HELP, "needs the pairs `curate safety pairs` makes"),
    (r"curate eval (safety|mcqa) ", HELP, "a model to evaluate and a judge"),
    (r"curate train (sft|dpo|merge) ", HELP, "hub models (and GPUs)"),
    (r"curate plan releases/demo/0\.1\.0 --model 8B ", RUN, "the copied demo release; a size needs no model"),
    (r"curate rag cot ", HELP, "a served model writes the chains of thought"),
    (r"curate rag (index|search|check) (releases/demo/0\.1\.0|index/demo)\b", RUN, "the copied demo release"),
    (r"(\.venv/bin/)?pip install ", SKIP, "installs packages"),
    (r"(CURATE_\w+=\S+ )*jupyter lab ", SKIP, "opens a browser; tests/notebooks runs both notebooks"),
    (r"python benchmarks/gpu_smoke\.py", SKIP, "a GPU and vLLM; tests/test_gpu_smoke.py runs its --dry-run"),
    (r"\.venv/bin/python benchmarks/", SKIP, "benchmarks run for minutes; `make bench` runs them"),
    (r"make bench\b", SKIP, "benchmarks run for minutes"),
]

HOW_TO = ("add a row to TOUR in tests/test_readme_tour.py: (r\"<regex for the start of the command>\", "
          "RUN | HELP | DRY | JSON | SKIP, \"why\")")


def readme_commands(text: str) -> list[str]:
    """The README's shell commands, in order: continuation lines joined, `&&` chains split."""
    found = []
    for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        lang, body = match.group(1), match.group(2)
        if lang not in ("", "bash", "sh", "shell", "console"):
            continue
        for line in re.sub(r"\\\n\s*", " ", body).splitlines():
            line = line.strip()
            if not line or line.startswith("#") or (lang == "" and not line.startswith("curate ")):
                continue
            line = re.sub(r"\s+#(\s.*)?$", "", line)  # a trailing comment
            found += [part.strip() for part in line.split(" && ")]
    return found


def classify(command: str) -> tuple[str, str]:
    for pattern, how, why in TOUR:
        if re.match(pattern, command):
            return how, why
    raise AssertionError(f"README command not classified: `{command}`; {HOW_TO}")


def test_every_readme_command_is_classified():
    commands = readme_commands(README.read_text(encoding="utf-8"))
    assert len(commands) > 30
    unclassified = []
    for command in commands:
        try:
            classify(command)
        except AssertionError:
            unclassified.append(command)
    assert not unclassified, "README commands not classified:\n  " + "\n  ".join(unclassified) + f"\n{HOW_TO}"


def test_an_unclassified_command_says_how_to_classify_it():
    with pytest.raises(AssertionError, match=r"not classified: `curate frobnicate x`; add a row to TOUR"):
        classify("curate frobnicate x")


def _inputs(folder: Path) -> None:
    """The files the README's one-file examples name, made from the shared data."""
    rows, _ = newcomer_rows()
    write_jsonl(folder / "my_sft.jsonl", rows)
    write_jsonl(folder / "my.jsonl", rows)
    dolly = [json.loads(line) for line in (DATA / "general/dolly/dolly_151.jsonl").read_text().splitlines()]
    with (folder / "raw.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(dolly[0]))
        writer.writeheader()
        writer.writerows(dolly[:60])
    vqa = DATA / "multimodal/vqa_rad"
    lines = [json.loads(line) for line in (vqa / "vqa_rad_pairs.jsonl").read_text().splitlines()[:24]]
    write_jsonl(folder / "data.jsonl", [r | {"image": str(vqa / r["image"])} for r in lines])


def _copy(demo_build: DemoBuild, folder: Path) -> None:
    shutil.copytree(ROOT / "catalogs", folder / "catalogs")
    shutil.copytree(demo_build.runs, folder / "runs")
    shutil.copytree(demo_build.release.parents[1], folder / "releases")


def _curate(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, args, env={"COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.output


@pytest.mark.slow
def test_the_readme_tour_runs_as_written(demo_build, tmp_path, monkeypatch):
    _copy(demo_build, tmp_path)
    _inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    ran: dict[str, int] = {}
    for command in readme_commands(README.read_text(encoding="utf-8")):
        how, why = classify(command)
        ran[how] = ran.get(how, 0) + 1
        if how == SKIP:
            continue
        if not command.startswith("curate "):
            assert how == RUN, f"`{command}`: only curate commands take {how}"
            done = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True)
            assert done.returncode == 0, f"`{command}` failed: {done.stderr}"
            continue
        args = shlex.split(command.split(" | ")[0], comments=True)[1:]
        if how == HELP:
            args.append("--help")
        elif how == DRY:
            args.append("--dry-run")
        code, stdout, output = _curate(args)
        assert code == 0, f"README command `{command}` ({how}: {why}) exited {code}:\n{output}"
        if how == JSON:
            json.loads(stdout)
    assert ran[RUN] >= 15 and ran[HELP] >= 8, ran
    # What the tour promises is there: the chain's final file, the second release.
    assert (tmp_path / "final.jsonl").read_text().count("\n") > 20
    assert (tmp_path / "releases/demo/0.2.0/manifest.json").exists()
