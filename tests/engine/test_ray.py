"""The Ray executor runs the same stages as the in-process one and writes the same release:
the demo recipe, and a recipe with every stage (the multimodal and model stages too),
byte for byte; a build interrupted under Ray resumes to the same release.

One local Ray cluster of 2 CPUs serves the module (starting one costs seconds to tens of
seconds); the executor joins it and leaves it running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_yaml

from curate.config import EngineConfig
from curate.pipeline.build import build_mix
from curate.pipeline.run import open_run
from curate.progress import Tick

ray = pytest.importorskip("ray")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "curation"))

RAY = EngineConfig(engine="ray", workers=2, partitions=3)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def release_files(folder: Path) -> dict[str, bytes]:
    """The data files and removed.parquet of a release, by name."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.parquet"))}


@pytest.mark.slow
def test_the_demo_release_is_the_same_on_ray(cluster, demo_build, tmp_path):
    import json

    run = open_run("demo", runs_dir=tmp_path / "runs")
    built = build_mix(run, releases_dir=tmp_path / "releases", engine=RAY)
    assert release_files(built.release.path) == release_files(demo_build.release)
    ours = json.loads((built.release.path / "manifest.json").read_text())["files"]
    local = json.loads((demo_build.release / "manifest.json").read_text())["files"]
    data = [name for name in local if name.endswith(".parquet")]
    assert data and {n: ours[n] for n in data} == {n: local[n] for n in data}


EVERY_STAGE = """
name: every
version: "1"
sources: [dolly, medquad_slice, vqa_rad_slice]
benchmarks: [mmlu_medical]
stages:
  clean: {{}}
  image: {{}}
  answers: {{embedding_model: null}}
  relevance: {{model: "{clip}", threshold: 0.0, device: cpu}}
  boxes: {{input_format: xyxy}}
  exact_dedup: {{}}
  near_dedup: {{}}
  decontam: {{}}
  quality: {{complexity_model: "{lm}", quality_model: "{lm}", device: cpu, max_length: 64,
             batch_size: 32, collapse_min_turns: 1000000}}
  diversity: {{tau: 0.95}}
"""


SLICE = """
name: {name}
version: 1
license: CC-BY-4.0
domain: medical
task: qa
location: {{path: {path}, allow_outside_data_root: true}}
mapping: {mapping}
"""


@pytest.fixture(scope="module")
def every_stage(tmp_path_factory, data_root) -> tuple[Path, Path]:
    """A recipe with every stage over small slices of real sources (a catalog folder of
    its own), a tiny CLIP and a tiny language model."""
    from tiny_clip import build_tiny_clip
    from tiny_lm import build_tiny_lm

    tmp = tmp_path_factory.mktemp("every")
    clip = build_tiny_clip(tmp / "clip", ["a", "the", "image", "chest", "x", "ray", "of"])
    lm = build_tiny_lm(tmp / "lm")
    for name, source, rows, mapping in (
            ("medquad_slice", "medical/medquad/medquad_sample_1500.jsonl", 200,
             "{kind: chat, question: question, answer: answer}"),
            ("vqa_rad_slice", "multimodal/vqa_rad/vqa_rad_pairs.jsonl", 120,
             f"{{kind: image_text, image: image, question: question, answer: answer, "
             f"image_root: {data_root / 'multimodal/vqa_rad'}}}")):
        lines = (data_root / source).read_text().splitlines()[:rows]
        (tmp / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
        write_yaml(tmp / "catalog/sources" / f"{name}.yaml",
                   SLICE.format(name=name, path=tmp / f"{name}.jsonl", mapping=mapping))
    return write_yaml(tmp / "every.yaml", EVERY_STAGE.format(clip=clip, lm=lm)), tmp / "catalog"


class Interrupted(Exception):
    pass


@pytest.mark.slow
def test_every_stage_runs_on_ray_and_an_interrupted_build_resumes_to_the_same_release(
        cluster, every_stage, tmp_path):
    recipe, catalog = every_stage

    def run(where: str):
        return open_run(recipe, catalog_dirs=[catalog], runs_dir=tmp_path / where)

    local = build_mix(run("local"), releases_dir=tmp_path / "local-rel")
    assert [r.name for r in local.stages] == ["clean", "image", "answers", "relevance", "boxes",
                                              "exact_dedup", "near_dedup", "decontam", "quality",
                                              "diversity"]

    def stop(tick: Tick) -> None:
        if tick.name == "decontam" and tick.done == 1:  # a shard of decontam is written
            raise Interrupted

    with pytest.raises(Interrupted):
        build_mix(run("ray"), releases_dir=tmp_path / "ray-rel", engine=RAY, progress=stop)
    resumed = build_mix(run("ray"), releases_dir=tmp_path / "ray-rel", engine=RAY)
    reused = resumed.reused().stages
    assert reused["clean"] == "decisions" and "near_dedup" in reused
    assert release_files(resumed.release.path) == release_files(local.release.path)
    assert (resumed.release.path / "manifest.json").read_bytes() == (
        local.release.path / "manifest.json").read_bytes()


def test_a_temporary_folder_too_long_for_ray_s_sockets_says_to_set_ray_tmpdir(tmp_path):
    """Ray keeps a local cluster's sockets under $TMPDIR, and a socket path has at most 107
    bytes (a Slurm job's or pytest's temporary folder can be longer)."""
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    script = ("from curate.config import EngineConfig\n"
              "from curate.engine.ray import RayExecutor\n"
              "from curate.errors import ConfigError\n"
              "try:\n    RayExecutor(EngineConfig(engine='ray')).setup()\n"
              "except ConfigError as error:\n    print(error)\n")
    env = {**os.environ, "TMPDIR": str(deep), "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("RAY_TMPDIR", None)
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=120)
    assert "Ray could not start a local cluster" in done.stdout, done.stderr[-2000:]
    assert "set RAY_TMPDIR to a short folder (e.g. RAY_TMPDIR=/tmp)" in done.stdout
