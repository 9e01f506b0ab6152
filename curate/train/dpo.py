"""Direct preference optimisation: a release's ``preference`` data (or any
``prompt``/``chosen``/``rejected`` dataset, conversational or plain strings) into TRL's
``DPOTrainer``, unchanged.

The reference model is TRL's choice, made from the model's name as TRL's own script makes
it: with an adapter (``use_peft``), the base model under the disabled adapter; without,
a second copy TRL loads with the same ``model_init_kwargs`` (and shards like the policy
under DeepSpeed or FSDP). The record notes which.
"""

from __future__ import annotations

from typing import Any

from curate.train.run import TrainMethod


class DPO(TrainMethod):
    """TRL's ``DPOTrainer`` on `prompt`/`chosen`/`rejected` data. A method whose trainer
    takes the same data and sets up its reference the same way (TRL's ``KTOTrainer``,
    which unpairs preference data itself) subclasses it and changes the two classes."""

    name = "dpo"
    task = "dpo"
    config_class = "trl:DPOConfig"
    trainer_class = "trl:DPOTrainer"

    def describe(self, trainer: Any) -> dict[str, str]:
        """Where TRL's trainer took the reference model from."""
        return {"ref_model": reference_of(trainer)}


def reference_of(trainer: Any) -> str:
    """How a TRL preference trainer (DPO, KTO) set up its reference model."""
    from accelerate.utils import is_peft_model

    if getattr(trainer, "ref_model", None) is not None:
        return "a separate copy of the model, loaded by TRL from its name with model_init_kwargs"
    if is_peft_model(trainer.accelerator.unwrap_model(trainer.model)):
        return "the base model under the disabled adapter (TRL, with use_peft)"
    return "none kept: TRL precomputes the reference log-probabilities (precompute_ref_log_probs)"
