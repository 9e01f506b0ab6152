"""A train method is one object run by one flow: the registry names SFT and DPO, and a
method defined outside curate (here, in this file) trains end to end without a change
to curate, given as an object or plugged in by name through an entry point."""

from __future__ import annotations

import math
from importlib import metadata

import pytest
from test_readme_stage import readme_namespace
from train_fixtures import release_fixture, tiny_lm_fixture  # noqa: F401  (fixtures)

from curate.config import ModelSpec
from curate.errors import ConfigError
from curate.train import TRAIN_METHODS
from curate.train.dpo import DPO
from curate.train.run import Defaults, Options, TrainMethod, train
from curate.train.sft import SFT

STEPS = ["max_steps=2", "per_device_train_batch_size=4", "max_length=64", "logging_steps=1",
         "save_strategy=no", "report_to=none"]


KTO = readme_namespace("A train method")["KTO"]
"""The README's example: TRL's KTOTrainer on a release's preference pairs (TRL unpairs them),
with the reference TRL sets up as for DPO: DPO's data and reference, other TRL classes."""


class ShortSFT(SFT):
    """SFT with a default of its own on top of SFT's: short sequences."""

    name = "short_sft"

    def defaults(self, data, processing_class, given) -> Defaults:
        chosen = super().defaults(data, processing_class, given)
        return Defaults({**chosen.values, "max_length": 16},
                        {**chosen.notes, "max_length": "16: a short-sequence method"})


def test_the_registry_resolves_sft_and_dpo_and_suggests_a_name_for_a_typo(tmp_path):
    assert TRAIN_METHODS.load("sft") is SFT and TRAIN_METHODS.load("dpo") is DPO
    assert TRAIN_METHODS.names()[:2] == ["sft", "dpo"]
    assert all(issubclass(TRAIN_METHODS.load(name), TrainMethod) for name in ("sft", "dpo"))
    with pytest.raises(ConfigError, match=r"^unknown train method `sfd`; did you mean `sft`\?$"):
        TRAIN_METHODS.load("sfd")
    with pytest.raises(ConfigError, match=r"unknown train method `reward`; known train methods: sft, dpo"):
        train("reward", tmp_path / "missing.jsonl", model=ModelSpec(model="m"), output_dir=tmp_path / "o")


def test_a_method_defined_outside_curate_trains_through_the_same_flow(release, tiny_lm, tmp_path):
    result = train(ShortSFT(), release, model=ModelSpec(model=str(tiny_lm)), output_dir=tmp_path / "short",
                   options=Options(overrides=[s for s in STEPS if not s.startswith("max_length")]))
    record = result.record
    assert record["method"] == "short_sft" and record["task"] == "sft"
    assert record["trl"]["config_class"] == "SFTConfig" and record["trl"]["config"]["max_length"] == 16
    assert record["trl"]["curate_defaults"]["max_length"] == 16
    assert record["notes"]["max_length"] == "16: a short-sequence method"
    assert record["trl"]["config"]["assistant_only_loss"] is True  # SFT's own default still applies
    assert all(len(ids) <= 16 for ids in result.trainer.train_dataset[:8]["input_ids"])
    assert record["result"]["global_step"] == 2
    # The user's value still wins over the method's default.
    given = train(ShortSFT(), release, model=ModelSpec(model=str(tiny_lm)), output_dir=tmp_path / "given",
                  options=Options(overrides=STEPS))
    assert given.record["trl"]["config"]["max_length"] == 64


def test_a_plugged_in_method_runs_by_name_from_an_entry_point(release, tiny_lm, tmp_path, monkeypatch):
    point = metadata.EntryPoint(name="kto", value=f"{__name__}:KTO", group=TRAIN_METHODS.group)
    monkeypatch.setitem(TRAIN_METHODS.__dict__, "plugins", {"kto": point})  # as if a package declared it
    assert TRAIN_METHODS.names() == ["sft", "dpo", "kto"] and TRAIN_METHODS.load("kto") is KTO
    result = train("kto", release, model=ModelSpec(model=str(tiny_lm)), output_dir=tmp_path / "kto",
                   options=Options(overrides=STEPS))
    record = result.record
    assert record["method"] == "kto" and record["data"]["release"]["config"] == "preference"
    assert record["trl"]["config_class"] == "KTOConfig" and type(result.trainer).__name__ == "KTOTrainer"
    assert record["notes"] == {"ref_model": "a separate copy of the model, loaded by TRL from its name with "
                                            "model_init_kwargs"}
    assert record["status"] == "finished" and record["result"]["global_step"] == 2
    assert all(math.isfinite(x) for x in record["result"]["losses"])
    # TRL unpaired the 40 pairs: a desirable and an undesirable completion each.
    assert len(result.trainer.train_dataset) == 80
