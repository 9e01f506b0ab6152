"""DPO over a release's preference data, and the data contract's one-line errors."""

from __future__ import annotations

import hashlib
import json
import math

import pytest
from click.testing import CliRunner
from train_fixtures import release_fixture, tiny_lm_fixture  # noqa: F401  (fixtures)

from curate.cli import main
from curate.config import ModelSpec
from curate.errors import ConfigError
from curate.read.releases import load_release
from curate.train.data import read_training_data
from curate.train.run import Options, train


@pytest.mark.slow
def test_dpo_trains_on_the_release_preference_pairs(release, tiny_lm, tmp_path):
    steps = ["max_steps=3", "per_device_train_batch_size=4", "max_length=96", "logging_steps=1",
             "save_strategy=no", "learning_rate=5e-3", "lr_scheduler_type=constant"]
    result = train("dpo", release, model=ModelSpec(model=str(tiny_lm)), output_dir=tmp_path / "dpo",
                   options=Options(overrides=steps))
    record = result.record
    assert record["data"]["release"]["config"] == "preference"
    assert record["data"]["release"]["manifest_sha256"] == hashlib.sha256(
        (release / "manifest.json").read_bytes()).hexdigest()
    assert record["trl"]["config_class"] == "DPOConfig" and record["result"]["global_step"] == 3
    losses = record["result"]["losses"]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    # The first step is at log 2 (policy == reference); learning moves it.
    assert losses[0] == pytest.approx(math.log(2), abs=1e-3) and losses[-1] != losses[0]
    assert json.loads((tmp_path / "dpo/curate-train.json").read_text())["status"] == "finished"


def test_dpo_loss_falls_on_a_repeated_batch(release, tiny_lm, tmp_path):
    four = load_release(release)["preference"].select(range(4))
    four.to_json(tmp_path / "four.jsonl")
    steps = ["max_steps=4", "per_device_train_batch_size=4", "max_length=64", "logging_steps=1",
             "save_strategy=no", "learning_rate=1e-2", "lr_scheduler_type=constant"]
    result = train("dpo", tmp_path / "four.jsonl", model=ModelSpec(model=str(tiny_lm)),
                   output_dir=tmp_path / "o", options=Options(overrides=steps))
    losses = result.record["result"]["losses"]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0], losses


@pytest.mark.parametrize(("rows", "task", "error"), [
    ([{"question": "q", "answer": "a"}], "sft",
     r"SFT needs a `messages` column \(conversational\), `prompt` and `completion` columns, or a `text` "
     r"column; none is there \(columns: `question`, `answer`\)"),
    ([{"prompt": "q", "answer": "a"}], "sft", r"`completion` is missing \(columns: `prompt`, `answer`\)"),
    ([{"prompt": "q", "chosen": "a"}], "dpo", r"DPO needs .*; `rejected` is missing"),
    ([{"prompt": "q", "chosen": "a", "rejected": 3}], "dpo", r"`rejected` holds int64, not text"),
    ([{"messages": [{"role": "user", "content": "q"}, {"role": "bot", "content": "a"}]}], "sft",
     r"row 0: `messages` has a turn with role `bot`"),
    ([{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
      {"messages": [{"role": "user", "content": "q"}]}], "sft", r"row 1: `messages` has no assistant turn"),
])
def test_a_wrong_format_fails_in_one_line_naming_the_column(tmp_path, rows, task, error):
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ConfigError, match=error) as caught:
        read_training_data(path, task=task)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_a_release_without_the_part_asked_for_names_the_parts_it_has(release, tmp_path):
    with pytest.raises(ConfigError, match=r"no `chat` data \(it has `image_text`, `preference`, `text`\)"):
        read_training_data(release, task="sft", config="chat")
    assert read_training_data(release, task="dpo").format == "preference"
    vision = read_training_data(release, task="sft", config="image_text")
    assert vision.vision and vision.format == "messages" and len(vision.dataset) == 24


