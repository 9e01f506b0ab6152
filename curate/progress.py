"""Progress events: how long work says how far it is, to whoever draws it.

The library draws nothing. A function that runs for long takes ``progress``, a callable
that receives a ``Tick`` each time a unit of work is done: rows ingested from a source,
shards a stage scored, a part of a stage's work (MinHash signatures, LSH bands,
embeddings), records a producer settled. The command line turns ticks into bars on
stderr; a notebook may log them or ignore them (``progress=None``, the default).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Tick:
    """``done`` of ``total`` units of one piece of work."""

    step: str
    """What runs: ``ingest``, a stage (``near_dedup``) or a producer (``synth_cot``)."""
    part: str | None
    """Which piece of it: the source being ingested, a part of a stage's work (``LSH
    bands``); None for the step as a whole."""
    done: int
    """Units done so far (ingestion: rows read by this run)."""
    total: int | None = None
    """Units in all; None while it is not known."""

    @property
    def name(self) -> str:
        """``step`` or ``step: part``, as a bar is labelled."""
        return self.step if self.part is None else f"{self.step}: {self.part}"


Progress = Callable[[Tick], None]
"""Receives every ``Tick`` of a piece of work."""
