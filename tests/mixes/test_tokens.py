"""Loss tokens count with the one tokenizer loader (curate.models.load_tokenizer) at the
mix's pinned `tokenizer_revision`, loaded once per (name, revision)."""

from __future__ import annotations

import polars as pl
import pytest
from tiny_lm import build_tiny_lm

import curate.mixes.tokens as tokens
from curate.catalog import MixSpec
from curate.models import load_tokenizer


@pytest.fixture
def loads(monkeypatch, tmp_path):
    folder = build_tiny_lm(tmp_path / "lm")
    calls = []

    def recording(name, *, revision=None, trust_remote_code=False, what="model"):
        calls.append((name, revision, what))
        return load_tokenizer(str(folder))

    monkeypatch.setattr(tokens, "load_tokenizer", recording)
    tokens.counting_tokenizer.cache_clear()
    yield calls
    tokens.counting_tokenizer.cache_clear()


def test_the_tokenizer_revision_reaches_the_loader_once_per_name_and_revision(loads):
    turns = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
    records = pl.DataFrame({"messages": [[{"role": "user", "content": "Why?"},
                                          {"role": "assistant", "content": "Paris is the capital"}]],
                            "chosen": [None], "rejected": [None]},
                           schema_overrides={"chosen": turns, "rejected": turns})
    counted = tokens.loss_tokens(records, "owner/tok", revision="abc123").to_list()
    assert counted[0] > 0
    assert tokens.loss_tokens(records, "owner/tok", revision="abc123").to_list() == counted
    method = tokens.counting_method("owner/tok", revision="abc123")
    assert method.startswith("tokenizer:owner/tok@abc123 (")
    tokens.loss_tokens(records, "owner/tok")
    assert tokens.counting_method("owner/tok").startswith("tokenizer:owner/tok (")
    assert loads == [("owner/tok", "abc123", "tokenizer"), ("owner/tok", None, "tokenizer")]


def test_a_mix_pins_its_tokenizer_revision():
    spec = MixSpec(targets={"general": 1.0}, tokenizer="owner/tok", tokenizer_revision="abc123")
    assert spec.tokenizer_revision == "abc123"
    assert MixSpec(targets={"general": 1.0}).tokenizer_revision is None
