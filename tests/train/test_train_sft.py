"""SFT over a release: real TRL steps on a tiny random Llama, the assistant-only mask,
the run record and the data contract's errors."""

from __future__ import annotations

import hashlib
import json
import math

import pytest
from train_fixtures import release_fixture, tiny_lm_fixture  # noqa: F401  (fixtures)

from curate.config import ModelSpec
from curate.errors import ConfigError
from curate.read.releases import load_release
from curate.train.record import read_record
from curate.train.run import Options, train

CPU = ["max_steps=2", "per_device_train_batch_size=4", "max_length=128", "logging_steps=1",
       "save_strategy=no", "report_to=none", "dataloader_num_workers=0"]


@pytest.mark.slow
def test_sft_trains_on_the_assistant_tokens_of_the_release_and_records_its_hash(release, tiny_lm, tmp_path):
    result = train("sft", release, model=ModelSpec(model=str(tiny_lm)), output_dir=tmp_path / "out",
                   options=Options(overrides=CPU))
    record = read_record(tmp_path / "out")
    digest = hashlib.sha256((release / "manifest.json").read_bytes()).hexdigest()
    assert record["data"]["release"] == {"name": "train-tiny", "version": "0.1.0", "config": "text",
                                         "manifest_sha256": digest}
    assert record["status"] == "finished" and record["result"]["global_step"] == 2
    assert all(math.isfinite(loss) for loss in record["result"]["losses"])
    assert record["trl"]["config"]["assistant_only_loss"] is True
    assert record["trl"]["curate_defaults"]["bf16"] is False
    assert {"trl", "transformers", "torch", "datasets"} <= set(record["packages"])
    assert (tmp_path / "out/model.safetensors").exists()

    # The labels TRL built cover exactly the assistant tokens: each assistant turn's
    # content and its closing </s>, nothing of the user turns or the role markers.
    tokenizer = result.trainer.processing_class
    assistant, end = tokenizer.convert_tokens_to_ids(["<|assistant|>", "</s>"])
    prepared = result.trainer.train_dataset
    for row in prepared.select(range(20)):
        expected, inside = [], False
        for token in row["input_ids"]:
            expected.append(inside)
            inside = (inside and token != end) or token == assistant
        assert [label != -100 for label in row["labels"]] == expected[:len(row["labels"])]
    text = load_release(release)["text"]
    first = [m["content"] for m in text[0]["messages"] if m["role"] == "assistant"]
    counted = sum(len(tokenizer(c, add_special_tokens=False)["input_ids"]) + 1 for c in first)
    assert sum(label != -100 for label in prepared[0]["labels"]) == min(counted, 128)


def test_sft_loss_is_finite_and_falls_on_a_repeated_batch(release, tiny_lm, tmp_path):
    four = load_release(release)["text"].select(range(4))
    four.to_parquet(tmp_path / "four.parquet")
    steps = ["max_steps=4", "learning_rate=5e-3", "per_device_train_batch_size=4", "max_length=64",
             "logging_steps=1", "save_strategy=no", "lr_scheduler_type=constant", "warmup_steps=0"]
    result = train("sft", tmp_path / "four.parquet", model=ModelSpec(model=str(tiny_lm)),
                   output_dir=tmp_path / "o", options=Options(overrides=steps))
    losses = result.record["result"]["losses"]
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0] * 0.9, losses
    assert result.record["data"]["release"] is None and result.record["data"]["format"] == "messages"


def test_a_yaml_config_is_overridden_by_set_and_packing_is_an_option(release, tiny_lm, tmp_path):
    (tmp_path / "sft.yaml").write_text("max_steps: 1\nmax_length: 32\nper_device_train_batch_size: 2\n"
                                       "packing: false\nsave_strategy: 'no'\n")
    result = train("sft", release, model=ModelSpec(model=str(tiny_lm)), output_dir=tmp_path / "o",
                   options=Options(config_file=tmp_path / "sft.yaml", overrides=["packing=true"]))
    config = result.record["trl"]["config"]
    assert config["packing"] is True and config["max_length"] == 32 and config["max_steps"] == 1
    assert result.record["trl"]["given"] == {"max_steps": 1, "max_length": 32,
                                             "per_device_train_batch_size": 2,
                                             "packing": "true", "save_strategy": "no"}
    assert all(len(ids) == 32 for ids in result.trainer.train_dataset[:4]["input_ids"])


def test_an_unknown_trl_option_names_the_closest_one(release, tiny_lm, tmp_path):
    (tmp_path / "sft.yaml").write_text("lerning_rate: 0.001\n")
    with pytest.raises(ConfigError, match=r"sft.yaml: unknown SFTConfig option `lerning_rate`; did you mean "
                                          r"`learning_rate`\?"):
        train("sft", release, model=ModelSpec(model=str(tiny_lm)), output_dir=tmp_path / "o",
              options=Options(config_file=tmp_path / "sft.yaml"))
    with pytest.raises(ConfigError, match=r"--set: unknown SFTConfig option `max_lenght`; did you mean "
                                          r"`max_length`"):
        train("sft", release, model=ModelSpec(model=str(tiny_lm)), output_dir=tmp_path / "o",
              options=Options(overrides=["max_lenght=3"]))
    with pytest.raises(ConfigError, match=r"invalid int value: 'many'"):
        train("sft", release, model=ModelSpec(model=str(tiny_lm)), output_dir=tmp_path / "o",
              options=Options(overrides=["max_steps=many"]))


def test_assistant_only_loss_without_generation_markers_is_a_clear_error(release, tiny_lm, tmp_path):
    import shutil

    plain = shutil.copytree(tiny_lm, tmp_path / "plain")
    config = json.loads((plain / "tokenizer_config.json").read_text())
    template = "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {% endfor %}"
    config["chat_template"] = template
    (plain / "tokenizer_config.json").write_text(json.dumps(config))
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(ConfigError, match=r"`assistant_only_loss` is on but the chat template of .* has no "
                                          r"\{% generation %\}"):
        train("sft", release, model=ModelSpec(model=str(plain)), output_dir=tmp_path / "o",
              options=Options(overrides=["assistant_only_loss=true", *CPU]))
    # Not asked for: off, with the reason in the record.
    result = train("sft", release, model=ModelSpec(model=str(plain)), output_dir=tmp_path / "o2",
                   options=Options(overrides=["max_steps=1", "save_strategy=no", "max_length=32"]))
    assert result.record["trl"]["config"]["assistant_only_loss"] is False
    assert "no {% generation %} markers" in result.record["notes"]["assistant_only_loss"]
