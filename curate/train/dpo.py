"""Direct preference optimisation: a release's ``preference`` data (or any
``prompt``/``chosen``/``rejected`` dataset) into TRL's ``DPOTrainer``, unchanged.

The reference model is a frozen copy of the loaded model (TRL would otherwise reload it
by name, which fails for a model loaded in memory from a local folder).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from curate.train.data import TrainingData
from curate.train.record import TrainResult
from curate.train.run import ModelSpec, Options, train


def train_dpo(data: str | Path, *, model: ModelSpec, output_dir: str | Path, options: Options | None = None,
              release_config: str | None = None) -> TrainResult:
    """DPO of ``model`` on ``data`` (a release folder or a dataset file/folder); the
    model, tokenizer and ``curate-train.json`` go to ``output_dir``."""
    return train("dpo", data, model=model, output_dir=output_dir, options=options or Options(),
                 config_class=_config_class, make_trainer=_trainer, release_config=release_config,
                 defaults_for=_defaults)


def _config_class() -> type:
    from trl import DPOConfig

    return DPOConfig


def _defaults(data: TrainingData, processing_class: Any,
              given: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return {}, {"ref_model": "a frozen copy of the model as loaded"}


def _trainer(model: Any, args: Any, data: TrainingData, processing_class: Any) -> Any:
    from trl import DPOTrainer

    return DPOTrainer(model=model, ref_model=copy.deepcopy(model), args=args, train_dataset=data.dataset,
                      processing_class=processing_class)
