"""What a training run trained on, written beside the model it produced.

``<output_dir>/curate-train.json`` holds the method (``method``: its name; ``task``: the
data contract it checked), the data (path, format, rows, and for a release its name,
version, config and the sha256 of its manifest.json; the validation rows held out), the
model (name, revision and TRL's ``ModelConfig``), the adapter (the PEFT config, or None)
and the quantisation, the processes (``distributed``: world size and accelerate's
distributed type), the TRL config class with the options given, the defaults curate chose
and the resolved config, the method's notes, the package versions, and, once training
ends, the result (steps, loss per logged step, runtime, and the validation metrics). It is
written before training starts (``status: started``) and rewritten at the end
(``finished``), so a crashed run still says what it was training on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.version import installed_versions

RECORD = "curate-train.json"
PACKAGES = ("curate", "trl", "transformers", "torch", "datasets", "accelerate", "tokenizers", "peft",
            "mergekit")


@dataclass
class TrainResult:
    """A finished run: where the model is, its record, and the TRL trainer (for callers
    that inspect the prepared dataset or the log history)."""

    output_dir: Path
    record: dict[str, Any]
    trainer: Any
    main_process: bool = True
    """False in the other processes of a distributed run (``accelerate launch``): only the
    main one writes the record and says the result."""

    @property
    def method(self) -> str:
        """The train method that ran (``sft``, ``dpo``, a plugin's)."""
        return str(self.record["method"])

    @property
    def trained_on(self) -> str:
        """What it trained on: the release (name, version, config, manifest hash) or the path."""
        data = self.record["data"]
        release = data["release"]
        if not release:
            return str(data["path"])
        return (f"release {release['name']} {release['version']} ({release['config']}, manifest "
                f"{release['manifest_sha256'][:12]})")

    @property
    def steps(self) -> int:
        """Optimizer steps taken."""
        return int(self.record["result"]["global_step"])

    @property
    def training_loss(self) -> float:
        """The mean training loss TRL reports."""
        return float(self.record["result"]["training_loss"])

    def to_json(self) -> dict[str, Any]:
        """``curate train --json``: where the model is, and the run record."""
        return {"output_dir": str(self.output_dir), "record": self.record}


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a run depends on (missing ones left out)."""
    return {name: v for name, v in installed_versions(PACKAGES).items() if v is not None}


def write_record(output_dir: str | Path, record: dict[str, Any]) -> Path:
    """Write ``record`` as ``output_dir/curate-train.json``; its path."""
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RECORD
    path.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n", "utf-8")
    return path


def read_record(output_dir: str | Path) -> dict[str, Any]:
    """The record of the run in ``output_dir``."""
    return json.loads((Path(output_dir) / RECORD).read_text("utf-8"))


def training_result(trainer: Any, output: Any) -> dict[str, Any]:
    """Steps, final training loss, the loss of every logged step and the runtime."""
    history = trainer.state.log_history
    return {"global_step": output.global_step, "training_loss": output.training_loss,
            "losses": [h["loss"] for h in history if "loss" in h],
            "train_runtime": output.metrics.get("train_runtime"),
            "num_input_tokens_seen": trainer.state.num_input_tokens_seen}
