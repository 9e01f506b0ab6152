"""Retrieval: a contamination-safe index of solved examples, MedPrompt-style few-shot
prompts and the choice-shuffle ensemble.

- ``Index.open(path).search(texts, k)``: the k most similar indexed records per text
  (``curate.rag.index``); ``build_index`` builds it;
- ``open_index(path, benchmarks=[...])``: the index opened *for* benchmarks: the guard
  (``GuardConfig``: decontamination tiers and the similarity guard) leaves out every record
  found in them, and ``search``/``retrieve`` drop a result too similar to the query;
- ``build_prompt(question, template, examples=...)``: the one prompt builder
  (``curate.rag.prompts``), for evaluation, serving and notebooks;
- ``index_passages`` / ``grounded_prompt`` / ``Passage``: passage retrieval for open
  questions (``curate.rag.passages``: chunks with ids and provenance, the same guard);
- ``check_index``: the index's records against a benchmark with the decontamination
  stage (``curate.rag.exclusion``);
- ``permutations`` / ``vote``: the shuffle ensemble (``curate.rag.ensemble``).

Names are imported lazily, so ``import curate.rag`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_NAMES = {
    "Index": "curate.rag.index", "Hit": "curate.rag.index", "build_index": "curate.rag.index",
    "build_prompt": "curate.rag.prompts", "McqaItem": "curate.rag.prompts", "Prompt": "curate.rag.prompts",
    "check_index": "curate.rag.exclusion", "open_index": "curate.rag.build",
    "search_index": "curate.rag.build", "index_passages": "curate.rag.build",
    "grounded_prompt": "curate.rag.passages", "Passage": "curate.rag.passages",
    "GuardConfig": "curate.rag.config", "Retrieved": "curate.rag.index",
    "permutations": "curate.rag.ensemble", "vote": "curate.rag.ensemble",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    """Import a public name on first use."""
    if name not in _NAMES:
        raise AttributeError(f"module 'curate.rag' has no attribute {name!r}")
    return getattr(import_module(_NAMES[name]), name)
