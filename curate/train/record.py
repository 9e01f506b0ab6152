"""What a training run trained on, written beside the model it produced.

``<output_dir>/curate-train.json`` holds the method (``method``: its name; ``task``: the
data contract it checked), the data (path, format, rows, and for a release its name,
version, config and the sha256 of its manifest.json; the validation rows held out), the
model (name, revision and TRL's ``ModelConfig``), the adapter (the PEFT config, or None)
and the quantisation, the processes (``distributed``: world size and accelerate's
distributed type), the TRL config class with the options given, the defaults curate chose
and the resolved config, the method's notes, the package versions, and, once training
ends, the result (steps, loss per logged step, runtime, and the validation metrics) and the
cost (``cost``: wall time, tokens per second, accelerator-hours and energy where the machine
measures it, beside ``curate plan``'s estimate for the same run, and their ratios). It is
written before training starts (``status: started``) and rewritten at the end
(``finished``), so a crashed run still says what it was training on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curate.version import installed_versions

if TYPE_CHECKING:
    from curate.config import ModelSpec
    from curate.plan.measure import Meter
    from curate.train.data import TrainingData

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


def run_cost(meter: Meter, trainer: Any, data: TrainingData, model: ModelSpec) -> dict[str, Any]:
    """What the run spent (``meter`` stopped now) beside what ``curate plan`` estimates for
    the same run: the same data, cut at the run's ``max_length``, over the epochs it
    trained, on the accelerator it ran on (a CPU: ``cpu-core`` per thread), at the plan's
    default utilisation; and their ratios."""
    from dataclasses import asdict

    import torch

    from curate.plan.estimate import (
        TRL_MAX_LENGTH,
        PlanConfig,
        accelerator_of_device,
        count_tokens,
        model_size,
        plan_parts,
        read_accelerators,
    )

    args = trainer.args
    table = read_accelerators()
    if args.device.type == "cuda":
        device = torch.cuda.get_device_name(args.device)
        accelerators, accelerator = args.world_size, accelerator_of_device(device, table)
    else:
        device, accelerator = args.device.type, "cpu-core"
        accelerators = torch.get_num_threads() * args.world_size
    logged = [h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h]
    measured = meter.stop(device=device, accelerators=accelerators,
                          tokens=int(logged[-1]) if logged else None)
    if "RAPL" in measured.energy_source:
        measured.notes.append("RAPL counts every process on the CPU packages, not this run's alone")
    epochs = float(trainer.state.epoch or 0)
    part = count_tokens(data.dataset.with_format("arrow")[:],
                        part=(data.release or {}).get("config") or data.format,
                        max_length=getattr(args, "max_length", None) or TRL_MAX_LENGTH)
    record: dict[str, Any] = {"measured": asdict(measured), "estimate": None, "comparison": None}
    if accelerator is None or not epochs:
        record["estimate_missing"] = (f"`{device}` is not in the accelerator table" if accelerator is None
                                      else "the run trained no epoch")
        return record
    config = PlanConfig(model=model.model, revision=model.revision, trust_remote_code=model.trust_remote_code,
                        accelerator=accelerator, accelerators=accelerators, epochs=epochs,
                        activation_checkpointing=bool(getattr(args, "gradient_checkpointing", False)))
    plan = plan_parts([part], model_size(model.model, revision=model.revision,
                                         trust_remote_code=model.trust_remote_code), config)
    estimate = plan.estimates[0]
    peak = table[accelerator].peak_flops
    record["estimate"] = {**asdict(estimate), "accelerator": accelerator, "accelerators": accelerators,
                          "mfu": config.mfu, "tokens": round(part.tokens * epochs),
                          "assumptions": plan.assumptions}
    wall = measured.wall_seconds
    record["comparison"] = {
        "wall_time_measured_over_estimated": (wall / (estimate.wall_hours * 3600)
                                              if estimate.wall_hours else None),
        "achieved_mfu": estimate.flops / (wall * accelerators * peak) if wall else None,
        "tokens_measured_over_estimated": (measured.tokens / (part.tokens * epochs)
                                           if measured.tokens and part.tokens else None),
        "energy_measured_over_estimated": (measured.energy_kwh / (estimate.energy_kwh / config.pue)
                                           if measured.energy_kwh and estimate.energy_kwh else None),
    }
    return record
