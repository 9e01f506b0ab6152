"""What an evaluation spent, beside what ``curate plan`` estimates for it.

The record (``results.json``'s ``cost``) holds the measured scoring time, items per
second, accelerator-hours and energy where the machine measures it (``curate.plan.measure``),
and the plan's inference estimate for the same items: ``2 N`` FLOPs per token over the
prompts (the whitespace estimate of the rendered prompts) and the generated output, at the
plan's inference utilisation, on the device the model ran on. Models served elsewhere
(``openai``) or written by the offline backend have no local cost to measure or estimate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from curate.plan.estimate import WORDS_TO_TOKENS, PlanConfig, model_size, plan_parts, read_accelerators
from curate.plan.measure import Meter


def words(text: str) -> int:
    """Whitespace-separated words of ``text``."""
    return len(text.split())


def device_of(model: Any) -> tuple[str, int, str | None]:
    """Where a backend's model runs: the device, how many of it, the accelerator table's name."""
    import torch

    from curate.models import resolve_device
    from curate.plan.estimate import accelerator_of_device

    if model.backend == "vllm":
        name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cuda"
        return name, int(model.tensor_parallel_size), accelerator_of_device(name, read_accelerators())
    device = resolve_device(model.device)
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name(device)
        return name, 1, accelerator_of_device(name, read_accelerators())
    return device, torch.get_num_threads(), "cpu-core" if device == "cpu" else None


def evaluation_cost(meter: Meter, model: Any, prompts: Sequence[str],
                    outputs: Sequence[str]) -> dict[str, Any]:
    """The measured cost of scoring ``prompts`` (``meter`` stopped now) with ``model`` (a
    backend's options) and generating ``outputs``, beside the plan's estimate for them."""
    if model.backend not in ("transformers", "vllm"):
        measured = meter.stop(device=f"{model.backend} backend", accelerators=0)
        return {"measured": asdict(measured), "estimate": None, "comparison": None,
                "estimate_missing": f"the `{model.backend}` backend runs no model here"}
    device, accelerators, accelerator = device_of(model)
    prompt_tokens = sum(round(words(p) * WORDS_TO_TOKENS) for p in prompts)
    output_tokens = sum(round(words(o) * WORDS_TO_TOKENS) for o in outputs)
    measured = meter.stop(device=device, accelerators=accelerators, tokens=prompt_tokens + output_tokens)
    measured.notes.append("tokens: the whitespace estimate of the prompts and outputs (1.3 per word)")
    record: dict[str, Any] = {"measured": asdict(measured), "estimate": None, "comparison": None}
    if accelerator is None or not prompts:
        record["estimate_missing"] = f"`{device}` is not in the accelerator table" if prompts else "no items"
        return record
    items = len(prompts)
    config = PlanConfig(model=model.model, revision=getattr(model, "revision", None),
                        accelerator=accelerator, accelerators=accelerators, eval_items=items,
                        eval_prompt_tokens=round(prompt_tokens / items),
                        eval_output_tokens=round(output_tokens / items))
    plan = plan_parts([], model_size(model.model, revision=config.revision), config)
    estimate = plan.estimate("evaluation")
    peak = read_accelerators()[accelerator].peak_flops
    wall = measured.wall_seconds
    record["estimate"] = {**asdict(estimate), "accelerator": accelerator, "accelerators": accelerators,
                          "mfu": config.inference_mfu, "tokens": prompt_tokens + output_tokens,
                          "assumptions": plan.assumptions}
    record["comparison"] = {
        "wall_time_measured_over_estimated": (wall / (estimate.wall_hours * 3600)
                                              if estimate.wall_hours else None),
        "achieved_mfu": estimate.flops / (wall * accelerators * peak) if wall else None,
        "energy_measured_over_estimated": (measured.energy_kwh / (estimate.energy_kwh / config.pue)
                                           if measured.energy_kwh and estimate.energy_kwh else None),
    }
    return record