def test_the_cli_says_a_wrong_format_in_one_line_and_exits_2(tiny_lm, tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"prompt": "q", "chosen": "a"}) + "\n")
    result = CliRunner().invoke(main, ["train", "dpo", str(path), "--model", str(tiny_lm),
                                       "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].endswith("`rejected` is missing (columns: `prompt`, `chosen`)")
    assert "Traceback" not in result.output


def without_template(folder, target):
    """A copy of the model in ``folder`` whose tokenizer has no chat template."""
    import shutil

    copy = shutil.copytree(folder, target)
    config = json.loads((copy / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (copy / "tokenizer_config.json").write_text(json.dumps(config))
    (copy / "chat_template.jinja").unlink(missing_ok=True)
    return copy


def test_dpo_on_plain_string_pairs_needs_no_chat_template(release, tiny_lm, tmp_path):
    """Issue 27, item 3: TRL's DPOTrainer tokenizes plain-string pairs without a chat template
    (prompt + chosen, prompt + rejected, EOS added), so curate trains them; conversational
    pairs without a template fail before the model loads, with a fix DPOConfig can take."""
    bare = without_template(tiny_lm, tmp_path / "bare")
    pairs = load_release(release)["preference"].select(range(8))
    text = [{c: row[c][-1]["content"] for c in ("prompt", "chosen", "rejected")} for row in pairs]
    (tmp_path / "plain.jsonl").write_text("".join(json.dumps(r) + "\n" for r in text))
    steps = ["max_steps=2", "per_device_train_batch_size=4", "max_length=64", "logging_steps=1",
             "save_strategy=no"]
    result = train("dpo", tmp_path / "plain.jsonl", model=ModelSpec(model=str(bare)),
                   output_dir=tmp_path / "o",
                   options=Options(overrides=steps))
    assert result.record["data"]["conversational"] is False and result.record["result"]["global_step"] == 2
    tokenizer = result.trainer.processing_class
    first = result.trainer.train_dataset[0]
    assert first["prompt_ids"] == tokenizer(text[0]["prompt"])["input_ids"]
    assert first["chosen_ids"][-1] == tokenizer.eos_token_id  # TRL's add_eos on plain pairs
    pairs.to_json(tmp_path / "chat.jsonl")
    with pytest.raises(ConfigError, match=r"has no chat template, and .*chat.jsonl is conversational: "
                                          r"DPOConfig has no option for one: save a chat_template.jinja"):
        train("dpo", tmp_path / "chat.jsonl", model=ModelSpec(model=str(bare)), output_dir=tmp_path / "o2",
              options=Options(overrides=steps))


def test_the_dpo_reference_is_trls_own_copy_loaded_from_the_model_name(release, tiny_lm, tmp_path):
    """Issue 27, item 5: no deepcopy of the policy: TRL loads the reference from the model's
    name with the policy's model_init_kwargs (what it shards under DeepSpeed ZeRO-3 or FSDP)."""
    import torch

    four = load_release(release)["preference"].select(range(4))
    four.to_json(tmp_path / "four.jsonl")
    result = train("dpo", tmp_path / "four.jsonl", model=ModelSpec(model=str(tiny_lm)),
                   output_dir=tmp_path / "o",
                   options=Options(overrides=["max_steps=1", "per_device_train_batch_size=4", "max_length=64",
                                              "save_strategy=no"]))
    trainer = result.trainer
    assert result.record["notes"]["ref_model"] == (
        "a separate copy of the model, loaded by TRL from its name with model_init_kwargs")
    reference = trainer.accelerator.unwrap_model(trainer.ref_model)
    assert reference is not trainer.model and reference.dtype == torch.float32
    assert reference.config._name_or_path == str(tiny_lm)
    from safetensors.torch import load_file

    saved = load_file(tiny_lm / "model.safetensors")
    key = "model.layers.0.mlp.up_proj.weight"
    assert torch.equal(reference.state_dict()[key], saved[key])  # the checkpoint, untouched by the step
    assert not torch.equal(trainer.model.state_dict()[key], saved[key])
