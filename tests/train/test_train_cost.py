"""What training costs: `curate plan` on a release, then a real run whose record carries
the measured wall time, tokens per second, accelerator-hours and energy (where this machine
measures it) beside the plan's estimate for the same run."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from train_fixtures import release_fixture, tiny_lm_fixture  # noqa: F401

from curate.cli import main
from curate.config import ModelSpec
from curate.train.record import read_record
from curate.train.run import Options, train

CPU = ["max_steps=2", "per_device_train_batch_size=4", "max_length=128", "logging_steps=1",
       "save_strategy=no", "report_to=none", "dataloader_num_workers=0"]


def test_plan_prints_every_part_of_a_release_with_its_method_and_assumptions(release, tiny_lm):
    result = CliRunner().invoke(main, ["plan", str(release), "--model", str(tiny_lm), "--accelerator",
                                       "cpu-core", "--accelerators", "2", "--eval-items", "100", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["release"] == "train-tiny 0.1.0" and plan["accelerator"] == "cpu-core"
    assert {(p["part"], p["method"]) for p in plan["parts"]} == {
        ("text", "sft"), ("image_text", "sft"), ("preference", "dpo")}
    preference = next(p for p in plan["parts"] if p["part"] == "preference")
    assert preference["sequences"] == 2 * preference["rows"]  # chosen and rejected
    assert [e["workload"] for e in plan["estimates"]] == [
        "sft on image_text", "dpo on preference", "sft on text", "evaluation"]
    assert all(f["assumption"] for e in plan["estimates"] for f in e["figures"])
    assert plan["total"]["cost_usd"] == pytest.approx(sum(e["cost_usd"] for e in plan["estimates"]))
    assert any("scaled by" in a and "counting: whitespace-estimate" in a for a in plan["assumptions"])
    assert plan["model"]["layers"] == 2 and plan["model"]["hidden"] == 32  # the tiny Llama's config.json
    text = CliRunner().invoke(main, ["plan", str(release), "--model", "8B"], env={"COLUMNS": "200"})
    assert text.exit_code == 0, text.output
    assert "dpo on preference" in text.output and "MFU 0.4" in text.output and "PUE 1.2" in text.output


def test_plan_refuses_an_unknown_accelerator_in_one_line(release):
    result = CliRunner().invoke(main, ["plan", str(release), "--model", "8B", "--accelerator", "h100"])
    assert result.exit_code == 2 and "did you mean `h100-sxm`" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sft", "dpo"])
def test_a_run_records_what_it_spent_beside_the_plans_estimate(method, release, tiny_lm, tmp_path):
    train(method, release, model=ModelSpec(model=str(tiny_lm)), output_dir=tmp_path / "out",
          options=Options(overrides=CPU))
    cost = read_record(tmp_path / "out")["cost"]
    measured, estimate, comparison = cost["measured"], cost["estimate"], cost["comparison"]
    assert measured["device"] == "cpu" and measured["wall_seconds"] > 0
    assert measured["tokens"] > 0  # TRL's count of the non-padding tokens it trained on
    assert measured["tokens_per_second"] == pytest.approx(measured["tokens"] / measured["wall_seconds"])
    assert measured["accelerator_hours"] == pytest.approx(
        measured["wall_seconds"] * measured["accelerators"] / 3600)
    # energy where this machine measures it (RAPL); else the record says why not
    assert (measured["energy_joules"] is None) == measured["energy_source"].startswith("not measured")
    assert estimate["accelerator"] == "cpu-core" and estimate["accelerators"] == measured["accelerators"]
    assert estimate["workload"] == f"{method} on {'preference' if method == 'dpo' else 'text'}"
    assert estimate["flops"] > 0 and estimate["tokens"] > 0 and estimate["assumptions"]
    assert comparison["wall_time_measured_over_estimated"] == pytest.approx(
        measured["wall_seconds"] / (estimate["wall_hours"] * 3600))
    assert comparison["tokens_measured_over_estimated"] == pytest.approx(
        measured["tokens"] / estimate["tokens"], rel=1e-3)
    assert 0 < comparison["achieved_mfu"]


def test_the_card_carries_the_cost_to_train_three_sizes_with_its_assumptions(release):
    card = (release / "README.md").read_text()
    section = card[card.index("## Cost to train"):card.index("## Sources")]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| model")]
    assert [row.split(" | ")[0] for row in rows] == ["| 1B", "| 8B", "| 72B"]
    assert "DPO on `preference`" in section and "SFT on `text`" in section
    assert "3 epochs" in section and "40% MFU and $2.50 per hour" in section and "PUE 1.2" in section
    from curate.read.releases import verify_release

    assert verify_release(release) == []  # the card, hashed in the manifest, is the one written
