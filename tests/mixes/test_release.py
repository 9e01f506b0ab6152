"""Releases: reproducible, immutable, auditable, and loadable by datasets and TRL."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import write_yaml

from curate.cli import main
from curate.mixes.publish import diff_releases, push_release
from curate.pipeline.build import build_mix
from curate.pipeline.run import open_run
from curate.progress import Tick
from curate.read.releases import load_release

RECIPE = """
name: small
version: "1"
seed: {seed}
sources: [medquad_sample, dolly, self_instruct, vqa_rad]
benchmarks: [mmlu_medical]
stages:
  exact_dedup: {{}}
  near_dedup: {{}}
  decontam: {{}}
mix:
  targets: {{medical: 0.6, general: 0.4}}
  modality: {{text: 0.97, image: 0.03}}
"""


def build(tmp: Path, seed: int = 0, name: str = "a", **kwargs):
    recipe = write_yaml(tmp / f"recipe-{name}-{seed}.yaml", RECIPE.format(seed=seed))
    run = open_run(recipe, runs_dir=tmp / f"runs-{name}")
    return build_mix(run, releases_dir=tmp / f"releases-{name}", **kwargs)


def files_of(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("release")
    return tmp, build(tmp)


def test_the_release_meets_its_targets_and_accounts_for_every_row(first):
    tmp, result = first
    manifest = result.release.manifest
    assert result.release.status == "written"
    for row in manifest["composition"]:
        assert abs(row["realised"] - row["target"]) <= 0.005
    assert abs(manifest["modality"]["image"]["loss_tokens_share"] - 0.03) <= 0.005
    assert manifest["budget"]["counting"].startswith("whitespace-estimate")
    path = result.release.path
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((path / name).read_bytes()).hexdigest() == digest
    mix = pl.concat([pl.read_parquet(p, columns=["id", "source"]) for p in path.glob("data/*/*.parquet")])
    removed = pl.read_parquet(path / "removed.parquet")
    ingested = sum(json.loads(p.read_text())["rows"] for p in
                   (tmp / "runs-a/small/1/ingest").glob("*/_done/*.json"))
    assert mix.height + removed.height == ingested
    assert set(removed.get_column("stage")) <= {"ingest", "exact_dedup", "near_dedup", "decontam", "mix"}
    assert removed.filter(pl.col("stage") == "exact_dedup").height == next(
        s for s in manifest["stages"] if s["stage"] == "exact_dedup_v1")["dropped"]
    card = (path / "README.md").read_text()
    assert card.startswith("---\nlicense:") and "## Composition" in card and "cc-by-sa-3.0" in card


def test_same_recipe_inputs_and_seed_give_byte_identical_files(first, tmp_path):
    _, result = first
    again = build(tmp_path, name="b")
    assert files_of(again.release.path) == files_of(result.release.path)


def test_a_release_is_never_overwritten(first, tmp_path):
    tmp, result = first
    assert build(tmp).release.status == "unchanged"
    changed = write_yaml(tmp / "changed.yaml", RECIPE.format(seed=0).replace("0.6, general: 0.4",
                                                                             "0.5, general: 0.5"))
    with pytest.raises(Exception, match="releases are never overwritten: bump the recipe's `version`"):
        build_mix(open_run(changed, runs_dir=tmp / "runs-a"), releases_dir=tmp / "releases-a")


def test_a_different_seed_changes_the_sample_and_nothing_else(first, tmp_path):
    _, result = first
    other = build(tmp_path, seed=1, name="c")
    a, b = result.release.manifest, other.release.manifest
    assert a["files"] != b["files"]
    for row_a, row_b in zip(a["composition"], b["composition"]):
        assert abs(row_a["realised"] - row_b["realised"]) <= 0.01
    same = {k for k in a if a[k] == b[k]}
    assert {"inputs", "benchmarks", "stages", "contamination", "budget", "packages"} <= same
    diff = diff_releases(result.release.path, other.release.path)
    assert diff.added and diff.removed
    assert {r.reason for r in diff.removed} == {"not_selected"}


class Interrupted(Exception):
    pass


def test_an_interrupted_build_resumes_to_the_identical_release(first, tmp_path):
    _, result = first

    def stop(tick: Tick) -> None:
        if tick.name == "near_dedup":
            raise Interrupted(f"stopped in {tick.name}")

    with pytest.raises(Interrupted, match="stopped in near_dedup"):
        build(tmp_path, name="d", progress=stop)
    assert not (tmp_path / "releases-d").exists() or not any((tmp_path / "releases-d").iterdir())
    resumed = build(tmp_path, name="d")
    assert files_of(resumed.release.path) == files_of(result.release.path)


def test_load_release_and_load_dataset_read_it(first):
    import datasets

    _, result = first
    loaded = load_release(result.release.path)
    assert set(loaded) == {"text", "image_text"}
    assert loaded["text"][0]["messages"][0]["role"] == "user"
    image = loaded["image_text"][0]["images"][0]
    assert image.size[0] > 0  # decoded by the Image feature
    plain = datasets.load_dataset("parquet", data_files=str(result.release.path / "data/text/*.parquet"))
    assert plain["train"].num_rows == loaded["text"].num_rows


def test_push_offline_is_a_dry_run(first, monkeypatch):
    _, result = first
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    plan = push_release(result.release.path, "someone/small")
    assert not plan.uploaded and plan.tag == "v1"
    assert "manifest.json" in plan.files and "README.md" in plan.files


def test_release_commands(first):
    tmp, result = first
    runner = CliRunner()
    listing = runner.invoke(main, ["release", "ls", "--releases", str(tmp / "releases-a")],
                            env={"COLUMNS": "200"})
    assert listing.exit_code == 0 and "small" in listing.output
    shown = runner.invoke(main, ["release", "show", str(result.release.path)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "medical" in shown.output and "near_dedup_v1" in shown.output
    plan = runner.invoke(main, ["build-mix", str(tmp / "recipe-a-0.yaml"), "--dry-run",
                                "--runs", str(tmp / "runs-a")], env={"COLUMNS": "200"})
    assert plan.exit_code == 0 and "feasible: budget" in plan.output
    pushed = runner.invoke(main, ["release", "push", str(result.release.path), "--repo", "x/y",
                                  "--dry-run"])
    assert pushed.exit_code == 0 and "would upload" in pushed.output


@pytest.mark.slow
def test_trl_sft_trains_on_the_release_as_it_is(first, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from trl import SFTConfig, SFTTrainer

    _, result = first
    dataset = load_release(result.release.path)["text"].select(range(16))
    texts = [m["content"] for row in dataset["messages"] for m in row]
    raw = Tokenizer(models.WordLevel(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.train_from_iterator(texts, trainers.WordLevelTrainer(
        vocab_size=2000, special_tokens=["<unk>", "<pad>", "<s>", "</s>"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>", pad_token="<pad>",
                                        bos_token="<s>", eos_token="</s>")
    tokenizer.chat_template = (
        "{% for m in messages %}<s> {{ m['role'] }} {{ m['content'] }} </s>{% endfor %}"
        "{% if add_generation_prompt %}<s> assistant {% endif %}")
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32,
                                         intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=4))
    config = SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=2, per_device_train_batch_size=4,
                       report_to=[], bf16=False, max_length=128, logging_steps=1, save_strategy="no")
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)
    output = trainer.train()
    assert output.global_step == 2 and output.training_loss > 0


@pytest.mark.slow
def test_the_demo_recipe_builds_a_release_datasets_reads(demo_build):
    """`make demo` end to end: every offline stage, MiniLM included, then the release."""
    import datasets

    for text in ("clean_v1", "decontam_v3", "near_duplicate_of", "too_similar_to", "synth_cot",
                 "offline backend", "release", "(written)", "medical", "general", "synthetic",
                 "modality: image", "Contamination", "image_v1", "answer_wrong_type",
                 "source_rejected", "medquad_contaminated_demo", "Contamination examples"):
        assert text in demo_build.output
    path = demo_build.release
    manifest = json.loads((path / "manifest.json").read_text())
    assert [s["stage"] for s in manifest["stages"]] == [
        "clean_v1", "image_v1", "answers_v1", "exact_dedup_v1", "near_dedup_v1", "decontam_v3",
        "diversity_v1"]
    rejected = [c for c in manifest["contamination"] if c["source"] == "medquad_contaminated_demo"]
    assert rejected and all(c["source_rejected"] for c in rejected)
    assert sum(c["contaminated"] for c in rejected) == 6
    assert manifest["stages"][5]["options"]["embedding_model"] == "minilm"
    # VQA-RAD's images all pass; its 8 own wrong-type answers are removed
    assert manifest["stages"][1]["reasons"] == {}
    assert manifest["stages"][2]["reasons"] == {"answer_wrong_type": 8}
    assert manifest["stages_switched_off"] == ["relevance", "quality"]
    assert set(manifest["modality"]) == {"text", "image"} and manifest["modality"]["image"]["target"] == 0.05
    assert manifest["synthetic"]["offline_backend"] and manifest["synthetic"]["synthetic"] == 400
    assert "offline template backend" in (path / "README.md").read_text()
    for row in manifest["composition"]:
        assert abs(row["realised"] - row["target"]) <= 0.005
    text = datasets.load_dataset("parquet", data_files=str(path / "data/text/*.parquet"), split="train")
    assert set(text.column_names) == {"messages", "id", "source", "category", "meta"}
    # The folder itself is a Hub dataset: the default config, images decoded, a valid card.
    from curate.mixes.card import validate_card

    card = validate_card((path / "README.md").read_text("utf-8"))
    assert card.data.source_datasets == ["databricks/databricks-dolly-15k"]
    assert datasets.load_dataset(str(path), split="train").num_rows == text.num_rows
    images = datasets.load_dataset(str(path), "image_text", split="train")
    assert images[0]["images"][0].size[0] > 0
    assert pq.ParquetFile(path / "data/image_text/train-00000.parquet").metadata.row_group(0).num_rows == 100


SYNTH_RECIPE = """
name: with-cot
version: "1"
sources: [medquad_sample, dolly]
stages:
  exact_dedup: {}
  near_dedup: {enabled: false, minhash: {threshold: 0.7}}
