"""Generation backends and synthetic chain-of-thought enhancement.

``make_backend(name, **options)`` builds a backend (``vllm``, ``openai``,
``transformers``, ``offline``); ``enhance`` / ``enhance_file`` run ``synth_cot_v1``.
Importing this package loads no model library and no HTTP client.
"""

from curate.synth.backend import (
    BACKENDS,
    Backend,
    BackendError,
    Completion,
    GeneratorConfig,
    Request,
    generator_config,
    make_backend,
)
from curate.synth.cot import (
    CotFileResult,
    CotResult,
    SynthCotConfig,
    default_cache_dir,
    enhance,
    enhance_file,
    read_records,
)

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "Completion",
    "CotFileResult",
    "CotResult",
    "GeneratorConfig",
    "Request",
    "SynthCotConfig",
    "default_cache_dir",
    "enhance",
    "enhance_file",
    "generator_config",
    "make_backend",
    "read_records",
]
