"""Vision-language SFT on a release's image_text data through TRL's vision path, on a
tiny LLaVA built from configs."""

from __future__ import annotations

import math

import pytest
from tiny_vlm import IMAGE_TOKENS, build_tiny_vlm
from train_fixtures import release_fixture  # noqa: F401  (fixtures)

from curate.config import ModelSpec
from curate.errors import ConfigError
from curate.read.releases import load_release
from curate.train.run import Options, train


@pytest.fixture(scope="module")
def tiny_vlm(release, tmp_path_factory):
    rows = load_release(release)["image_text"]
    texts = [m["content"] for row in rows["messages"] for m in row]
    return build_tiny_vlm(tmp_path_factory.mktemp("vlm"), texts=texts)


def test_vision_sft_collates_images_and_masks_the_answers(release, tiny_vlm, tmp_path):
    steps = ["max_steps=3", "per_device_train_batch_size=2", "logging_steps=1", "save_strategy=no",
             "learning_rate=5e-3"]
    result = train("sft", release, model=ModelSpec(model=str(tiny_vlm)), output_dir=tmp_path / "vlm",
                   release_config="image_text", options=Options(overrides=steps))
    record = result.record
    assert record["data"]["vision"] and record["data"]["release"]["config"] == "image_text"
    assert record["trl"]["config"]["assistant_only_loss"] is True
    losses = record["result"]["losses"]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)

    # TRL's collator: pixel values per image, 4 <image> tokens per image in the first
    # user turn, labels exactly on each answer and its </s>.
    trainer = result.trainer
    tokenizer = trainer.processing_class.tokenizer
    rows = [trainer.train_dataset[i] for i in range(2)]
    batch = trainer.data_collator([dict(r) for r in rows])
    assert tuple(batch["pixel_values"].shape) == (2, 3, 16, 16)
    image, assistant, end = tokenizer.convert_tokens_to_ids(["<image>", "<|assistant|>", "</s>"])
    for ids, labels, row in zip(batch["input_ids"].tolist(), batch["labels"].tolist(), rows, strict=True):
        assert ids.count(image) == IMAGE_TOKENS
        start = ids.index(assistant) + 1
        stop = ids.index(end, start) + 1
        assert [i for i, label in enumerate(labels) if label != -100] == list(range(start, stop))
        answer = next(m["content"] for m in row["messages"] if m["role"] == "assistant")
        assert stop - start == len(tokenizer(answer, add_special_tokens=False)["input_ids"]) + 1


def test_a_text_model_on_image_data_is_refused_in_one_line(release, tmp_path):
    from tiny_lm import build_tiny_lm

    lm = build_tiny_lm(tmp_path / "lm")
    with pytest.raises(ConfigError, match=r"cannot load vision-language model .* needs one, with a "
                                          r"processor"):
        train("sft", release, model=ModelSpec(model=str(lm)), output_dir=tmp_path / "o",
              release_config="image_text", options=Options(overrides=["max_steps=1"]))


def test_version_floors_admit_no_trl_or_transformers_that_refuses_vision_assistant_only_loss():
    """Issue 27, item 6: vision SFT turns assistant_only_loss on for marked templates (the test
    above). TRL 1.0-1.9 raise "Assistant-only loss is not yet supported for vision-language
    models"; TRL 1.16 (the version tested, so the floor) raises unless transformers >= 5.18 —
    read here from its own source, so a TRL that moves the gate fails this test."""
    import inspect
    import re
    import tomllib
    from pathlib import Path

    from packaging.requirements import Requirement
    from packaging.version import Version
    from trl import SFTTrainer

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    floors = {}
    for line in pyproject["project"]["optional-dependencies"]["ml"]:
        requirement = Requirement(line)
        floors[requirement.name] = min(Version(s.version) for s in requirement.specifier
                                       if s.operator == ">=")
    assert floors["trl"] >= Version("1.16")
    source = inspect.getsource(SFTTrainer.__init__)
    (gate,) = re.findall(r"_is_vision_dataset\s+and args\.assistant_only_loss\s+and Version\(transformers"
                         r"\.__version__\) < Version\(\"([\d.]+)\.dev0\"\)", source)
    assert floors["transformers"] >= Version(gate) == Version("5.18.0")
    assert "peft" in floors
