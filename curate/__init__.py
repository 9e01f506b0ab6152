"""curate: catalogs of data sources in, versioned and audited post-training dataset releases out.

Importing curate is cheap: heavy libraries load inside the functions that need them.
"""

from curate.errors import (
    ConfigError,
    CurateError,
    MissingDependencyError,
    RecordError,
    SourceError,
)

__version__ = "0.1.0"


def load_release(path):  # noqa: ANN001, ANN201 (re-exported lazily: importing curate stays cheap)
    """The release at ``path`` as a ``datasets.DatasetDict`` (see ``curate.mixes.release``)."""
    from curate.mixes.release import load_release as load

    return load(path)


__all__ = [
    "ConfigError",
    "CurateError",
    "MissingDependencyError",
    "RecordError",
    "SourceError",
    "__version__",
    "load_release",
]