synth:
  cot:
    generator: {backend: offline}
    sources: [medquad_sample]
    max_rows: 120
mix:
  targets: {medical: 0.6, synthetic: 0.2, general: 0.2}
"""


def test_synthetic_records_are_generated_mixed_and_labelled(tmp_path):
    recipe = write_yaml(tmp_path / "with-cot.yaml", SYNTH_RECIPE)
    result = build_mix(open_run(recipe, runs_dir=tmp_path / "runs"), releases_dir=tmp_path / "rel")
    manifest = result.release.manifest
    assert result.synth["synthetic"] == 120 and result.synth["requests"]["sent"] == 120
    assert {c["category"]: abs(c["realised"] - c["target"]) <= 0.005
            for c in manifest["composition"]} == {"medical": True, "synthetic": True, "general": True}
    assert manifest["synthetic"]["offline_backend"] is True
    assert manifest["sources_in_mix"]["synth_cot"]["generator"] == "offline:curate-offline-template"
    assert manifest["stages_switched_off"] == ["near_dedup"]
    card = (result.release.path / "README.md").read_text()
    assert "offline template backend" in card and "Switched off in this recipe" in card
    data = pl.read_parquet(result.release.path / "data/text/*.parquet")
    synthetic = data.filter(pl.col("category") == "synthetic")
    assert synthetic.height > 0 and synthetic.get_column("source").unique().to_list() == ["synth_cot"]
    lineage = [json.loads(m) for m in synthetic.get_column("meta")]
    assert all(m["offline_backend"] is True and m["parent_id"] for m in lineage)

    # A second build of the same recipe, in a fresh run folder, sends no request (the cache)
    # and leaves the release byte for byte as it was.
    again = build_mix(open_run(recipe, runs_dir=tmp_path / "runs", run_id="again"),
                      releases_dir=tmp_path / "rel")
    assert again.synth["requests"] == {"sent": 0, "cached": 120}
    assert again.release.status == "unchanged"


def test_the_published_recipe_validates_and_dry_runs_offline(tmp_path):
    result = CliRunner().invoke(main, ["build-mix", "medical-sft-60-20-20", "--dry-run",
                                       "--runs", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "meta-llama/Llama-3.1-70B-Instruct" in result.output
    assert "not checked: medmcqa_train" in result.output  # hub sources: nothing ingested here
