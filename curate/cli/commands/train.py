"""`curate train sft|dpo|merge`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from curate.cli import Group
from curate.cli.console import console


@click.group(cls=Group)
def train() -> None:
    """Thin training over TRL (SFT, DPO) and mergekit (merging), from releases."""


def _training_command(task: str) -> Callable[[Callable[..., None]], click.Command]:
    """The shared arguments of `train sft` and `train dpo`; TRL's options go through
    --config (a YAML file of the config class's fields) and --set key=value."""
    config = "SFTConfig" if task == "sft" else "DPOConfig"

    def wrap(function: Callable[..., None]) -> click.Command:
        for option in reversed([
            click.argument("data", type=click.Path(exists=True)),
            click.option("--model", "model_name", required=True,
                         help="Model to train: a hub name (pin --revision) or a local folder."),
            click.option("--revision", default=None, help="Hub revision (commit, tag or branch) of --model."),
            click.option("--trust-remote-code", is_flag=True, help="Let the model run its own code."),
            click.option("--out", "output_dir", required=True, type=click.Path(file_okay=False),
                         help="Folder for the trained model, its tokenizer and curate-train.json."),
            click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
                         default=None,
                         help=f"YAML file of TRL {config} fields (e.g. learning_rate: 2.0e-5)."),
            click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                         help=f"Set one TRL {config} field, over --config (repeatable), e.g. "
                              "--set max_steps=100 --set packing=true."),
            click.option("--release-config", default=None,
                         help="For a release: which part to train on (text, image_text, preference) "
                              f"[default: {'text' if task == 'sft' else 'preference'}]."),
        ]):
            function = option(function)
        return train.command(task)(function)
    return wrap


def _train_args(model_name: str, revision: str | None, trust_remote_code: bool, config_file: str | None,
                overrides: tuple[str, ...]) -> tuple[Any, Any]:
    from curate.train.run import ModelSpec, Options

    return (ModelSpec(model_name, revision, trust_remote_code),
            Options(config_file=config_file, overrides=overrides))


def _print_training(result: Any) -> None:
    record = result.record
    release = record["data"]["release"]
    data = (f"release {release['name']} {release['version']} ({release['config']}, manifest "
            f"{release['manifest_sha256'][:12]})" if release else record["data"]["path"])
    done = record["result"]
    console().print(f"[bold]{record['task']}[/] on {data}: {done['global_step']:,} steps, "
                     f"training loss {done['training_loss']:.4f}; model and curate-train.json in "
                     f"{result.output_dir}")


@_training_command("sft")
def train_sft(data: str, model_name: str, revision: str | None, trust_remote_code: bool, output_dir: str,
              config_file: str | None, overrides: tuple[str, ...], release_config: str | None) -> None:
    """Supervised fine-tuning of --model on DATA (a release folder, or a dataset file or
    folder with `messages`, `prompt`/`completion` or `text`) with TRL's SFTTrainer.
    Conversational data trains on the assistant tokens when the chat template marks them;
    image_text data takes a vision-language model with a processor."""
    from curate.train.sft import train_sft as run

    model, options = _train_args(model_name, revision, trust_remote_code, config_file, overrides)
    _print_training(run(data, model=model, output_dir=output_dir, options=options,
                        release_config=release_config))


@_training_command("dpo")
def train_dpo(data: str, model_name: str, revision: str | None, trust_remote_code: bool, output_dir: str,
              config_file: str | None, overrides: tuple[str, ...], release_config: str | None) -> None:
    """Direct preference optimisation of --model on DATA (a release folder, or a dataset
    with `prompt`, `chosen` and `rejected`) with TRL's DPOTrainer; the reference model is
    a frozen copy of --model."""
    from curate.train.dpo import train_dpo as run

    model, options = _train_args(model_name, revision, trust_remote_code, config_file, overrides)
    _print_training(run(data, model=model, output_dir=output_dir, options=options,
                        release_config=release_config))


@train.command("merge")
@click.option("--method", type=click.Choice(["linear", "task_arithmetic", "ties", "dare_ties"]),
              default="dare_ties", show_default=True, help="mergekit merge method.")
@click.option("--base", "base_model", default=None,
              help="Base model the task vectors are taken against (task_arithmetic, ties, dare_ties).")
@click.option("--model", "models", multiple=True, required=True,
              help="A model to merge: hub name or local folder (repeatable).")
@click.option("--weight", "weights", multiple=True, type=float, required=True,
              help="Weight of each --model, in the same order (repeatable).")
@click.option("--density", "densities", multiple=True, type=click.FloatRange(0, 1, min_open=True),
              help="Share of each --model's task vector kept (ties, dare_ties), in --model order.")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default="float32",
              show_default=True, help="dtype mergekit computes and writes in.")
@click.option("--seed", type=int, default=None, help="Seed of DARE's random drop.")
@click.option("--out", "output_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for mergekit.yaml and the merged model.")
@click.option("--config-only", is_flag=True,
              help="Write mergekit.yaml (checked by mergekit) without merging.")
def train_merge(method: str, base_model: str | None, models: tuple[str, ...], weights: tuple[float, ...],
                densities: tuple[float, ...], dtype: str, seed: int | None, output_dir: str,
                config_only: bool) -> None:
    """Merge fine-tuned models with mergekit (DARE-TIES by default, e.g. a domain SFT
    model with the instruct model over their base): writes OUT/mergekit.yaml, then runs
    mergekit on the CPU (pip install 'curate[merge]')."""
    from curate.train.merge import merge_config, run_merge, write_merge_config

    config = merge_config(method=method, base_model=base_model, models=list(models),  # type: ignore[arg-type]
                          weights=list(weights), densities=list(densities) or None, dtype=dtype,  # type: ignore[arg-type]
                          seed=seed)
    if config_only:
        console().print(f"mergekit config written to {write_merge_config(config, output_dir)}")
        return
    console().print(f"[bold]merged[/] {len(models)} models ({method}) into {run_merge(config, output_dir)}")
