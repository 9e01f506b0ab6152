"""The README's "Extending curate" examples run as written: a stage through the real engine,
a generation backend through the backend interface (a train method: tests/train)."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
from conftest import ingest_into

from curate.engine.runner import run_stages
from curate.store import RunStore

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_code(title: str) -> str:
    """The first python block under ``### title`` of the README's "Extending curate"."""
    section = README.read_text().split("## Extending curate", 1)[1].split("\n## ", 1)[0]
    part = section.split(f"### {title}\n", 1)[1].split("\n### ", 1)[0]
    return re.search(r"```python\n(.*?)```", part, re.S).group(1)


def readme_namespace(title: str) -> dict:
    namespace: dict = {}
    exec(compile(readme_code(title), "README.md", "exec", dont_inherit=True), namespace)
    return namespace


def test_the_toy_stage_of_the_readme_runs_and_decides(catalog, data_root, tmp_path):
    toy = readme_namespace("A stage")
    ingest_into(catalog.source("dolly"), tmp_path / "run", data_root)
    store = RunStore(tmp_path / "run")
    strict = toy["Shouting"](toy["ShoutingConfig"](max_upper=0.0))
    result = run_stages([strict], store, ["dolly"], input_fingerprint="readme")[0]
    decisions = pl.read_parquet(store.stage("shouting").decisions)
    # Every answer with one capital letter is flagged at 0; none at 1.
    flagged = decisions.filter(pl.col("upper_share") > 0).height
    assert result.stats["reasons"] == {"shouting": flagged} and 0 < flagged <= 151
    lenient = toy["Shouting"](toy["ShoutingConfig"](max_upper=1.0))
    again = run_stages([lenient], store, ["dolly"], input_fingerprint="readme")[0]
    assert (again.reused, again.stats["dropped"]) == ("scores", 0)  # only re-decided


def test_the_backend_of_the_readme_answers_requests():
    from curate.synth.backend import Request

    toy = readme_namespace("A generation backend")
    with toy["EchoBackend"](toy["EchoOptions"](model="echo", prefix="you said: ")) as backend:
        done = backend.generate([Request.chat([{"role": "user", "content": "hi"}], max_tokens=8)])
    assert done[0].texts == ("you said: hi",) and backend.identity()["backend"] == "echo"
