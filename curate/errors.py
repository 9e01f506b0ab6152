"""The errors curate raises on purpose. Each tells the caller what to do next."""

from __future__ import annotations


class CurateError(Exception):
    """Base of every error curate raises deliberately."""


class ConfigError(CurateError):
    """Bad user input (a catalog, a recipe, an option): the user fixes it."""


class RecordError(ConfigError):
    """A table of records breaks the schema; the message names the row and the column."""


class SourceError(CurateError):
    """One source (or one shard of it) failed; other sources go on."""


class MissingDependencyError(CurateError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, package: str, extra: str):
        super().__init__(
            f"`{package}` is not installed; install it with: pip install 'curate[{extra}]'"
        )
        self.package = package
        self.extra = extra
