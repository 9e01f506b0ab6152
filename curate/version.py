"""The package version, in a module of its own so that any module may read it without
importing the package root (which re-exports functions of the upper layers)."""

__version__ = "0.1.0"
