"""`curate plan`'s arithmetic: model sizes, token counts, FLOPs, hours, energy, money,
emissions, the accelerator table, and the published safety-alignment figures."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from curate.errors import ConfigError
from curate.plan.estimate import (
    PlanConfig,
    count_tokens,
    model_size,
    plan_parts,
    read_accelerators,
    synthetic_parts,
)


def turn(role, content):
    return {"role": role, "content": content}


def test_a_size_names_its_parameters_and_an_assumed_shape():
    size = model_size("8B")
    assert size.parameters == size.matmul_parameters == 8_000_000_000
    assert (size.layers, size.hidden) == (34, 34 * 128)  # (8e9 / (12 * 128^2))^(1/3) = 34.4
    assert "shape assumed" in size.source
    assert model_size("350M").parameters == 350_000_000
    assert model_size("1.5b").parameters == 1_500_000_000


def test_a_config_is_counted_on_the_meta_device_like_the_model_it_builds(tmp_path):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=False)
    config.save_pretrained(tmp_path)  # config.json alone: no weights
    size = model_size(str(tmp_path))
    torch.manual_seed(0)
    real = sum(p.numel() for p in LlamaForCausalLM(config).parameters())
    assert size.parameters == real
    assert size.matmul_parameters == real - 1000 * 64  # the untied input embedding is a lookup
    assert (size.layers, size.hidden) == (3, 64)


def test_a_missing_config_folder_is_a_user_error(tmp_path):
    with pytest.raises(ConfigError, match="no such folder"):
        model_size(str(tmp_path / "nowhere"))


def test_tokens_are_counted_per_sequence_and_cut_at_the_training_length():
    chat = pa.table({"messages": [[turn("user", "one two three"), turn("assistant", "four five six seven")],
                                  [turn("user", "a " * 100), turn("assistant", "b " * 100)]]})
    part = count_tokens(chat, part="text", max_length=200)
    # row 1: 7 words * 1.3 = 9.1 -> 9, plus 2 turns = 11; row 2: 260 + 2 = 262, cut at 200
    assert (part.method, part.rows, part.sequences, part.tokens) == ("sft", 2, 2, 11 + 200)
    assert part.loss_tokens == (5 + 1) + (130 + 1)  # assistant words * 1.3, plus one per turn
    assert part.squared_tokens == 11 ** 2 + 200 ** 2
    pairs = pa.table({"prompt": [[turn("user", "why is it so")]],
                      "chosen": [[turn("assistant", "because it is")]],
                      "rejected": [[turn("assistant", "no")]]})
    pair = count_tokens(pairs, part="preference", max_length=1024)
    # prompt 5 + 1, chosen 4 + 1, rejected 1 + 1: sequences 11 and 8
    assert (pair.method, pair.sequences, pair.tokens, pair.loss_tokens) == ("dpo", 2, 19, 7)


def test_sft_and_dpo_flops_follow_the_stated_formulas():
    config = PlanConfig(model="1B", accelerator="h100-sxm", epochs=2, mfu=0.5, pue=1.5, grid_intensity=0.3,
                        accelerators=4, activation_checkpointing=False)
    size = model_size("1B")
    sft = synthetic_parts(method="sft", rows=100, prompt_tokens=50, answer_tokens=150)
    dpo = synthetic_parts(method="dpo", rows=100, prompt_tokens=50, answer_tokens=150)
    plan = plan_parts([sft, dpo], size, config)
    n, layers, d = size.matmul_parameters, size.layers, size.hidden
    assert plan.estimate("sft on text").flops == pytest.approx(
        2 * (6 * n * 100 * 200 + 6 * layers * d * 100 * 200 ** 2))
    # DPO: chosen and rejected sequences, policy forward and backward (6) plus reference forward (2)
    assert plan.estimate("dpo on preference").flops == pytest.approx(
        2 * (8 * n * 200 * 200 + 8 * layers * d * 200 * 200 ** 2))
    sft_cost = plan.estimate("sft on text")
    hours = sft_cost.flops / (9.89e14 * 0.5) / 3600
    assert sft_cost.accelerator_hours == pytest.approx(hours)
    assert sft_cost.wall_hours == pytest.approx(hours / 4)
    assert sft_cost.energy_kwh == pytest.approx(0.7 * hours * 1.5)
    assert sft_cost.cost_usd == pytest.approx(2.5 * hours)
    assert sft_cost.emissions_kg == pytest.approx(0.7 * hours * 1.5 * 0.3)
    assert [f.name for f in sft_cost.figures] == ["FLOPs", "accelerator-hours", "wall time", "energy", "cost",
                                                  "emissions"]
    assert all(f.assumption for f in sft_cost.figures)  # every figure beside its assumption
    assert "MFU 0.5" in sft_cost.figures[1].assumption and "PUE 1.5" in sft_cost.figures[3].assumption
    assert plan.total is not None and plan.total.cost_usd == pytest.approx(
        sft_cost.cost_usd + plan.estimate("dpo on preference").cost_usd)
    # activation checkpointing (TRL's default) runs the trained model's forward once more
    again = plan_parts([sft, dpo], size, config.model_copy(update={"activation_checkpointing": True}))
    assert again.estimate("sft on text").flops == pytest.approx(sft_cost.flops * 8 / 6)
    assert again.estimate("dpo on preference").flops == pytest.approx(
        plan.estimate("dpo on preference").flops * 10 / 8)
    assert "the forward again (2N)" in again.estimate("sft on text").figures[0].assumption


def test_an_evaluation_costs_two_n_per_token_at_the_inference_utilisation():
    config = PlanConfig(model="8B", eval_items=1000, eval_prompt_tokens=400, eval_output_tokens=100,
                        inference_mfu=0.1)
    plan = plan_parts([], model_size("8B"), config)
    evaluation = plan.estimate("evaluation")
    assert evaluation.flops == 2 * 8e9 * 1000 * 500
    assert evaluation.accelerator_hours == pytest.approx(evaluation.flops / (9.89e14 * 0.1) / 3600)


def test_the_accelerator_table_is_overridden_by_a_file_and_names_the_closest_entry(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("h100-sxm: {peak_flops: 9.89e+14, power_watts: 700, price_per_hour: 1.8}\n"
                    "tpu-v5p: {peak_flops: 4.59e+14, power_watts: 450, price_per_hour: 4.2, note: mine}\n")
    table = read_accelerators(mine)
    assert table["h100-sxm"].price_per_hour == 1.8 and table["tpu-v5p"].note == "mine"
    assert table["a100-80gb"].peak_flops == 3.12e14  # the shipped entries stay
    part = synthetic_parts(method="sft", rows=10, prompt_tokens=10, answer_tokens=10)
    plan = plan_parts([part], model_size("1B"), PlanConfig(model="1B", accelerator="tpu-v5p",
                                                           accelerator_table=str(mine)))
    assert "4.2 USD per accelerator-hour" in plan.estimates[0].figures[4].assumption
    with pytest.raises(ConfigError, match="did you mean `h100-sxm`"):
        plan_parts([part], model_size("1B"), PlanConfig(model="1B", accelerator="h100"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("x: {peak_flops: 1, power_watt: 1, price_per_hour: 1}\n")
    with pytest.raises(ConfigError, match="did you mean `power_watts`"):
        read_accelerators(bad)


# The published figure: safety alignment by DPO on 2,000 preference pairs costs about $3
# on an 8B model and about $20 on a 72B one. Assumed here (and in the README): each pair
# has a 150-token adversarial prompt and chosen and rejected answers of 400 tokens each
# (two sequences of 550 tokens), 3 epochs and activation checkpointing (TRL's defaults),
# full fine-tuning on H100s at 40% MFU and $2.50 per H100-hour.
PAIRS, PROMPT, ANSWER = 2000, 150, 400
PUBLISHED = {"8B": 3.0, "72B": 20.0}


@pytest.mark.parametrize("size", sorted(PUBLISHED))
def test_safety_alignment_of_2000_pairs_lands_within_the_published_order_of_magnitude(size):
    part = synthetic_parts(method="dpo", rows=PAIRS, prompt_tokens=PROMPT, answer_tokens=ANSWER)
    assert part.tokens == 2 * PAIRS * (PROMPT + ANSWER)  # 2.2M tokens per epoch
    plan = plan_parts([part], model_size(size), PlanConfig(model=size))
    cost = plan.estimates[0].cost_usd
    # 8B: 10 * 8e9 * 2.2e6 * 3 = 5.3e17 FLOPs (+1% attention) -> 0.37 H100-hours -> $0.94;
    # 72B: 4.8e18 FLOPs -> 3.4 H100-hours -> $8.4
    assert 0.1 < cost / PUBLISHED[size] < 10, f"{size}: ${cost:.2f} against the published ${PUBLISHED[size]}"
    assert math.floor(math.log10(cost)) >= math.floor(math.log10(PUBLISHED[size])) - 1


def test_the_72b_run_costs_about_nine_times_the_8b_run_as_its_parameters_do():
    part = synthetic_parts(method="dpo", rows=PAIRS, prompt_tokens=PROMPT, answer_tokens=ANSWER)
    small, large = (plan_parts([part], model_size(s), PlanConfig(model=s)).estimates[0].cost_usd
                    for s in ("8B", "72B"))
    assert 8.5 < large / small < 9.5  # published: $20 / $3 = 6.7
