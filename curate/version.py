"""The package version, and the installed versions of the packages a result depends on,
in a module of its own so that any layer may read them without importing the package
root (which re-exports functions of the upper layers)."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata

__version__ = "0.1.0"


def installed_versions(names: Iterable[str]) -> dict[str, str | None]:
    """The installed version of each package in ``names`` (None when it is not installed)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions
