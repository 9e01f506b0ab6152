"""Thin training over TRL (SFT, DPO and plugged-in methods) and model merging, from releases.

``TRAIN_METHODS`` maps a method's name (``curate train sft``) to its ``TrainMethod``
class; ``curate.train.run.train`` runs any of them. Importing this package loads nothing
heavy.
"""

from __future__ import annotations

from typing import Any

from curate.registry import Registry

TRAIN_METHODS: Registry[Any] = Registry("train method", "curate.train_methods", {
    "sft": "curate.train.sft:SFT",
    "dpo": "curate.train.dpo:DPO",
})
"""Train method name -> its ``curate.train.run.TrainMethod`` class; another package adds
methods through ``curate.train_methods`` entry points."""
