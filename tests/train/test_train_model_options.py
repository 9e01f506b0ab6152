"""The options of `trl sft` under `curate train` (issue 27, items 4 and 5): TRL's ModelConfig
parsed with the method's config, the model handed to TRL by name and loaded as TRL's scripts
load it, LoRA adapters through `trl.get_peft_config` for SFT and DPO, and a seeded
validation split whose loss is in the record."""

from __future__ import annotations

import json
import math

import pytest
from train_fixtures import release_fixture, tiny_lm_fixture  # noqa: F401  (fixtures)

from curate.config import ModelSpec
from curate.errors import ConfigError
from curate.read.releases import load_release
from curate.train.dpo import DPO
from curate.train.run import Options, train
from curate.train.sft import SFT

STEPS = ["max_steps=2", "per_device_train_batch_size=4", "max_length=64", "logging_steps=1",
         "save_strategy=no", "report_to=none"]
LORA = ["use_peft=true", "lora_r=4", "lora_alpha=8", "lora_dropout=0.0", "lora_target_modules=q_proj v_proj"]


class Spy(Exception):
    """Raised by the spying methods with what curate handed to TRL's trainer."""

    def __init__(self, model, args, peft_config, quantization_config):
        super().__init__("spied")
        self.model, self.config, self.peft_config, self.quantization_config = (
            model, args, peft_config, quantization_config)


class SpySFT(SFT):
    def trainer(self, model, args, data, processing_class, *, peft_config=None, quantization_config=None):
        raise Spy(model, args, peft_config, quantization_config)


def spied(release, tiny_lm, tmp_path, *overrides):
    with pytest.raises(Spy) as caught:
        train(SpySFT(), release, model=ModelSpec(model=str(tiny_lm)), output_dir=tmp_path / "spy",
              options=Options(overrides=[*STEPS, *overrides]))
    return caught.value


def test_the_trainer_gets_the_model_name_and_trls_float32_loading_on_any_device(release, tiny_lm, tmp_path,
                                                                                   monkeypatch):
    """Item 4: curate no longer loads the model (bfloat16 on a GPU, before TRL sees it): TRL
    loads it from its name with ModelConfig's dtype (float32 unless asked), so bf16=True
    trains in autocast over float32 master weights; a user's model_init_kwargs win."""
    import curate.train.run as run

    monkeypatch.setattr(run, "resolve_device", lambda device="auto": "cuda")  # as on a GPU node
    spy = spied(release, tiny_lm, tmp_path, "bf16=false")  # bf16=true: TRL refuses it on this CPU
    assert spy.model == str(tiny_lm)
    assert spy.config.model_init_kwargs == {"revision": "main", "trust_remote_code": False,
                                          "attn_implementation": None, "dtype": "float32"}
    assert spy.peft_config is None and spy.quantization_config is None
    spy = spied(release, tiny_lm, tmp_path, "bf16=false", "dtype=bfloat16", "attn_implementation=sdpa",
                'model_init_kwargs={"attn_implementation": "eager", "low_cpu_mem_usage": true}')
    assert spy.config.model_init_kwargs == {"revision": "main", "trust_remote_code": False,
                                            "dtype": "bfloat16", "attn_implementation": "eager",
                                            "low_cpu_mem_usage": True}


def test_trl_loads_the_model_with_the_options_given(release, tiny_lm, tmp_path):
    import torch

    result = train("sft", release, model=ModelSpec(model=str(tiny_lm)), output_dir=tmp_path / "o",
                   options=Options(overrides=[*STEPS, 'model_init_kwargs={"attn_implementation": "eager"}']))
    model = result.trainer.model
    assert model.dtype == torch.float32 and model.config._attn_implementation == "eager"
    assert result.record["model"]["model_config"]["dtype"] == "float32"
    assert result.record["trl"]["config"]["model_init_kwargs"]["attn_implementation"] == "eager"


