"""A release says what decided it: the versions of every library that scores, embeds or
counts, what `auto` options resolved to, and the digest of the embedder's weights."""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import version
from pathlib import Path

import pytest
from conftest import write_yaml

from curate.curation.embed import model_location, resolve_precision
from curate.pipeline.build import build_mix
from curate.pipeline.run import open_run

RECIPE = """
name: decided
version: "1"
sources: [dolly]
stages:
  diversity: {tau: 0.95}
"""


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("decided")
    run = open_run(write_yaml(tmp / "decided.yaml", RECIPE), runs_dir=tmp / "runs")
    built = build_mix(run, releases_dir=tmp / "releases")
    return json.loads((built.release.path / "manifest.json").read_text()), run


def test_the_manifest_records_the_versions_of_every_library_that_decides(manifest):
    packages = manifest[0]["packages"]
    for name in ("torch", "transformers", "sentence-transformers", "numba", "scipy", "polars"):
        assert packages[name] == version(name)


def test_the_manifest_records_the_resolved_precision_and_the_embedders_weights(manifest):
    document, run = manifest
    (diversity,) = [s for s in document["stages"] if s["stage"].startswith("diversity")]
    assert diversity["options"]["precision"] == "auto"  # as written
    resolved = diversity["resolved"]
    assert resolved["precision"] == resolve_precision("auto", "torch") != "auto"
    folder = Path(model_location("minilm"))
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.parts):
        name = path.relative_to(folder).as_posix().encode()
        digest.update(name + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    assert resolved["weights_sha256"] == digest.hexdigest()
    # recorded when the scores were made: a re-decision keeps it
    stats = json.loads((run.store.root / "diversity/stats.json").read_text())
    assert stats["resolved"] == resolved
