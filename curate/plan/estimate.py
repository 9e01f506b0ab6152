"""What training on a release, and evaluating, will cost: FLOPs, accelerator-hours, wall
time, energy, money and emissions, each figure beside the assumption it rests on.

Tokens come from the data (TRL's column shapes: ``messages``; ``prompt``/``chosen``/
``rejected``), counted with the release's documented whitespace estimate (1.3 tokens per
word, plus one per turn), each sequence cut at the training length, then scaled so the
trained-on tokens equal the manifest's loss tokens (its own counting: a tokenizer's when
the recipe named one). The model's size comes from its ``config.json`` (parameters
counted on the meta device, nothing allocated) or from a size such as ``8B`` (a shape is
then assumed: ``layers = (N / (12 * 128^2))^(1/3)``, ``hidden = 128 * layers``).

The arithmetic, for a model of N parameters in matrix multiplies, L layers and hidden
size d, over sequences of s tokens:
- SFT: ``6 N`` FLOPs per token (forward ``2 N``, backward ``4 N``) plus attention,
  ``6 L d s^2`` per sequence (QK^T and AV, ``4 s^2 d`` per layer forward, halved by the
  causal mask, times three for the backward); with activation checkpointing (TRL's
  default) one more forward: ``8 N`` and ``8 L d s^2``;
- DPO: the policy's forward and backward over the chosen and the rejected sequence
  (prompt + answer, each), and the reference model's forward over both: ``8 N`` per
  token plus ``8 L d s^2`` per sequence (``10`` with activation checkpointing);
- evaluation: ``2 N`` FLOPs per token over items x (prompt + output tokens);
- accelerator-hours = FLOPs / (peak FLOP/s x MFU) / 3600; wall time = that / accelerators;
  energy = power x accelerator-hours x PUE; cost = accelerator-hours x price; emissions
  = energy x grid intensity.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from curate.config import Config, read_yaml, validate_model
from curate.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

    from curate.read.releases import Release

TABLE = Path(__file__).with_name("accelerators.yaml")
WORDS_TO_TOKENS = 1.3
"""The release's whitespace estimate (``curate.mixes.tokens``): tokens per word."""
TRL_MAX_LENGTH = 1024
"""TRL's default ``max_length`` (SFTConfig, DPOConfig): the training length when the
recipe names none."""
HEAD_DIM = 128
"""The hidden size per layer assumed for a size without a config: ``hidden = 128 * layers``."""
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMBT])", re.IGNORECASE)
_SCALE = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}
Method = Literal["sft", "dpo"]


class PlanConfig(Config):
    """What `curate plan` assumes: the model, the accelerator and its use, the run."""

    model: str = Field(description=(
        "The model: a local folder with config.json, a hub name (its config.json), or a size such "
        "as `8B`, `72B`, `350M`."))
    revision: str | None = Field(None, description="Hub revision of `model`.")
    trust_remote_code: bool = Field(False, description=(
        "Run code that ships with the model's config (off unless you trust it)."))
    accelerator: str = Field("h100-sxm", description=(
        "The accelerator, a name of the table (h100-sxm, h200, a100-80gb, l40s, mi300x, cpu-core)."))
    accelerators: int = Field(1, ge=1, description="Accelerators the run is spread over (wall time).")
    accelerator_table: str | None = Field(None, description=(
        "A YAML file of accelerators (name: {peak_flops, power_watts, price_per_hour, note}) over the "
        "shipped table."))
    mfu: float = Field(0.4, gt=0, le=1, description=(
        "Model FLOPs utilisation of training: the share of the peak FLOP/s the run achieves."))
    inference_mfu: float = Field(0.1, gt=0, le=1, description=(
        "Model FLOPs utilisation of evaluation (generation is bound by memory, not FLOPs)."))
    price: float | None = Field(None, ge=0, description=(
        "Price per accelerator-hour in USD [default: the table's]."))
    pue: float = Field(1.2, ge=1, description=(
        "Power usage effectiveness of the data centre: facility energy / IT energy."))
    grid_intensity: float = Field(0.4, ge=0, description=(
        "Grid carbon intensity, kg CO2e per kWh (0.4: about the world average)."))
    epochs: float = Field(3.0, gt=0, description="Epochs over the data (TRL's default: 3).")
    activation_checkpointing: bool = Field(True, description=(
        "Activations are recomputed in the backward (TRL's default `gradient_checkpointing`): one more "
        "forward, 8·N FLOPs per trained token instead of 6·N."))
    max_length: int | None = Field(None, ge=1, description=(
        "Training length in tokens: longer sequences are cut [default: the recipe's "
        "`mix.max_length`, else TRL's 1024]."))
    eval_items: int = Field(0, ge=0, description="Evaluation items to plan for (0: no evaluation).")
    eval_prompt_tokens: int = Field(512, ge=0, description="Prompt tokens per evaluation item.")
    eval_output_tokens: int = Field(256, ge=0, description="Generated tokens per evaluation item.")


class Accelerator(Config):
    """One accelerator of the table: its peak, its power and its price."""

    peak_flops: float = Field(gt=0, description="Peak dense bf16 FLOP/s (no sparsity).")
    power_watts: float = Field(gt=0, description="Board power at load, watts.")
    price_per_hour: float = Field(ge=0, description="USD per accelerator-hour.")
    matches: list[str] = Field(default_factory=list, description=(
        "Substrings of the device name a GPU reports (`NVIDIA H100 80GB HBM3`) that mean this entry."))
    note: str = Field("", description="Where the figures come from.")


def read_accelerators(path: str | Path | None = None) -> dict[str, Accelerator]:
    """The shipped table, with the entries of the YAML file ``path`` over it."""
    table: dict[str, Any] = dict(read_yaml(TABLE))
    if path is not None:
        extra = read_yaml(Path(path))
        if not isinstance(extra, dict):
            raise ConfigError(f"{path}: expected a mapping of accelerator names to "
                              "{peak_flops, power_watts, price_per_hour, note}")
        table.update(extra)
    where = str(path or TABLE)
    return {str(name): validate_model(Accelerator, value, where=f"{where}: `{name}`")
            for name, value in table.items()}


def accelerator_named(name: str, table: Mapping[str, Accelerator]) -> Accelerator:
    """The entry ``name`` of ``table``; a ConfigError naming the closest entry otherwise."""
    if name in table:
        return table[name]
    close = [n for n in table if n.startswith(name.lower())] or difflib.get_close_matches(
        name, list(table), n=1, cutoff=0.4)
    hint = f"; did you mean `{close[0]}`?" if close else "."
    raise ConfigError(f"accelerator `{name}` is not in the table ({', '.join(table)}){hint} Add it with "
                      "`--accelerator-table FILE`")


def accelerator_of_device(device_name: str, table: Mapping[str, Accelerator]) -> str | None:
    """The table's name for a device that reports ``device_name`` (None when none matches)."""
    for name, entry in table.items():
        if any(m.lower() in device_name.lower() for m in entry.matches):
            return name
    return None


# -- the model ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelSize:
    """What the FLOPs depend on: parameters in matrix multiplies, layers, hidden size."""

    name: str
    parameters: int
    """Every parameter."""
    matmul_parameters: int
    """Those a token goes through in a matrix multiply: all but an untied input embedding
    (a lookup, no FLOPs)."""
    layers: int
    hidden: int
    source: str
    """Where the figures come from, in words."""


def model_size(model: str, *, revision: str | None = None, trust_remote_code: bool = False) -> ModelSize:
    """The size of ``model``: a size such as ``8B`` (a shape assumed), else the
    ``config.json`` of a local folder or hub name (``curate.models.load_model_config``),
    its parameters counted on the meta device."""
    size = _SIZE.fullmatch(model.strip())
    if size:
        n = int(float(size.group(1)) * _SCALE[size.group(2).upper()])
        layers = max(1, round((n / (12 * HEAD_DIM ** 2)) ** (1 / 3)))
        return ModelSize(model, n, n, layers, HEAD_DIM * layers,
                         f"the size given; shape assumed: {layers} layers of hidden size {HEAD_DIM * layers} "
                         f"(N = 12 L d^2 with d = {HEAD_DIM} L), every parameter in matrix multiplies")
    return size_of_config(model, revision=revision, trust_remote_code=trust_remote_code)


