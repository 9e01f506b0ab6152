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
