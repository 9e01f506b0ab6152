"""Merging with mergekit: configs checked by mergekit's own schema, and real merges of
tiny models built from a config."""

from __future__ import annotations

import pytest
import yaml

from curate.config import validate_model
from curate.errors import ConfigError
from curate.train.merge import MergeConfig, run_merge


def merge_config(**options):
    """mergekit's mapping for ``options``, validated as the command line validates them."""
    return validate_model(MergeConfig, options, where="options").mergekit()


def test_configs_are_mergekit_yaml_and_bad_ones_fail_in_one_line():
    config = merge_config(method="dare_ties", base_model="base", models=["a", "b"], weights=[0.6, 0.4],
                          densities=[0.5, 0.7])
    assert config == {"merge_method": "dare_ties", "base_model": "base", "dtype": "float32",
                      "models": [{"model": "a", "parameters": {"weight": 0.6, "density": 0.5}},
                                 {"model": "b", "parameters": {"weight": 0.4, "density": 0.7}}],
                      "parameters": {"normalize": True}}
    from mergekit.config import MergeConfiguration

    assert MergeConfiguration.model_validate(config).merge_method == "dare_ties"
    with pytest.raises(ConfigError, match=r"`dare_ties` merges task vectors against a base model: "
                                          r"give --base"):
        merge_config(method="dare_ties", models=["a"], weights=[1.0], densities=[0.5])
    with pytest.raises(ConfigError, match=r"needs one density per model"):
        merge_config(method="dare_ties", base_model="base", models=["a", "b"], weights=[1, 1],
                     densities=[0.5])
    with pytest.raises(ConfigError, match=r"one weight per model: 2 models, 1 weights"):
        merge_config(method="linear", models=["a", "b"], weights=[1.0])


@pytest.mark.parametrize("method", ["linear", "dare_ties"])
def test_mergekit_merges_two_tiny_models(tmp_path, method):
    import torch
    from safetensors.torch import load_file
    from tiny_lm import build_tiny_lm

    base, a, b = (build_tiny_lm(tmp_path / name, seed=seed)
                  for name, seed in (("base", 0), ("a", 1), ("b", 2)))
    config = MergeConfig(method=method, base_model=str(base) if method == "dare_ties" else None,
                         models=[str(a), str(b)], weights=[0.5, 0.5],
                         densities=[1.0, 1.0] if method == "dare_ties" else None, seed=0)
    out = run_merge(config, tmp_path / "merged")
    assert yaml.safe_load((out / "mergekit.yaml").read_text())["merge_method"] == method
    merged, wa, wb, w0 = (load_file(p / "model.safetensors") for p in (out, a, b, base))
    key = "model.layers.0.mlp.up_proj.weight"
    if method == "linear":
        expected = (wa[key] + wb[key]) / 2
    else:  # density 1 keeps every task-vector entry; TIES sign election then averages agreeing ones
        delta = torch.stack([wa[key] - w0[key], wb[key] - w0[key]])
        sign = torch.sign(delta.sum(0))
        keep = (torch.sign(delta) == sign).float()
        expected = w0[key] + (delta * keep).sum(0) / keep.sum(0).clamp(min=1)
    torch.testing.assert_close(merged[key], expected, atol=1e-5, rtol=1e-4)
    assert (out / "tokenizer_config.json").exists()


def test_the_cli_writes_a_config_mergekit_accepts(tmp_path):
    from click.testing import CliRunner

    from curate.cli import main

    result = CliRunner().invoke(main, ["train", "merge", "--method", "dare_ties", "--base", "b",
                                       "--model", "a",
                                       "--weight", "1", "--density", "0.5", "--out", str(tmp_path),
                                       "--config-only"])
    assert result.exit_code == 0, result.output
    written = yaml.safe_load((tmp_path / "mergekit.yaml").read_text())
    assert written["models"] == [{"model": "a", "parameters": {"weight": 1.0, "density": 0.5}}]
    result = CliRunner().invoke(main, ["train", "merge", "--model", "a", "--weight", "1",
                                       "--out", str(tmp_path)])
    assert result.exit_code == 2 and "give --base" in result.output
