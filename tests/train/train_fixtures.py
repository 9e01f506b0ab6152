"""Fixtures for training tests: one small release built by build-mix per session (text,
image_text and preference parts) and a tiny Llama whose vocabulary covers it.

Test modules import the fixtures from here (a conftest.py in this folder would shadow
tests/conftest.py, which other modules import by name). Each is built once per session:
the first call writes it under the session's base temporary folder, later calls (from
any module) find it there."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from curate.catalog import resolve_data_root
from curate.pipeline.build import build_mix
from curate.pipeline.run import open_run

# A preference source made from real Dolly rows: the chosen answer is the row's own
# response, the rejected one the response of the next row (an answer to another question).
PREFS_ENTRY = """
name: dolly_prefs
version: 1
license: CC-BY-SA-3.0
domain: general
task: preference
location: {{path: {path}}}
allow_outside_data_root: true
mapping: {{kind: preference, prompt: prompt, chosen: chosen, rejected: rejected}}
"""
RECIPE = """
name: train-tiny
version: "0.1.0"
sources: [dolly, dolly_prefs, vqa_rad_24]
stages:
  exact_dedup: {}
"""
VQA_ROWS = 24
DATA = resolve_data_root()


def write_yaml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def _once(tmp_path_factory, name: str) -> tuple[Path, bool]:
    """The session's folder ``name`` and whether it is already built."""
    folder = tmp_path_factory.getbasetemp() / name
    return folder, (folder / ".done").exists()


@pytest.fixture(scope="session", name="release")
def release_fixture(tmp_path_factory) -> Path:
    """A release with `text` (Dolly), `preference` (Dolly pairs) and `image_text` (VQA-RAD,
    its first rows) data, built by build-mix from a recipe written here."""
    tmp, done = _once(tmp_path_factory, "train-release")
    if done:
        return Path((tmp / ".done").read_text())
    tmp.mkdir(exist_ok=True)
    rows = [json.loads(line) for line in (DATA / "general/dolly/dolly_151.jsonl").read_text().splitlines()]
    pairs = [{"prompt": a["instruction"], "chosen": a["response"], "rejected": b["response"]}
             for a, b in zip(rows[:40], rows[1:41], strict=True)]
    (tmp / "prefs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    vqa = (DATA / "multimodal/vqa_rad/vqa_rad_pairs.jsonl").read_text().splitlines()[:VQA_ROWS]
    images = DATA / "multimodal/vqa_rad"
    lines = []
    for line in vqa:
        row = json.loads(line)
        row["image"] = str(images / row["image"])
        lines.append(json.dumps(row) + "\n")
    (tmp / "vqa.jsonl").write_text("".join(lines))
    write_yaml(tmp / "catalog/sources/dolly_prefs.yaml", PREFS_ENTRY.format(path=tmp / "prefs.jsonl"))
    vqa_entry = (Path(__file__).parents[2] / "catalogs/sources/vqa_rad.yaml").read_text()
    vqa_entry = vqa_entry.replace("multimodal/vqa_rad/vqa_rad_pairs.jsonl", str(tmp / "vqa.jsonl")).replace(
        "name: vqa_rad", "name: vqa_rad_24") + "allow_outside_data_root: true\n"
    write_yaml(tmp / "catalog/sources/vqa_rad_24.yaml", vqa_entry)
    recipe = write_yaml(tmp / "train-tiny.yaml", RECIPE)
    run = open_run(recipe, catalog_dirs=[tmp / "catalog"], runs_dir=tmp / "runs")
    path = build_mix(run, releases_dir=tmp / "releases").release.path
    (tmp / ".done").write_text(str(path))
    return path


@pytest.fixture(scope="session", name="tiny_lm")
def tiny_lm_fixture(release, tmp_path_factory) -> Path:
    """A tiny random Llama (tests/tiny_lm.py) whose word-level vocabulary covers the release."""
    from tiny_lm import build_tiny_lm

    from curate.read.releases import load_release

    folder, done = _once(tmp_path_factory, "train-tiny-lm")
    if done:
        return folder
    parts = load_release(release)
    texts = [m["content"] for row in parts["text"]["messages"] for m in row]
    texts += [m["content"] for col in ("prompt", "chosen", "rejected") for row in parts["preference"][col]
              for m in row]
    build_tiny_lm(folder, texts=texts)
    (folder / ".done").write_text("")
    return folder


CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}<|im_end|>{% endgeneration %}\n"
    "{% else %}{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_bpe_lm(folder: Path, texts: list[str], *, vocab_size: int = 1500,
                 chat_template: str = CHATML) -> Path:
    """A byte-level BPE tokenizer trained on ``texts`` with a chat template (default: ChatML
    that marks assistant content), and a tiny random Llama of its vocabulary, saved in
    ``folder`` (tokens merge across word boundaries here, unlike tests/tiny_lm.py's
    word-level one)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"], model_max_length=4096)
    tokenizer.chat_template = chat_template
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=4,
                                         pad_token_id=tokenizer.pad_token_id,
                                         eos_token_id=tokenizer.eos_token_id))
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder


def dolly_texts() -> list[str]:
    """Every instruction and response of the real Dolly slice."""
    rows = [json.loads(line) for line in (DATA / "general/dolly/dolly_151.jsonl").read_text().splitlines()]
    return [r[k] for r in rows for k in ("instruction", "context", "response") if r[k]]
