"""Loss tokens: the assistant tokens a record trains on.

With a tokenizer (hub name or local path), each assistant turn (and each preference
answer) counts its tokens plus one for the end of the turn. Without one, a documented
whitespace estimate: 1.3 tokens per whitespace-separated word, plus one per turn; the
manifest says which was used.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import polars as pl

from curate.errors import ConfigError, MissingDependencyError

WORDS_TO_TOKENS = 1.3
WHITESPACE_ESTIMATE = "whitespace-estimate (1.3 tokens per word)"


def _answers() -> pl.Expr:
    """Every trained-on text of a record: assistant turns, then preference answers."""
    assistant = pl.col("messages").list.filter(pl.element().struct.field("role") == "assistant")
    answers = pl.concat_list(
        assistant.fill_null([]), pl.col("chosen").fill_null([]), pl.col("rejected").fill_null([]))
    return answers.list.eval(pl.element().struct.field("content"))


@cache
def load_tokenizer(name: str) -> Any:
    """The tokenizer ``name`` (cached per process) for counting loss tokens."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise MissingDependencyError("transformers", "ml") from None
    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load tokenizer `{name}`: {exc}") from None


def loss_tokens(records: pl.DataFrame, tokenizer: str | None) -> pl.Series:
    """Loss tokens of each record (UInt64), in order."""
    answers = records.select(answers=_answers()).get_column("answers")
    turns = answers.list.len().fill_null(0)
    if tokenizer is None:
        words = answers.list.eval(pl.element().str.count_matches(r"\S+")).list.sum().fill_null(0)
        return ((words * WORDS_TO_TOKENS).round(0).cast(pl.UInt64) + turns).alias("loss_tokens")
    flat = answers.explode().fill_null("").to_list()
    counted = load_tokenizer(tokenizer)(flat, add_special_tokens=False)["input_ids"]
    lengths = pl.Series([len(ids) for ids in counted], dtype=pl.UInt64)
    owner = pl.Series(range(len(answers)), dtype=pl.UInt32).repeat_by(answers.list.len().clip(1)).explode()
    per_record = pl.DataFrame({"owner": owner, "n": lengths}).group_by("owner").agg(pl.col("n").sum())
    totals = pl.DataFrame({"owner": pl.Series(range(len(answers)), dtype=pl.UInt32)}).join(
        per_record, on="owner", how="left").sort("owner").get_column("n").fill_null(0)
    return (totals + turns.cast(pl.UInt64)).alias("loss_tokens")


def counting_method(tokenizer: str | None) -> str:
    """How loss tokens were counted, as the manifest says it."""
    return WHITESPACE_ESTIMATE if tokenizer is None else f"tokenizer:{tokenizer}"