def test_model_options_are_trls_and_the_model_spec_ones_name_their_flag(release, tiny_lm, tmp_path):
    with pytest.raises(ConfigError, match=r"--set: unknown SFTConfig or ModelConfig option `lora_rr`; "
                                          r"did you mean `lora_r`\?"):
        train("sft", release, model=ModelSpec(model=str(tiny_lm)), output_dir=tmp_path / "o",
              options=Options(overrides=["lora_rr=4"]))
    with pytest.raises(ConfigError, match=r"^`model_name_or_path` is set by the command line's model "
                                          r"options: give --model instead$"):
        train("sft", release, model=ModelSpec(model=str(tiny_lm)), output_dir=tmp_path / "o",
              options=Options(overrides=["model_name_or_path=other"]))
    with pytest.raises(ConfigError, match=r"SFTConfig and ModelConfig: argument --lora_r/--lora-r: "
                                          r"invalid int value: 'four'"):
        train("sft", release, model=ModelSpec(model=str(tiny_lm)), output_dir=tmp_path / "o",
              options=Options(overrides=["lora_r=four"]))


def test_lora_sft_end_to_end_with_a_validation_split(release, tiny_lm, tmp_path):
    """Item 5: `use_peft` and the `lora_*` options reach TRL's get_peft_config; the adapter is
    what is trained and saved, the record names its config; a seeded validation split is
    evaluated and its loss recorded."""
    result = train("sft", release, model=ModelSpec(model=str(tiny_lm)), output_dir=tmp_path / "lora",
                   options=Options(overrides=[*STEPS, *LORA, "eval_strategy=steps", "eval_steps=1"]),
                   eval_share=0.25, eval_seed=3)
    record = json.loads((tmp_path / "lora/curate-train.json").read_text())
    adapter = record["adapter"]
    assert adapter["peft_type"] == "LORA" and adapter["r"] == 4 and adapter["lora_alpha"] == 8
    assert sorted(adapter["target_modules"]) == ["q_proj", "v_proj"] and adapter["task_type"] == "CAUSAL_LM"
    assert record["model"]["model_config"]["use_peft"] is True
    trainable = [n for n, p in result.trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and ("q_proj" in n or "v_proj" in n) for n in trainable)
    assert (tmp_path / "lora/adapter_config.json").exists()
    assert (tmp_path / "lora/adapter_model.safetensors").exists()
    assert not (tmp_path / "lora/model.safetensors").exists()
    text = load_release(release)["text"]
    assert record["data"]["eval"] == {"share": 0.25, "seed": 3, "rows": round(0.25 * len(text))}
    assert record["data"]["rows"] == len(text) - record["data"]["eval"]["rows"]
    assert math.isfinite(record["result"]["eval"]["eval_loss"])
    logged = [h["eval_loss"] for h in result.trainer.state.log_history if "eval_loss" in h]
    assert len(logged) == 3  # eval_steps=1 over 2 steps, and the final evaluation
    # The same rows are held out for the same eval_seed, whatever TRL's training seed.
    from curate.train.data import read_training_data

    data = read_training_data(release, task="sft")
    a, b = data.hold_out(0.25, seed=3), data.hold_out(0.25, seed=3)
    assert a.eval_dataset["id"] == b.eval_dataset["id"] != data.hold_out(0.25, seed=4).eval_dataset["id"]
    assert not set(a.eval_dataset["id"]) & set(a.dataset["id"])


def test_lora_dpo_end_to_end_uses_the_base_under_the_disabled_adapter_as_reference(release, tiny_lm,
                                                                                    tmp_path):
    result = train(DPO(), release, model=ModelSpec(model=str(tiny_lm)), output_dir=tmp_path / "lora-dpo",
                   options=Options(overrides=[*STEPS, *LORA, "learning_rate=5e-3"]), eval_share=0.1)
    record = result.record
    assert record["adapter"]["r"] == 4 and record["status"] == "finished"
    assert record["notes"]["ref_model"] == "the base model under the disabled adapter (TRL, with use_peft)"
    assert result.trainer.ref_model is None
    losses = record["result"]["losses"]
    assert losses[0] == pytest.approx(math.log(2), abs=1e-3)  # adapter starts at zero: policy == reference
    assert math.isfinite(record["result"]["eval"]["eval_loss"])
    assert (tmp_path / "lora-dpo/adapter_model.safetensors").exists()
