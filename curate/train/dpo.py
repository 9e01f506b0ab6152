"""Direct preference optimisation: a release's ``preference`` data (or any
``prompt``/``chosen``/``rejected`` dataset) into TRL's ``DPOTrainer``, unchanged.

The reference model is a frozen copy of the loaded model (TRL would otherwise reload it
by name, which fails for a model loaded in memory from a local folder).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pkgutil import resolve_name
from typing import Any

from curate.train.data import TrainingData
from curate.train.run import Defaults, TrainMethod


class DPO(TrainMethod):
    """TRL's ``DPOTrainer`` on `prompt`/`chosen`/`rejected` data, against a frozen copy of
    the model. A method whose trainer takes the same reference model (TRL's ``KTOTrainer``,
    which unpairs preference data itself) subclasses it and changes the two classes."""

    name = "dpo"
    task = "dpo"
    config_class = "trl:DPOConfig"
    trainer_class = "trl:DPOTrainer"

    def defaults(self, data: TrainingData, processing_class: Any, given: Mapping[str, Any]) -> Defaults:
        """No option values; the record notes where the reference model comes from."""
        return Defaults(notes={"ref_model": "a frozen copy of the model as loaded"})

    def trainer(self, model: Any, args: Any, data: TrainingData, processing_class: Any) -> Any:
        """``trainer_class`` with ``ref_model``: a frozen copy of ``model``."""
        trainer_class = resolve_name(self.trainer_class)
        return trainer_class(model=model, ref_model=copy.deepcopy(model), args=args,
                             train_dataset=data.dataset, processing_class=processing_class)
