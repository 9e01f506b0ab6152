"""Generation backends and synthetic chain-of-thought enhancement.

- ``curate.synth.config``: the backends' options and ``SynthCotConfig`` (pydantic only);
- ``curate.synth.backend``: ``Request``, ``Completion``, ``Backend``, ``make_backend(name,
  **options)`` over ``vllm``, ``openai``, ``transformers`` and ``offline``;
- ``curate.synth.cot``: ``synth_cot_v1``, as a pipeline step (``SynthCot``) and as
  functions (``enhance``, ``enhance_file``).

``PRODUCERS`` maps the names of a recipe's ``synth`` section to their steps.

Importing this package loads nothing: no model library, no HTTP client, no Arrow.
"""

from __future__ import annotations

from typing import Any

from curate.registry import Registry

PRODUCERS: Registry[Any] = Registry("producer", "curate.producers", {
    "cot": "curate.synth.cot:SynthCot",
})
"""Producer name (a recipe's ``synth`` key) -> its ``curate.engine.stage.Producer`` class;
another package adds producers through ``curate.producers`` entry points."""
