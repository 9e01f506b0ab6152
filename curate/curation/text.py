"""The texts stages compare, as Polars expressions over record columns."""

from __future__ import annotations

import polars as pl


def _contents(column: str, role: str | None = None) -> pl.Expr:
    turns = pl.col(column)
    if role is not None:
        turns = turns.list.filter(pl.element().struct.field("role") == role)
    return turns.list.eval(pl.element().struct.field("content")).list.join("\n")


def user_text() -> pl.Expr:
    """The user turns of a record, joined by newlines (what a benchmark question becomes)."""
    return _contents("messages", "user").fill_null("")


def all_text() -> pl.Expr:
    """Every turn of a record (messages, then chosen and rejected answers)."""
    parts = [_contents("messages"), _contents("chosen"), _contents("rejected")]
    return pl.concat_str(parts, separator="\n", ignore_nulls=True).fill_null("")


def _last_turn(column: str, role: str) -> pl.Expr:
    turns = pl.col(column).list.filter(pl.element().struct.field("role") == role)
    return turns.list.last().struct.field("content")


def answer_text() -> pl.Expr:
    """The answer of a record: its last assistant turn, of ``chosen`` for a preference
    record; null when it has none."""
    return (pl.when(pl.col("kind") == "preference").then(_last_turn("chosen", "assistant"))
            .otherwise(_last_turn("messages", "assistant")))


def question_text() -> pl.Expr:
    """The last user turn of a record (null when it has none)."""
    return _last_turn("messages", "user")
