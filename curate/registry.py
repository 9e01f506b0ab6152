"""Named things users write in recipes and on the command line, and where their code is.

One kind of registry serves every extension point: stages (``curate.stages``),
producers (``curate.producers``), generation backends (``curate.backends``), scorers
(``curate.scorers``) and training methods (``curate.train_methods``). Each maps a name
to ``"module:attr"``: curate's own entries are an explicit table in the module that
owns them (lm-eval's model mapping), and another package adds its own through Python
entry points in the same group, the convention pytest and datasets use::

    # the plugin's pyproject.toml
    [project.entry-points."curate.stages"]
    shout = "my_plugin.stages:Shout"

Nothing is imported until a name is asked for, and entry points are read only when a
name is not one of curate's own (or when every name is listed), so ``curate --help``
stays fast. A plugin never replaces one of curate's names: a clash is logged and the
built-in entry wins.
"""

from __future__ import annotations

import difflib
import importlib
import logging
from collections.abc import Iterator, Mapping
from functools import cached_property
from importlib import metadata
from typing import Any, Generic, TypeVar

from curate.errors import ConfigError

log = logging.getLogger(__name__)

T = TypeVar("T")


class Registry(Generic[T]):
    """Names of one ``kind`` (``stage``) -> the objects they name, built-in and plugged in."""

    def __init__(self, kind: str, group: str, builtin: Mapping[str, str]):
        self.kind = kind
        """What the names are, for messages (``stage``, ``backend``)."""
        self.group = group
        """The entry-point group plugins register in (``curate.stages``)."""
        self.builtin = dict(builtin)
        """curate's own names -> ``"module:attr"``."""

    @cached_property
    def plugins(self) -> dict[str, metadata.EntryPoint]:
        """The entry points installed packages declare in ``group`` (read once)."""
        found: dict[str, metadata.EntryPoint] = {}
        for point in metadata.entry_points(group=self.group):
            if point.name in self.builtin:
                log.warning("%s `%s` of %s is also a built-in %s; the built-in one is used",
                            self.kind, point.name, point.value, self.kind)
                continue
            found[point.name] = point
        return found

    def names(self) -> list[str]:
        """Every name: curate's own, in their order, then the plugins', sorted."""
        return [*self.builtin, *sorted(self.plugins)]

    def __contains__(self, name: object) -> bool:
        return name in self.builtin or name in self.plugins

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def where(self, name: str) -> str:
        """``"module:attr"`` of ``name``; a ConfigError with the closest name when unknown."""
        if name in self.builtin:
            return self.builtin[name]
        if name in self.plugins:
            return self.plugins[name].value
        known = self.names()
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        hint = f"; did you mean `{close[0]}`?" if close else f"; known {self.kind}s: {', '.join(known)}"
        raise ConfigError(f"unknown {self.kind} `{name}`{hint}")

    def load(self, name: str) -> T:
        """The object ``name`` names, imported now; a ConfigError when the name is unknown
        or a plugin's code cannot be imported."""
        target = self.where(name)
        if name in self.builtin:
            return _import(target)
        try:
            return _import(target)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"{self.kind} `{name}` ({self.group} entry point) points at `{target}`, "
                              f"which cannot be loaded: {exc}") from None


def _import(target: str) -> Any:
    """The object at ``"module:attr"`` (``attr`` may be dotted)."""
    module, _, attr = target.partition(":")
    value: Any = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        value = getattr(value, part)
    return value