def size_of_config(model: str, *, revision: str | None = None, trust_remote_code: bool = False) -> ModelSize:
    """The size of the model ``config.json`` describes, its parameters counted by building
    the model on the meta device."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    from curate.models import load_model_config

    config = load_model_config(model, revision=revision, trust_remote_code=trust_remote_code,
                               what="model to plan for")
    with torch.device("meta"):
        try:
            network = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
        except ValueError:  # not a causal LM (a vision-language model's own class)
            network = AutoModel.from_config(config, trust_remote_code=trust_remote_code)
    total = sum(p.numel() for p in network.parameters())
    embedding = network.get_input_embeddings().weight
    head = network.get_output_embeddings() if hasattr(network, "get_output_embeddings") else None
    tied = head is not None and head.weight is embedding
    text = config.get_text_config()
    return ModelSize(model, total, total if tied else total - embedding.numel(),
                     int(text.num_hidden_layers), int(text.hidden_size),
                     f"config.json of {model}: {type(config).__name__}, {total:,} parameters"
                     + ("" if tied else f", {embedding.numel():,} of them the input embedding (no FLOPs)"))


# -- the tokens ------------------------------------------------------------------------------

@dataclass(frozen=True)
class PartTokens:
    """One part of the data as a trainer sees it: rows, sequences and tokens per epoch."""

    part: str
    method: Method
    rows: int
    sequences: int
    """Sequences through the model per epoch (DPO: two per pair, chosen and rejected)."""
    loss_tokens: int
    tokens: int
    """Tokens through the model per epoch (prompt and answer, each sequence cut at the training length)."""
    squared_tokens: float
    """The sum over sequences of their length squared (the attention term)."""

    @property
    def mean_sequence(self) -> float:
        """Mean tokens per sequence."""
        return self.tokens / self.sequences if self.sequences else 0.0

    def scaled(self, factor: float) -> PartTokens:
        """The same part with its token counts times ``factor``."""
        return PartTokens(self.part, self.method, self.rows, self.sequences, round(self.loss_tokens * factor),
                          round(self.tokens * factor), self.squared_tokens * factor ** 2)


def count_tokens(table: pa.Table, *, part: str, max_length: int) -> PartTokens:
    """The tokens of ``table`` in one of TRL's shapes (``prompt``/``chosen``/``rejected``: DPO;
    ``messages``, ``prompt``/``completion`` or ``text``: SFT; conversational columns or
    plain strings) by the whitespace estimate, each sequence cut at ``max_length``."""
    import polars as pl

    columns = [c for c in ("messages", "prompt", "chosen", "rejected", "completion", "text")
               if c in table.column_names]
    frame = pl.DataFrame(table.select(columns))

    def estimate(column: str, *, assistant_only: bool = False) -> pl.Series:
        values = frame.get_column(column)
        if values.dtype == pl.String:
            return (values.fill_null("").str.count_matches(r"\S+") * WORDS_TO_TOKENS).round(0)
        turns = values.fill_null([])
        if assistant_only:
            turns = turns.list.eval(pl.element().filter(pl.element().struct.field("role") == "assistant"))
        words = turns.list.eval(pl.element().struct.field("content").str.count_matches(r"\S+")).list.sum()
        return (words.fill_null(0) * WORDS_TO_TOKENS).round(0) + turns.list.len()

    def part_of(method: Method, sequences: pl.Series, loss: pl.Series) -> PartTokens:
        cut = sequences.clip(upper_bound=max_length).cast(pl.Float64)
        return PartTokens(part, method, frame.height, len(cut), int(loss.sum()), int(cut.sum()),
                          float((cut ** 2).sum()))

    if "chosen" in frame.columns:
        prompt, chosen, rejected = (estimate(c) for c in ("prompt", "chosen", "rejected"))
        return part_of("dpo", pl.concat([prompt + chosen, prompt + rejected]), chosen + rejected)
    if "messages" in frame.columns:
        return part_of("sft", estimate("messages"), estimate("messages", assistant_only=True))
    if "completion" in frame.columns:
        completion = estimate("completion")
        return part_of("sft", estimate("prompt") + completion, completion)
    if "text" in frame.columns:
        return part_of("sft", estimate("text"), estimate("text"))
    raise ConfigError(f"`{part}` has none of TRL's columns (messages, prompt/completion, text, "
                      "prompt/chosen/rejected): its tokens cannot be counted")


# -- the figures -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Figure:
    """One figure and the assumption it rests on."""

    name: str
    value: float
    unit: str
    assumption: str


@dataclass(frozen=True)
class Estimate:
    """What one workload costs (training on one part, or an evaluation), figure by figure."""

    workload: str
    flops: float
    accelerator_hours: float
    wall_hours: float
    energy_kwh: float
    cost_usd: float
    emissions_kg: float
    figures: list[Figure] = field(default_factory=list)


def flops_of(part: PartTokens, model: ModelSize, epochs: float, *,
             recompute: bool = False) -> tuple[float, str]:
    """Training FLOPs of ``part`` over ``epochs`` (``recompute``: activation checkpointing,
    one more forward of the trained model) and the formula, in words."""
    train, again = (8, ", the forward again (2N)") if recompute else (6, "")
    per_token, word = ((train + 2, f"policy forward and backward (6N){again} on chosen and rejected, "
                        "reference forward (2N)") if part.method == "dpo"
                       else (train, f"forward and backward{again}"))
    dense = per_token * model.matmul_parameters * part.tokens
    attention = per_token * model.layers * model.hidden * part.squared_tokens
    return epochs * (dense + attention), (
        f"{per_token}·N·tokens ({word}; N = {model.matmul_parameters:.3g}, {part.tokens:,} tokens per epoch) "
        f"+ attention {per_token}·L·d·Σs² (L = {model.layers}, d = {model.hidden}, mean s = "
        f"{part.mean_sequence:,.0f}: {attention / max(dense + attention, 1):.1%} of the total) "
        f"× {epochs:g} epoch{'' if epochs == 1 else 's'}")


def costing(workload: str, flops: float, flops_note: str, *, accelerator: str, entry: Accelerator,
            mfu: float, config: PlanConfig) -> Estimate:
    """The hours, energy, money and emissions of ``flops`` on ``entry`` at ``mfu``."""
    price = entry.price_per_hour if config.price is None else config.price
    hours = flops / (entry.peak_flops * mfu) / 3600
    wall = hours / config.accelerators
    energy = entry.power_watts * hours / 1000 * config.pue
    cost = hours * price
    emissions = energy * config.grid_intensity
    figures = [
        Figure("FLOPs", flops, "FLOP", flops_note),
        Figure("accelerator-hours", hours, "h",
               f"{accelerator}: peak {entry.peak_flops:.3g} FLOP/s × MFU {mfu:g}"),
        Figure("wall time", wall, "h", f"on {config.accelerators} × {accelerator}, perfectly parallel"),
        Figure("energy", energy, "kWh", f"{entry.power_watts:g} W per accelerator × PUE {config.pue:g}"),
        Figure("cost", cost, "USD", f"{price:g} USD per accelerator-hour"
               + (" (the table's)" if config.price is None else " (given)")),
        Figure("emissions", emissions, "kg CO2e", f"{config.grid_intensity:g} kg CO2e per kWh"),
    ]
    return Estimate(workload, flops, hours, wall, energy, cost, emissions, figures)


@dataclass(frozen=True)
class Plan:
    """What training on a release (and an evaluation) costs, with every assumption."""

    release: str | None
    model: ModelSize
    accelerator: str
    accelerator_note: str
    parts: list[PartTokens]
    estimates: list[Estimate]
    assumptions: list[str]

    @property
    def total(self) -> Estimate | None:
        """The sum of every estimate (None when there are none)."""
        if not self.estimates:
            return None
        return Estimate("total", *(sum(getattr(e, k) for e in self.estimates) for k in (
            "flops", "accelerator_hours", "wall_hours", "energy_kwh", "cost_usd", "emissions_kg")))

    def estimate(self, workload: str) -> Estimate:
        """The estimate of ``workload`` (``sft on text``, ``dpo on preference``, ``evaluation``)."""
        return next(e for e in self.estimates if e.workload == workload)

    def to_json(self) -> dict[str, Any]:
        """``curate plan --json``."""
        from dataclasses import asdict

        total = self.total
        return {"release": self.release, "model": asdict(self.model), "accelerator": self.accelerator,
                "accelerator_note": self.accelerator_note,
                "parts": [{**asdict(p), "mean_sequence": p.mean_sequence} for p in self.parts],
                "estimates": [asdict(e) for e in self.estimates],
                "total": None if total is None else asdict(total), "assumptions": self.assumptions}


def plan_parts(parts: Sequence[PartTokens], model: ModelSize, config: PlanConfig, *,
               release: str | None = None, assumptions: Sequence[str] = ()) -> Plan:
    """The plan of training ``model`` on ``parts`` (SFT or DPO each, by its method) and of
    the evaluation ``config`` describes."""
    table = read_accelerators(config.accelerator_table)
    entry = accelerator_named(config.accelerator, table)
    estimates = []
    for part in parts:
        flops, note = flops_of(part, model, config.epochs, recompute=config.activation_checkpointing)
        estimates.append(costing(f"{part.method} on {part.part}", flops, note, accelerator=config.accelerator,
                                 entry=entry, mfu=config.mfu, config=config))
    if config.eval_items:
        tokens = config.eval_items * (config.eval_prompt_tokens + config.eval_output_tokens)
        estimates.append(costing(
            "evaluation", 2 * model.matmul_parameters * tokens,
            f"2·N per token × {config.eval_items:,} items × ({config.eval_prompt_tokens} prompt + "
            f"{config.eval_output_tokens} output tokens); attention and re-reading the prompt per "
            "generated token left out", accelerator=config.accelerator, entry=entry,
            mfu=config.inference_mfu, config=config))
    return Plan(release, model, config.accelerator, entry.note, list(parts), estimates, [
        f"model: {model.source}", *assumptions,
        "full fine-tuning (LoRA saves part of the backward), "
        + ("activation checkpointing (TRL's default: one more forward, 8N per trained token instead of 6N)"
           if config.activation_checkpointing else "no activation checkpointing (6N per trained token)")
        + ", images' tokens not counted"])


def release_parts(release: Release, *, max_length: int | None = None) -> tuple[list[PartTokens], list[str]]:
    """The parts of ``release`` as a trainer sees them (text and image_text: SFT;
    preference: DPO), scaled to the manifest's loss tokens; and the assumptions, in words."""
    return parts_of({config: release.table(config) for config in release.configs}, release.manifest,
                    max_length=max_length)


