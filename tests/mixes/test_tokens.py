"""Loss tokens count with the one tokenizer loader (curate.models.load_tokenizer) at the
mix's pinned `tokenizer_revision`, loaded once per (name, revision); without generation
markers in the chat template, each assistant turn counts its tokens plus one, capped per
record at `max_length`."""

from __future__ import annotations

import re

import polars as pl
import pytest
from tiny_lm import CHAT_TEMPLATE, build_tiny_tokenizer

import curate.mixes.tokens as tokens
from curate.catalog import MixSpec
from curate.models import load_tokenizer


@pytest.fixture
def loads(monkeypatch, tmp_path):
    folder = build_tiny_tokenizer(tmp_path / "lm")
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


# -- without generation markers: tokens per assistant turn, plus one for its end ----------

WORDS = re.compile(r"\w+|[^\w\s]+")
"""The tiny tokenizer's split (``Whitespace``): one token per word or punctuation run,
an unknown word included (``<unk>``)."""
PARIS = "Paris is the capital of France."
REST = "Rest, fluids and time."
DOCTOR = "See a doctor if the fever is high, zyzzyva."
YES = "yes"
NO = "no, see a doctor if the fever is high."
UNMARKED = CHAT_TEMPLATE.replace("{% generation %}", "").replace("{% endgeneration %}", "")


def _turns(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": role, "content": content} for role, content in pairs]


@pytest.fixture(scope="module")
def conversations() -> pl.DataFrame:
    """A one-turn chat, a two-turn chat, a chat with no answer, a preference record."""
    turns = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
    return pl.DataFrame({
        "messages": [_turns(("user", "What is the capital of France?"), ("assistant", PARIS)),
                     _turns(("user", "How do I treat a cold?"), ("assistant", REST),
                            ("user", "And if it gets worse?"), ("assistant", DOCTOR)),
                     _turns(("user", "Thank you!")),
                     _turns(("user", "Is it?"))],
        "chosen": [None, None, None, _turns(("assistant", YES))],
        "rejected": [None, None, None, _turns(("assistant", NO))],
    }, schema={"messages": turns, "chosen": turns, "rejected": turns})


@pytest.fixture(scope="module")
def unmarked_tokenizers(tmp_path_factory) -> dict[str, str]:
    """The tiny word-level tokenizer without a chat template, and with one that has no
    ``{% generation %}`` markers."""
    root = tmp_path_factory.mktemp("tokenizers")
    return {"none": str(build_tiny_tokenizer(root / "none", chat_template=None)),
            "unmarked": str(build_tiny_tokenizer(root / "unmarked", chat_template=UNMARKED))}


def test_the_expected_turn_counts_follow_the_tokenizers_split():
    # each answer's tokens plus one for the end of its turn
    assert [len(WORDS.findall(t)) + 1 for t in (PARIS, REST, DOCTOR, YES, NO)] == [8, 7, 12, 2, 12]


@pytest.mark.parametrize(("max_length", "expected", "cut"), [
    (None, [8, 7 + 12, 0, 2 + 12], ")"),
    # the cap is on the record's total: 19 -> 10 (capping each turn would give 7 + 10)
    (10, [8, 10, 0, 10], ", max_length 10)"),
], ids=["no-max_length", "max_length-10"])
def test_without_a_chat_template_each_assistant_turn_counts_its_tokens_plus_one(
        conversations, unmarked_tokenizers, max_length, expected, cut):
    tokenizer = unmarked_tokenizers["none"]
    assert tokens.loss_tokens(conversations, tokenizer, max_length=max_length).to_list() == expected
    assert tokens.counting_method(tokenizer, max_length=max_length) == (
        f"tokenizer:{tokenizer} (tokens per assistant turn + 1{cut}")


@pytest.mark.parametrize(("max_length", "expected", "cut"), [
    (None, [8, 7 + 12, 0, 2 + 12], ")"),
    # chats as above; the preference answers each cut at max_length minus the prompt
    # (`<|user|> Is it ? <|assistant|>`: 5 tokens), as DPO cuts them: 2 + min(12, 5)
    (10, [8, 10, 0, 2 + 5], ", max_length 10)"),
], ids=["no-max_length", "max_length-10"])
def test_without_generation_markers_chats_count_per_turn_and_preferences_by_the_template(
        conversations, unmarked_tokenizers, max_length, expected, cut):
    tokenizer = unmarked_tokenizers["unmarked"]
    assert tokens.loss_tokens(conversations, tokenizer, max_length=max_length).to_list() == expected
    assert tokens.counting_method(tokenizer, max_length=max_length) == (
        f"tokenizer:{tokenizer} (tokens per assistant turn + 1; preference completions by chat "
        f"template{cut}")
