"""SFT over a release: real TRL steps on a tiny random Llama, the assistant-only mask
(marked templates, TRL's own training templates, `chat_template_path`), the run record and
the data contract's errors."""

from __future__ import annotations

import hashlib
import json
import math

import pytest
from train_fixtures import DATA, build_bpe_lm, dolly_texts, release_fixture, tiny_lm_fixture  # noqa: F401

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
    with pytest.raises(ConfigError, match=r"sft.yaml: unknown SFTConfig or ModelConfig option "
                                          r"`lerning_rate`; did you mean `learning_rate`\?"):
        train("sft", release, model=ModelSpec(model=str(tiny_lm)), output_dir=tmp_path / "o",
              options=Options(config_file=tmp_path / "sft.yaml"))
    with pytest.raises(ConfigError, match=r"--set: unknown SFTConfig or ModelConfig option `max_lenght`; did "
                                          r"you mean `max_length`"):
        train("sft", release, model=ModelSpec(model=str(tiny_lm)), output_dir=tmp_path / "o",
              options=Options(overrides=["max_lenght=3"]))
    with pytest.raises(ConfigError, match=r"invalid int value: 'many'"):
        train("sft", release, model=ModelSpec(model=str(tiny_lm)), output_dir=tmp_path / "o",
              options=Options(overrides=["max_steps=many"]))


PLAIN = "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {% endfor %}"


def with_template(folder, target, template):
    """A copy of the model in ``folder`` whose tokenizer carries ``template``."""
    import shutil

    copy = shutil.copytree(folder, target)
    config = json.loads((copy / "tokenizer_config.json").read_text())
    config["chat_template"] = template
    (copy / "tokenizer_config.json").write_text(json.dumps(config))
    (copy / "chat_template.jinja").unlink(missing_ok=True)
    return copy


def test_a_template_trl_cannot_mask_trains_on_every_token_and_asking_for_the_mask_is_trls_error(
        release, tiny_lm, tmp_path):
    plain = with_template(tiny_lm, tmp_path / "plain", PLAIN)
    # Asked for: TRL's trainer refuses (get_training_chat_template has no training template
    # for it); curate says TRL's reason in one line.
    with pytest.raises(ConfigError, match=r"^TRL's SFTTrainer: The chat template is not training-compatible "
                                          r"\(missing prefix-preservation or `\{% generation %\}` markers\)"):
        train("sft", release, model=ModelSpec(model=str(plain)), output_dir=tmp_path / "o",
              options=Options(overrides=["assistant_only_loss=true", *CPU]))
    # Not asked for: off, with the reason in the record.
    result = train("sft", release, model=ModelSpec(model=str(plain)), output_dir=tmp_path / "o2",
                   options=Options(overrides=["max_steps=1", "save_strategy=no", "max_length=32"]))
    assert result.record["trl"]["config"]["assistant_only_loss"] is False
    assert "TRL has no training template for it" in result.record["notes"]["assistant_only_loss"]
    assert all(label != -100 for label in result.trainer.train_dataset[0]["labels"])


def test_chat_template_path_with_markers_gives_the_mask_trl_applies_it(release, tiny_lm, tmp_path):
    """Issue 27, item 2: TRL applies `chat_template_path` inside the trainer, so a marked
    template given there trains on the assistant tokens of a model whose own has no markers."""
    from tiny_lm import CHAT_TEMPLATE

    plain = with_template(tiny_lm, tmp_path / "plain", PLAIN)
    (tmp_path / "marked.jinja").write_text(CHAT_TEMPLATE)
    for given in (["assistant_only_loss=true"], []):  # asked for, and curate's default
        result = train("sft", release, model=ModelSpec(model=str(plain)),
                       output_dir=tmp_path / f"o{len(given)}",
                       options=Options(overrides=[f"chat_template_path={tmp_path / 'marked.jinja'}", *given,
                                                  *CPU]))
        assert result.record["trl"]["config"]["assistant_only_loss"] is True
        tokenizer = result.trainer.processing_class
        assert tokenizer.chat_template == CHAT_TEMPLATE
        assistant, end = tokenizer.convert_tokens_to_ids(["<|assistant|>", "</s>"])
        row = result.trainer.train_dataset[0]
        expected, inside = [], False
        for token in row["input_ids"]:
            expected.append(inside)
            inside = (inside and token != end) or token == assistant
        assert [label != -100 for label in row["labels"]] == expected[:len(row["labels"])]
    assert "marks assistant content" in result.record["notes"]["assistant_only_loss"]


QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


@pytest.fixture(scope="module")
def qwen_lm(tmp_path_factory):
    """A tiny model whose tokenizer carries TRL's copy of Qwen2.5's chat template (the one
    Qwen/Qwen2.5-*-Instruct ship), which has no {% generation %} markers."""
    from trl.chat_template_utils import qwen2_5_chat_template

    texts = [*dolly_texts(), QWEN_SYSTEM, "system user assistant"]
    return build_bpe_lm(tmp_path_factory.mktemp("qwen"), texts, chat_template=qwen2_5_chat_template)


def assistant_spans(text, messages):
    """Character spans of what an assistant turn writes after `<|im_start|>assistant`: a
    newline, the content, `<|im_end|>` and the newline after it."""
    spans, at = [], 0
    for message in messages:
        if message["role"] == "assistant":
            piece = f"<|im_start|>assistant\n{message['content']}<|im_end|>\n"
            start = text.index(piece, at)
            spans.append((start + len("<|im_start|>assistant"), start + len(piece)))
            at = start + len(piece)
    return spans


def test_qwen2_5_trains_on_the_assistant_tokens_through_trls_training_template(qwen_lm, tmp_path):
    """Issue 27, item 1: the README's Qwen2.5 example. The template has no markers; TRL swaps
    in its qwen2_5 training template, so curate's default is on and the labels cover exactly
    each assistant turn's newline, content, <|im_end|> and newline."""
    from trl.chat_template_utils import qwen2_5_chat_template

    lines = (DATA / "general/dolly/dolly_151.jsonl").read_text().splitlines()[:6]
    rows = [json.loads(line) for line in lines]
    conversations = [[{"role": "user", "content": r["instruction"]},
                      {"role": "assistant", "content": r["response"]}] for r in rows]
    conversations[0] += [{"role": "user", "content": rows[1]["instruction"]},
                         {"role": "assistant", "content": rows[1]["response"]}]
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps({"messages": c}) + "\n" for c in conversations))
    result = train("sft", tmp_path / "chat.jsonl", model=ModelSpec(model=str(qwen_lm)),
                   output_dir=tmp_path / "o", options=Options(overrides=[
                       "max_steps=1", "per_device_train_batch_size=2", "save_strategy=no", "report_to=none"]))
    record = result.record
    assert record["trl"]["config"]["assistant_only_loss"] is True
    assert record["notes"]["assistant_only_loss"] == (
        "on: TRL swaps in its training chat template for this one "
        "(trl.chat_template_utils.get_training_chat_template)")
    tokenizer = result.trainer.processing_class
    assert tokenizer.chat_template == qwen2_5_chat_template  # the model's own template is kept
    trained = 0
    for messages, row in zip(conversations, result.trainer.train_dataset, strict=True):
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        assert text.startswith(f"<|im_start|>system\n{QWEN_SYSTEM}<|im_end|>\n")
        encoded = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
        assert encoded["input_ids"] == row["input_ids"]
        spans = assistant_spans(text, messages)
        expected = [any(a <= start < b for a, b in spans) for start, _ in encoded["offset_mapping"]]
        assert [label != -100 for label in row["labels"]] == expected
        trained += sum(expected)
    first = result.trainer.train_dataset[0]
    assert sum(label != -100 for label in first["labels"]) == sum(
        len(tokenizer(f"\n{m['content']}<|im_end|>\n", add_special_tokens=False)["input_ids"])
        for m in conversations[0] if m["role"] == "assistant")
    assert trained > 0
