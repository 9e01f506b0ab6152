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

__all__ = [
    "ConfigError",
    "CurateError",
    "MissingDependencyError",
    "RecordError",
    "SourceError",
    "__version__",
]