def parts_of(tables: Mapping[str, pa.Table], manifest: Mapping[str, Any], *,
             max_length: int | None = None) -> tuple[list[PartTokens], list[str]]:
    """The parts of a release whose data are ``tables`` (by config) and whose manifest is
    ``manifest`` (its composition, its counting and its recipe's ``mix.max_length``): the
    tokens of ``count_tokens``, scaled so the loss tokens equal the manifest's; and the
    assumptions, in words."""
    from curate.read.views import Composition

    mix = ((manifest.get("recipe") or {}).get("resolved") or {}).get("mix") or {}
    length = max_length or mix.get("max_length") or TRL_MAX_LENGTH
    counted = [count_tokens(tables[config], part=config, max_length=length) for config in sorted(tables)]
    counted = [p for p in counted if p.rows]
    composition = Composition.from_json(manifest)
    manifest_loss = composition.loss_tokens
    estimated = sum(p.loss_tokens for p in counted)
    factor = manifest_loss / estimated if estimated and manifest_loss else 1.0
    where = ("the argument" if max_length else "the recipe's `mix.max_length`"
             if mix.get("max_length") else "TRL's default")
    return [p.scaled(factor) for p in counted], [
        f"tokens: {WORDS_TO_TOKENS} per word plus one per turn, each sequence cut at {length:,} tokens "
        f"({where}), scaled by {factor:.3f} so the loss tokens equal the manifest's "
        f"{manifest_loss:,} (counting: {composition.budget.counting})"]


