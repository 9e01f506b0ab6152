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
from curate.version import __version__


def load_release(path):  # noqa: ANN001, ANN201 (re-exported lazily: importing curate stays cheap)
    """The release at ``path`` as a ``datasets.DatasetDict`` (see ``curate.read.releases``)."""
    from curate.read.releases import load_release as load

    return load(path)


def open_run(path, **options):  # noqa: ANN001, ANN003, ANN201 (re-exported lazily, as above)
    """The run at ``path`` (a run folder to query, or a recipe to build) as a
    ``curate.pipeline.run.Run``: ``open_run(folder).decisions()`` is every stage's decisions
    as a Polars LazyFrame, ``.duckdb()`` the same as DuckDB views."""
    from curate.pipeline.run import open_run as open_

    return open_(path, **options)


__all__ = [
    "ConfigError",
    "CurateError",
    "MissingDependencyError",
    "RecordError",
    "SourceError",
    "__version__",
    "load_release",
    "open_run",
]
