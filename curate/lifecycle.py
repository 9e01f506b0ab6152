"""The one lifecycle of everything that holds a model (or a connection): ``setup`` and ``teardown``.

Pipeline steps, generation backends, scorers and the safety judge all derive from
``Lifecycle`` (NeMo Curator's ``ProcessingStage`` hooks): ``setup`` loads what the work
needs and ``teardown`` frees it (GPU memory included), so the next piece of work can load
its own. Used as a context manager, an object is set up on entry and torn down on exit,
also when the block fails; ``running`` does the same for a step whose ``setup`` takes an
argument (the engine's ``StageContext``).

When a model loads follows from when the object is built: a pipeline step is built when a
recipe is read, long before (and often without) its work, so it loads in ``setup``;
backends, scorers and the judge are built right where they are used, so they load when
built and their ``setup`` has nothing left to do. Either way ``teardown`` frees the model,
and an object must tolerate ``teardown`` with nothing loaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self, TypeVar


class Lifecycle:
    """``setup`` before the work, ``teardown`` after it; ``with thing:`` calls both."""

    def setup(self) -> None:
        """Load what the work needs (models, indexes, connections); called once before it."""

    def teardown(self) -> None:
        """Free what ``setup`` or the work loaded; called once after it, also when it failed."""

    def __enter__(self) -> Self:
        self.setup()
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()


L = TypeVar("L", bound=Lifecycle)


@contextmanager
def running(thing: L, *setup_args: Any) -> Iterator[L]:
    """``thing`` set up (``setup(*setup_args)``: a pipeline step takes its ``StageContext``)
    for the work inside the block, and torn down after it, also when the work failed."""
    thing.setup(*setup_args)
    try:
        yield thing
    finally:
        thing.teardown()