def plan_release(path: str | Path, config: PlanConfig) -> Plan:
    """``curate plan``: the cost of training ``config.model`` on the release at ``path``,
    and of the evaluation ``config`` describes."""
    from curate.read.releases import Release

    release = Release.open(path)
    parts, assumptions = release_parts(release, max_length=config.max_length)
    size = model_size(config.model, revision=config.revision, trust_remote_code=config.trust_remote_code)
    return plan_parts(parts, size, config, release=f"{release.name} {release.version}",
                      assumptions=assumptions)


def synthetic_parts(*, method: Method, rows: int, prompt_tokens: int, answer_tokens: int) -> PartTokens:
    """A part of ``rows`` alike rows (for a plan without a release: the published
    figures, the card's table): one answer per SFT row, a chosen and a rejected answer per pair."""
    if method == "dpo":
        sequence = prompt_tokens + answer_tokens
        return PartTokens("preference", "dpo", rows, 2 * rows, 2 * rows * answer_tokens, 2 * rows * sequence,
                          2.0 * rows * sequence ** 2)
    sequence = prompt_tokens + answer_tokens
    return PartTokens("text", "sft", rows, rows, rows * answer_tokens, rows * sequence,
                      float(rows) * sequence ** 2)


def fmt(value: float, unit: str) -> str:
    """A figure for people: three significant digits, the unit after."""
    if unit == "FLOP":
        return f"{value:.3g} FLOP"
    if unit == "h" and value < 1:
        return f"{value * 60:.3g} min" if value * 60 >= 1 else f"{value * 3600:.3g} s"
    if unit == "USD":
        return f"${value:,.2f}" if value >= 0.01 else f"${value:.2g}"
    return f"{value:,.3g} {unit}" if not math.isnan(value) else f"- {unit}"
