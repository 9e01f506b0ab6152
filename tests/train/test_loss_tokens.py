"""The mix's loss tokens are the tokens TRL trains on: the manifest's counts with a
recipe tokenizer equal TRL's assistant mask (SFT) and completion split (DPO)."""

from __future__ import annotations

import copy

import polars as pl
import pytest
from train_fixtures import build_bpe_lm, dolly_texts, release_fixture, write_yaml  # noqa: F401  (fixtures)

from curate.mixes.tokens import counting_method, loss_tokens
from curate.pipeline.build import build_mix
from curate.pipeline.run import open_run
from curate.read.releases import load_release

RECIPE = """
name: counted
version: "0.1.0"
sources: [dolly, dolly_prefs]
mix:
  targets: {{general: 1.0}}
  tokenizer: {tokenizer}
{length}"""


@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
    return build_bpe_lm(tmp_path_factory.mktemp("bpe"), dolly_texts())


def trl_counts(release_path, model_path, max_length):
    """What TRL's own preparation trains on: SFT labels that are not -100 (assistant-only
    loss, truncated at max_length), DPO chosen + rejected completion tokens (cut where the
    collator cuts prompt + completion at max_length)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    parts = load_release(release_path)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path)
    common = {"output_dir": "/tmp/unused", "bf16": False, "report_to": "none", "max_length": max_length}
    sft = SFTTrainer(model=model, processing_class=tokenizer, train_dataset=parts["text"],
                     args=SFTConfig(assistant_only_loss=True, shuffle_dataset=False, **common))
    labels = {row["id"]: sum(x != -100 for x in row["labels"]) for row in sft.train_dataset}
    dpo = DPOTrainer(model=model, ref_model=copy.deepcopy(model), processing_class=tokenizer,
                     train_dataset=parts["preference"],
                     args=DPOConfig(**common))
    room = (lambda p: max_length - p) if max_length else (lambda p: 10**9)
    completions = {row["id"]: sum(min(len(row[c]), room(len(row["prompt_ids"])))
                                  for c in ("chosen_ids", "rejected_ids")) for row in dpo.train_dataset}
    return labels, completions


@pytest.mark.parametrize("max_length", [None, 64])
def test_manifest_loss_tokens_equal_what_trl_trains_on(release, bpe, tmp_path, max_length):
    catalog = release.parents[2] / "catalog"
    length = f"  max_length: {max_length}\n" if max_length else ""
    recipe = write_yaml(tmp_path / "counted.yaml", RECIPE.format(tokenizer=bpe, length=length))
    built = build_mix(open_run(recipe, catalog_dirs=[catalog], runs_dir=tmp_path / "runs"),
                      releases_dir=tmp_path / "rel").release
    manifest = built.manifest
    cut = f", max_length {max_length})" if max_length else ")"
    assert manifest["budget"]["counting"] == f"tokenizer:{bpe} (chat-template assistant mask{cut}"
    labels, completions = trl_counts(built.path, bpe, max_length)
    (general,) = manifest["composition"]
    assert general["loss_tokens"] == sum(labels.values()) + sum(completions.values())
    assert manifest["sources_in_mix"]["dolly"]["loss_tokens"] == sum(labels.values())
    assert manifest["sources_in_mix"]["dolly_prefs"]["loss_tokens"] == sum(completions.values())


def test_loss_tokens_per_record_match_trl_with_truncation(release, bpe):
    labels, completions = trl_counts(release, bpe, 64)
    parts = load_release(release)
    text = pl.from_arrow(parts["text"].data.table).with_columns(chosen=None, rejected=None)
    prefs = pl.from_arrow(parts["preference"].data.table).rename({"prompt": "messages"})
    ours = dict(zip(text["id"], loss_tokens(text, str(bpe), max_length=64), strict=True))
    ours |= dict(zip(prefs["id"], loss_tokens(prefs, str(bpe), max_length=64), strict=True))
    assert {i: n for i, n in ours.items() if i in labels or n} == labels | completions
    assert counting_method(str(bpe), max_length=64).endswith("assistant mask, max_length 64)")


def test_a_training_length_needs_a_tokenizer(tmp_path):
    from curate.catalog import MixSpec
    from curate.errors import ConfigError

    with pytest.raises(ValueError, match="`max_length` needs a `tokenizer`"):
        MixSpec(targets={"general": 1.0}, max_length=64)
    with pytest.raises(ConfigError, match="needs a `tokenizer` to count"):
        empty = pl.DataFrame({"messages": [None], "chosen": [None], "rejected": [None]})
        loss_tokens(empty, None, max_length=8)


def test_the_whitespace_estimate_is_unchanged():
    records = pl.DataFrame({
        "messages": [[{"role": "user", "content": "a b"}, {"role": "assistant", "content": "one two three"}],
                     [{"role": "user", "content": "q"}]],
        "chosen": [None, [{"role": "assistant", "content": "x y"}]],
        "rejected": [None, [{"role": "assistant", "content": "z"}]]})
    # round(3 * 1.3) + 1 turn; round(3 * 1.3) + 2 answers
    assert loss_tokens(records, None).to_list() == [5, 6]
