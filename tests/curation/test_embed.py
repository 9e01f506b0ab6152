"""The embedder's precisions: bfloat16 under autocast stays on the float32 vectors, ``auto``
follows the CPU, the cache keeps the two apart, and ONNX refuses bfloat16."""

from __future__ import annotations

import json

import numpy as np
import pytest

from curate.catalog import resolve_data_root
from curate.curation import embed as embedding
from curate.curation.embed import EmbeddingCache, embed, resolve_precision
from curate.errors import ConfigError


@pytest.fixture(scope="module")
def questions() -> list[str]:
    """Real MedQuAD questions and question+answer texts (the lengths the stages embed)."""
    rows = [json.loads(line) for line in (resolve_data_root() / "medical/medquad/medquad_sample_1500.jsonl")
            .read_text().splitlines()[:60]]
    return [r["question"] for r in rows[:40]] + [r["question"] + "\n" + r["answer"] for r in rows[40:]]


def test_bfloat16_vectors_stay_on_the_float32_ones(questions):
    full = embed(questions, max_tokens=128, precision="float32")
    half = embed(questions, max_tokens=128, precision="bfloat16")
    assert half.dtype == np.float32 and half.shape == full.shape
    assert not np.array_equal(full, half)  # really another computation
    assert (full * half).sum(axis=1).min() >= 0.9999


def test_auto_takes_bfloat16_only_for_torch_on_a_cpu_that_has_it(monkeypatch):
    monkeypatch.setattr(embedding, "native_bfloat16", lambda: True)
    assert (resolve_precision("auto", "torch"), resolve_precision("auto", "onnx")) == ("bfloat16", "float32")
    monkeypatch.setattr(embedding, "native_bfloat16", lambda: False)
    assert resolve_precision("auto", "torch") == "float32"
    assert resolve_precision("bfloat16", "torch") == "bfloat16"
    with pytest.raises(ConfigError, match=r"precision `bfloat16` needs the `torch` backend"):
        resolve_precision("bfloat16", "onnx")
    with pytest.raises(ConfigError, match=r"precision `half` is not one of: auto, float32, bfloat16"):
        resolve_precision("half", "torch")  # type: ignore[arg-type]


def test_the_cache_keeps_precisions_apart(questions, tmp_path):
    texts = questions[:5]
    full = embed(texts, max_tokens=128, precision="float32", cache=tmp_path)
    half = embed(texts, max_tokens=128, precision="bfloat16", cache=tmp_path)
    store = EmbeddingCache(tmp_path)
    assert len(store) == 10
    store.close()
    assert np.array_equal(embed(texts, max_tokens=128, precision="bfloat16", cache=tmp_path), half)
    assert np.array_equal(embed(texts, max_tokens=128, cache=tmp_path), full)
