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
    with pytest.raises(ConfigError, match=r"`rescale` applies to dare_ties, not `ties`"):
        merge_config(method="ties", base_model="b", models=["a"], weights=[1.0], densities=[0.5],
                     rescale=False)
    with pytest.raises(ConfigError, match=r"give one weight per model \(--weight\), or `layer_weights`, "
                                          r"not both"):
        merge_config(models=["a"], base_model="b", weights=[1.0], layer_weights=[[0.1, 0.9]], densities=[1.0])
    # Every option reaches mergekit's own schema.
    full = merge_config(method="dare_ties", base_model="base", models=["a", "b"],
                        layer_weights=[[0.2, 0.8], [1.0]], densities=[0.5, 0.5], rescale=False,
                        int8_mask=True, out_dtype="bfloat16", tokenizer_source="b", chat_template="chatml")
    with pytest.raises(ConfigError, match=r"give `tokenizer_from` .* or `tokenizer_source` .*, not both"):
        merge_config(models=["a"], weights=[1.0], method="linear", tokenizer_from="a",
                     tokenizer_source="base")
    assert full["models"][0]["parameters"]["weight"] == [0.2, 0.8]
    assert full["parameters"] == {"normalize": True, "rescale": False, "int8_mask": True}
    assert (full["out_dtype"], full["tokenizer_source"], full["chat_template"]) == ("bfloat16", "b", "chatml")
    parsed = MergeConfiguration.model_validate(full)
    assert parsed.tokenizer_source.model.path == "b" and parsed.out_dtype == "bfloat16"


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


def chat_model(folder, seed, *, template, eos):
    """A tiny model of the shared vocabulary with its own chat template and stop token."""
    import json

    from tiny_lm import build_tiny_lm
    from transformers import GenerationConfig

    build_tiny_lm(folder, seed=seed)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["chat_template"] = template
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    GenerationConfig(bos_token_id=2, eos_token_id=eos, pad_token_id=1).save_pretrained(folder)
    return folder


CHAT = "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} </s> {% endfor %}"
BASE = "{{ messages[0]['content'] }}"


def test_a_dare_ties_merge_keeps_the_fine_tuned_models_tokenizer_template_and_stop_tokens(tmp_path):
    """Issue 27, item 7: mergekit alone copies the base's tokenizer_config.json,
    chat_template and generation_config.json (merge.py: _copy_tokenizer); curate's merge
    carries the fine-tuned models'."""
    import json

    from transformers import AutoTokenizer, GenerationConfig

    base = chat_model(tmp_path / "base", 0, template=BASE, eos=0)
    a = chat_model(tmp_path / "a", 1, template=CHAT, eos=[3, 5])
    b = chat_model(tmp_path / "b", 2, template=CHAT, eos=[3, 5])
    config = MergeConfig(method="dare_ties", base_model=str(base), models=[str(a), str(b)],
                         weights=[0.5, 0.5], densities=[0.5, 0.5], seed=0)
    out = run_merge(config, tmp_path / "merged")
    assert AutoTokenizer.from_pretrained(out).chat_template == CHAT
    assert GenerationConfig.from_pretrained(out).eos_token_id == [3, 5]
    assert AutoTokenizer.from_pretrained(out).get_vocab() == AutoTokenizer.from_pretrained(a).get_vocab()
    recorded = json.loads((out / "curate-merge.json").read_text())
    assert recorded["tokenizer_from"] == recorded["generation_config_from"] == str(a)
    assert "tokenizer_source" not in recorded["mergekit"]  # the weights are merged as they are
    assert json.loads((out / "config.json").read_text())["vocab_size"] == json.loads(
        (a / "config.json").read_text())["vocab_size"]
    named = run_merge(config.model_copy(update={"chat_template": "chatml"}), tmp_path / "chatml")
    assert "<|im_start|>" in AutoTokenizer.from_pretrained(named).chat_template  # mergekit's own template
    assert GenerationConfig.from_pretrained(named).eos_token_id == [3, 5]
    # From another model, or mergekit's own `tokenizer_source: base`.
    other = run_merge(config.model_copy(update={"tokenizer_from": str(base)}), tmp_path / "from-base")
    assert AutoTokenizer.from_pretrained(other).chat_template == BASE
    assert GenerationConfig.from_pretrained(other).eos_token_id == 0
    asked = run_merge(config.model_copy(update={"tokenizer_source": "base"}), tmp_path / "as-base")
    assert AutoTokenizer.from_pretrained(asked).chat_template == BASE
    assert json.loads((asked / "curate-merge.json").read_text())["generation_config_from"] is None


def _delta(out, base, key="model.layers.0.mlp.up_proj.weight"):
    from safetensors.torch import load_file

    return load_file(out / "model.safetensors")[key] - load_file(base / "model.safetensors")[key]


def test_dares_random_drop_keeps_a_seeded_share_and_rescales_to_the_l1_norm(tmp_path):
    """DARE's drop, measured: with one model over the base, the merged task vector keeps a
    Bernoulli(density) share of the entries; without `rescale` they are the task vector's own
    entries, with it (mergekit's default) they are scaled back to its L1 norm. The same seed
    gives the same merge; `int8_mask` changes only the mask's dtype."""
    import torch
    from tiny_lm import build_tiny_lm

    base, a = build_tiny_lm(tmp_path / "base", seed=0), build_tiny_lm(tmp_path / "a", seed=1)
    task = _delta(a, base)

    def merged(name, **options):
        config = MergeConfig(method="dare_ties", base_model=str(base), models=[str(a)], weights=[1.0],
                             densities=[0.3], **{"seed": 0, **options})
        return _delta(run_merge(config, tmp_path / name), base)

    plain = merged("plain", rescale=False)
    kept = plain != 0
    assert 0.25 < kept.float().mean().item() < 0.35  # 2,048 entries, density 0.3
    torch.testing.assert_close(plain[kept], task[kept])
    rescaled = merged("rescaled")
    assert torch.equal(rescaled != 0, kept)  # the same seed drops the same entries
    torch.testing.assert_close(rescaled.abs().sum(), task.abs().sum(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(rescaled[kept], task[kept] * task.abs().sum() / task[kept].abs().sum())
    assert torch.equal(merged("int8", rescale=False, int8_mask=True), plain)
    assert not torch.equal(merged("seed1", rescale=False, seed=1) != 0, kept)


def test_per_layer_weights_and_the_output_dtype_reach_mergekit(tmp_path):
    import torch
    from safetensors.torch import load_file
    from tiny_lm import build_tiny_lm

    a, b = build_tiny_lm(tmp_path / "a", seed=1), build_tiny_lm(tmp_path / "b", seed=2)
    (tmp_path / "merge.yaml").write_text(yaml.safe_dump({"layer_weights": [[1.0, 0.0], [0.0, 1.0]]}))
    from curate.train.merge import read_merge_config

    options = {"method": "linear", "models": [str(a), str(b)], "normalize": False, "out_dtype": "bfloat16"}
    config = read_merge_config(tmp_path / "merge.yaml", options)
    out = run_merge(config, tmp_path / "merged")
    merged, wa, wb = (load_file(p / "model.safetensors") for p in (out, a, b))
    first, last = "model.layers.0.mlp.up_proj.weight", "model.layers.1.mlp.up_proj.weight"
    assert merged[first].dtype == torch.bfloat16
    torch.testing.assert_close(merged[first], wa[first].to(torch.bfloat16))  # layer 0: all of a
    torch.testing.assert_close(merged[last], wb[last].to(torch.bfloat16))  # the last layer: all of b
