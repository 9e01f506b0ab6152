"""Models: one loader for language, vision-language and scoring models, one vLLM engine
builder, and the one scorer hierarchy.

- ``curate.models.loading``: ``load_causal_lm``, ``load_tokenizer``, ``load_image_text_lm``,
  ``load_model_config``
  (hub name at a pinned revision, or local folder), devices, dtypes, the hub probe;
- ``curate.models.vllm``: ``build_llm`` (the one way to start ``vllm.LLM``) and ``close_vllm``;
- ``curate.models.scoring``: the ``Scorer`` base, its transformers and vLLM bases, the
  shared left-padded last-position forward pass and the ``SCORERS`` registry.

Importing this package imports no model library (torch, transformers, vllm load inside
the functions that need them).
"""

from __future__ import annotations

from curate.models.loading import (
    HUB_PROBE_SECONDS,
    free_memory,
    hub_options,
    hub_reachable,
    load_causal_lm,
    load_image_text_lm,
    load_model_config,
    load_processor,
    load_tokenizer,
    looks_local,
    resolve_device,
    resolve_dtype,
)
from curate.models.vllm import build_llm, close_vllm, engine_max_model_len

__all__ = [
    "HUB_PROBE_SECONDS",
    "build_llm",
    "close_vllm",
    "engine_max_model_len",
    "free_memory",
    "hub_options",
    "hub_reachable",
    "load_causal_lm",
    "load_image_text_lm",
    "load_model_config",
    "load_processor",
    "load_tokenizer",
    "looks_local",
    "resolve_device",
    "resolve_dtype",
]
