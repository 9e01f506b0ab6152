"""`curate train sft|dpo|merge`."""

from __future__ import annotations

from typing import Any

import click

from curate.cli import Group
from curate.cli.console import json_option, show
from curate.cli.options import config_options, settings
from curate.cli.views import train as view
from curate.config import ModelSpec
from curate.train.merge import MergeConfig, MergeRun
from curate.train.run import Options, TrainFiles

data_argument = click.argument("data", type=click.Path(exists=True))


def training_command(method: str) -> Any:
    """A command that trains with ``method``: DATA, the model (``ModelSpec``), where it goes
    (``TrainFiles``), and TRL's options through ``--config`` and ``--set`` (``Options``)."""
    def decorate(function: Any) -> click.Command:
        for decorator in reversed((
                data_argument, config_options(ModelSpec, at=["model"]),
                config_options(TrainFiles, at=["files"], rename={"output_dir": "out"}),
                config_options(Options, at=["trl"], rename={"config_file": "config", "overrides": "set"}),
                json_option)):
            function = decorator(function)
        return train.command(method)(function)

    return decorate


def run_training(method: str) -> None:
    """The body of `train sft` and `train dpo`: one run of ``method``."""
    from curate.train.run import train as run

    context = click.get_current_context()
    options = settings(context)
    files = TrainFiles.model_validate(options["files"])
    result = run(method, context.params["data"], model=ModelSpec.model_validate(options["model"]),
                 output_dir=files.output_dir, options=Options.model_validate(options.get("trl", {})),
                 release_config=files.release_config, eval_share=files.eval_share, eval_seed=files.eval_seed)
    if result.main_process:  # under `accelerate launch`, one process speaks
        show(result, context.params["as_json"], view.trained)


@click.group(cls=Group)
def train() -> None:
    """Thin training over TRL (SFT, DPO) and mergekit (merging), from releases."""


@training_command("sft")
def train_sft(**_: Any) -> None:
    """Supervised fine-tuning of --model on DATA (a release folder, or a dataset file or
    folder with `messages`, `prompt`/`completion` or `text`) with TRL's SFTTrainer.
    Conversational data trains on the assistant tokens whenever TRL can mask them (the template
    marks them, chat_template_path gives one that does, or TRL has a training template for
    the model's family: Qwen2.5, Llama 3, ...); image_text data takes a vision-language
    model with a processor. The fields of TRL's SFTConfig and ModelConfig (use_peft, lora_r,
    dtype, ...) go through --config (a YAML file) and --set key=value (e.g. --set
    max_steps=100), as `trl sft` takes them."""
    run_training("sft")


@training_command("dpo")
def train_dpo(**_: Any) -> None:
    """Direct preference optimisation of --model on DATA (a release folder, or a dataset
    with `prompt`, `chosen` and `rejected`) with TRL's DPOTrainer; TRL sets up the reference
    model (the base under a disabled adapter with use_peft, else a second copy of --model).
    The fields of TRL's DPOConfig and ModelConfig go through --config and --set."""
    run_training("dpo")


@train.command("merge")
@config_options(MergeConfig, at=["merge"], rename={
    "base_model": "base", "models": "model", "weights": "weight", "densities": "density"})
@config_options(MergeRun, at=["run"], rename={"config_path": "config"})
@json_option
def train_merge(as_json: bool, **_: Any) -> None:
    """Merge fine-tuned models with mergekit (DARE-TIES by default, e.g. a domain SFT
    model with the instruct model over their base): writes OUT/mergekit.yaml, then runs
    mergekit on the CPU (pip install 'curate[merge]'). The merged model gets the first
    model's tokenizer, chat template and generation config unless --tokenizer-source says
    otherwise; --config takes a YAML file of these options (e.g. layer_weights)."""
    from curate.train.merge import merge, read_merge_config

    options = settings(click.get_current_context())
    run = MergeRun.model_validate(options["run"])
    config = read_merge_config(run.config_path, options.get("merge", {}))
    show(merge(config, run), as_json, view.merged)
