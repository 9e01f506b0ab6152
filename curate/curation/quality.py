"""DEITA quality scoring: complexity of each instruction, quality of each answer.

Two scorer models (DEITA's, by default: ``hkust-nlp/deita-complexity-scorer`` and
``hkust-nlp/deita-quality-scorer``) read a fixed prompt and are asked for the next
token. A score is the expected value of the digit they would write:
``sum(i * softmax(logits of the tokens "1".."6")[i] for i in 1..6)``, in [1, 6]. The
six token ids come from the scorer's tokenizer, never from a table.

Per record (a conversation: ``messages``, then ``chosen`` for preference records):
every user turn is one pair with the assistant turn after it (empty when none), as
DEITA's score pipeline does. Complexity is scored on the user turn alone, without
history; quality on the pair. The record's ``deita_score`` is the sum over pairs of
complexity x quality (DEITA's ``final_score``); ``complexity`` and ``quality`` are the
means over pairs, and the per-pair values are kept in ``complexity_turns`` and
``quality_turns``. Records without a user turn get null scores and are kept.

``decide`` drops, per source, the lowest-scoring ``drop_fraction`` of records (ties by
id, the smaller id first) and those under the absolute thresholds, all as
``low_quality``; when more than ``reject_source_above`` of a source is under the
thresholds, the rest of it goes too (``source_rejected:low_quality``). A scorer whose
scores barely vary (a base model instead of a DEITA scorer, a broken checkpoint, a
wrong dtype) fails the stage instead of selecting on noise.

Backends (``backend``, the scorer ``deita_<backend>`` of ``curate.models.scoring.SCORERS``):
``transformers`` (CPU or GPU; the shared forward pass ``next_token_logprobs``: one pass
per batch, left padding, prompts sorted by length) and ``vllm`` (GPU; a one-token
generation restricted to the six digits, with their log-probabilities; prompts cut to the
engine's context length - 1; ``tensor_parallel_size``, ``gpu_memory_utilization``,
``max_model_len``). The two scorers stay loaded together for the stage, or, with
``scorer_loading: in_turn``, one at a time: each engine is shut down before the other
loads, so each may take the whole GPU.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np
import polars as pl
import pyarrow as pa
from typing_extensions import override

from curate.config import Device, Dtype, ModelSpec
from curate.curation.config import QualityConfig
from curate.engine.stage import RowStage, StageContext
from curate.errors import ConfigError, MissingDependencyError
from curate.models.scoring import SCORERS, Scorer, TransformersModelScorer, VllmEngineScorer

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# DEITA's prompts, byte for byte, from hkust-nlp/deita
# src/deita/selection/scorer/llama_scorer.py (and mistral_scorer.py, identical):
# `complexity_template` and `quality_template`. DEITA formats them and encodes the
# result with the tokenizer's defaults (special tokens included: Llama's <s>), with no
# conversation template around it (src/deita/selection/scorer/base.py, `infer_score`),
# although the scorers were trained inside a vicuna-1.1 conversation
# (src/deita/alignment/train_scorers.py). This module scores as DEITA's scoring code does.
COMPLEXITY_TEMPLATE = (
    "You are a helpful assistant. Please identify the complexity score of the following "
    "user query. \n##Query: {instruction}  \n##Complexity: "
)
QUALITY_TEMPLATE = (
    "You are a helpful assistant. Please identify the quality score of the Response "
    "corresponding to the Question. \n #Question#:\n{instruction}\n#Response#:\n{output} "
    "\n##Quality: "
)
DIGITS = "123456"
DEFAULT_COMPLEXITY_MODEL = "hkust-nlp/deita-complexity-scorer"
DEFAULT_QUALITY_MODEL = "hkust-nlp/deita-quality-scorer"
SCORE_COLUMNS = {
    "complexity": pl.Float64, "quality": pl.Float64, "deita_score": pl.Float64,
    "turns": pl.Int32, "complexity_turns": pl.List(pl.Float64),
    "quality_turns": pl.List(pl.Float64),
}


def complexity_prompt(instruction: str) -> str:
    """DEITA's complexity prompt for one instruction."""
    return COMPLEXITY_TEMPLATE.format(instruction=instruction)


def quality_prompt(instruction: str, output: str) -> str:
    """DEITA's quality prompt for one (instruction, answer) pair."""
    return QUALITY_TEMPLATE.format(instruction=instruction, output=output)


class DeitaScorer(Scorer):
    """A loaded DEITA scorer model (``SCORERS``' ``deita_<backend>``): DEITA scores for
    prompts, in order; ``teardown`` frees the model."""

    @abstractmethod
    def scores(self, prompts: Sequence[str]) -> np.ndarray:
        """The expected digit (1 to 6) for each prompt, in order."""

    @classmethod
    @abstractmethod
    def from_config(cls, config: QualityConfig, model: str, *, revision: str | None,
                    gpu_memory_utilization: float) -> Self:
        """The scorer ``model`` with the stage's options (``gpu_memory_utilization``: the
        share of the GPU this scorer may take, for a vLLM engine)."""


class Quality(RowStage[QualityConfig]):
    """Score instructions (complexity) and answers (quality) with DEITA's scorers."""

    name = "quality"
    version = 1
    decision_fields = frozenset({
        "drop_fraction", "source_fractions", "min_complexity", "min_quality", "min_score",
        "reject_source_above", "collapse_min_std", "collapse_max_identical", "collapse_min_turns",
    })
    columns = ("messages", "chosen")
    score_columns = SCORE_COLUMNS

    @override
    def thresholds(self) -> dict[str, float]:
        """The fixed minimums that are set; the bottom ``drop_fraction`` cut depends on the data."""
        o = self.config
        cuts = {"complexity": o.min_complexity, "quality": o.min_quality, "deita_score": o.min_score}
        return {column: value for column, value in cuts.items() if value is not None}

    def __init__(self, config: QualityConfig | None = None):
        super().__init__(config)
        self._scorers: dict[str, DeitaScorer] = {}

    @property
    @override
    def gpus(self) -> float:
        """A vLLM scorer's tensor-parallel GPUs; one for a transformers scorer on `cuda`."""
        o = self.config
        if o.backend == "vllm":
            return float(o.tensor_parallel_size)
        return 1.0 if o.device.startswith("cuda") else 0.0

    def scorer(self, name: str) -> DeitaScorer:
        """The scorer model ``name``, loaded once per stage run (freed by ``teardown``). With
        ``scorer_loading: in_turn`` the other scorer is torn down first: one model at a time."""
        if name not in self._scorers:
            o = self.config
            if o.scorer_loading == "in_turn":
                self.teardown()
            loaded_at_once = (1 if o.scorer_loading == "in_turn"
                              else len({o.complexity_model, o.quality_model}))
            revision = (o.complexity_revision if name == o.complexity_model else o.quality_revision)
            scorer: type[DeitaScorer] = SCORERS.load(f"deita_{o.backend}")
            self._scorers[name] = scorer.from_config(
                o, name, revision=revision,
                gpu_memory_utilization=o.gpu_memory_utilization or 0.9 / loaded_at_once)
        return self._scorers[name]

    @override
    def teardown(self) -> None:
        """Tear the scorer models down (a vLLM engine gives its GPU memory back)."""
        scorers, self._scorers = self._scorers, {}
        for scorer in scorers.values():
            scorer.teardown()

    # -- scoring ----------------------------------------------------------------------------

    @override
    def score(self, records: pa.Table, context: StageContext) -> pa.Table:
        o = self.config
        messages = records.column("messages").to_pylist()
        chosen = records.column("chosen").to_pylist()
        pairs = [conversation_pairs((m or []) + (c or [])) for m, c in zip(messages, chosen)]
        flat = [pair for record in pairs for pair in record]
        prompts = {"complexity": [complexity_prompt(u) for u, _ in flat],
                   "quality": [quality_prompt(u, a) for u, a in flat]}
        models = {"complexity": o.complexity_model, "quality": o.quality_model}
        kinds: list[Literal["complexity", "quality"]] = ["complexity", "quality"]
        if o.quality_model in self._scorers and o.complexity_model not in self._scorers:
            kinds.reverse()  # in turn: the loaded scorer first, one switch per shard
        scores = {}
        for kind in kinds:
            scores[kind] = self.scorer(models[kind]).scores(prompts[kind])
            self.check_spread(scores[kind], kind)  # per shard too: fail before hours of scoring
        return record_scores(scores["complexity"], scores["quality"], [len(p) for p in pairs])

    def check_spread(self, scores: np.ndarray, kind: Literal["complexity", "quality"]) -> None:
        """Fail when the ``kind`` scorer's ``scores`` are (nearly) constant."""
        o = self.config
        if len(scores) < o.collapse_min_turns:
            return
        std = float(np.std(scores))
        _, counts = np.unique(np.round(scores, 2), return_counts=True)
        identical = counts.max() / len(scores)
        if std < o.collapse_min_std or identical > o.collapse_max_identical:
            model = o.complexity_model if kind == "complexity" else o.quality_model
            raise ConfigError(
                f"stage `quality`: the {kind} scorer `{model}` gave near-constant scores "
                f"(standard deviation {std:.4f} over {len(scores)} turns, {identical:.0%} of them "
                f"equal to 2 decimals, mean {np.mean(scores):.3f}), so selecting by them would "
                f"select on noise. Set `{kind}_model` to a DEITA {kind} scorer (a base or chat "
                "model does not work), check the checkpoint and `dtype`, or, if the data really is "
                "this uniform, lower `collapse_min_std` / raise `collapse_max_identical`.")

    # -- deciding ---------------------------------------------------------------------------

    @override
    def decide(self, scores: pl.DataFrame) -> pl.DataFrame:
        o = self.config
        for kind in ("complexity", "quality"):
            turns = scores.get_column(f"{kind}_turns").explode().drop_nulls()
            self.check_spread(turns.to_numpy(), kind)
        below = pl.lit(False)
        for column, minimum in (("complexity", o.min_complexity), ("quality", o.min_quality),
                                ("deita_score", o.min_score)):
            if minimum is not None:
                below = below | (pl.col(column) < minimum).fill_null(False)
        fraction = pl.col("source").replace_strict(
            o.source_fractions, default=o.drop_fraction, return_dtype=pl.Float64)
        scored = pl.col("deita_score").is_not_null()
        bottom = scored & (
            pl.int_range(pl.len()).over("source")
            < (fraction * scored.sum().over("source") + 1e-9).floor())
        rejected = pl.lit(False) if o.reject_source_above is None else (
            below.mean().over("source") > o.reject_source_above)
        low = bottom | below
        return (
            scores.with_row_index("_order")
            .sort("source", "deita_score", "id", nulls_last=True)
            .with_columns(
                keep=~low & ~rejected,
                reason=pl.when(low).then(pl.lit("low_quality"))
                .when(rejected).then(pl.lit("source_rejected:low_quality")),
            )
            .sort("_order")
            .drop("_order")
        )


def conversation_pairs(turns: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """(user turn, the assistant turn right after it or "") for every user turn."""
    pairs = []
    for i, turn in enumerate(turns):
        if turn["role"] == "user":
            following = turns[i + 1] if i + 1 < len(turns) else None
            answer = following["content"] if following and following["role"] == "assistant" else ""
            pairs.append((turn["content"] or "", answer or ""))
    return pairs


def record_scores(complexity: np.ndarray, quality: np.ndarray, turns: list[int]) -> pa.Table:
    """Per-record score columns from per-pair scores (``turns`` pairs per record, in order)."""
    starts = np.cumsum([0, *turns])
    c = [complexity[a:b].tolist() for a, b in zip(starts[:-1], starts[1:])]
    q = [quality[a:b].tolist() for a, b in zip(starts[:-1], starts[1:])]
    return pa.table({
        "complexity": pa.array([float(np.mean(x)) if x else None for x in c], pa.float64()),
        "quality": pa.array([float(np.mean(x)) if x else None for x in q], pa.float64()),
        "deita_score": pa.array(
            [float(np.dot(x, y)) if x else None for x, y in zip(c, q)], pa.float64()),
        "turns": pa.array(turns, pa.int32()),
        "complexity_turns": pa.array(c, pa.list_(pa.float64())),
        "quality_turns": pa.array(q, pa.list_(pa.float64())),
    })


def digit_token_ids(tokenizer: PreTrainedTokenizerBase, model: str = "the scorer") -> list[int]:
    """The ids of the tokens "1".."6" in ``tokenizer``.

    Each digit is encoded alone, without special tokens; it must come out as one token,
    possibly after tokens that decode to nothing but whitespace (SentencePiece tokenizers
    such as Llama's put a lone word-start piece before a text's first digit)."""
    ids = []
    for digit in DIGITS:
        encoded = tokenizer.encode(digit, add_special_tokens=False)
        if not encoded or str(tokenizer.decode(encoded[-1:])).strip() != digit or any(
                str(tokenizer.decode([t])).strip() for t in encoded[:-1]):
            pieces = tokenizer.convert_ids_to_tokens(encoded)
            raise ConfigError(
                f"{model}: its tokenizer encodes `{digit}` as {pieces}, not as one token; DEITA "
                "scoring reads the next-token logits of the digits 1 to 6, so each must be a "
                "single token. Use a DEITA scorer (or a model whose tokenizer has them).")
        ids.append(encoded[-1])
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{model}: its tokenizer maps two of the digits 1-6 to one token {ids}")
    return ids


def expected_digit(logits: np.ndarray) -> np.ndarray:
    """sum_i i * softmax(logits)_i per row, rows being the logits of the tokens "1".."6" (or
    their log-probabilities, which differ from the logits by a constant per row: the same
    softmax, DEITA's score)."""
    logits = logits.astype(np.float64)
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    return weights @ np.arange(1, len(DIGITS) + 1, dtype=np.float64)


def encode_prompts(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str],
                   max_length: int) -> list[list[int]]:
    """Token ids of ``prompts`` (special tokens as the tokenizer adds them, like DEITA).
    A prompt over ``max_length`` tokens loses tokens from the middle: its head (the
    instruction to the scorer) and its closing line (``##Complexity: ``) stay."""
    if not prompts:
        return []
    encoded = tokenizer(list(prompts), add_special_tokens=True, verbose=False)["input_ids"]
    tail = _tail_tokens(tokenizer)
    return [ids if len(ids) <= max_length else ids[: max_length - tail] + ids[-tail:]
            for ids in encoded]


def _tail_tokens(tokenizer: PreTrainedTokenizerBase) -> int:
    """Tokens after the last field of either template (the longer closing line)."""
    tails = []
    for template, last in ((COMPLEXITY_TEMPLATE, "{instruction}"), (QUALITY_TEMPLATE, "{output}")):
        head = template.split(last)[0].format(instruction="x")
        whole = template.format(instruction="x", output="x")
        tails.append(len(tokenizer.encode(whole)) - len(tokenizer.encode(head + "x")))
    return max(tails) + 1


# -- backends ---------------------------------------------------------------------------------

class TransformersScorer(DeitaScorer, TransformersModelScorer):
    """A DEITA scorer on ``transformers``: the digits' log-probabilities at the last position
    (``next_token_logprobs``), batched by length."""

    def __init__(self, name: str, *, revision: str | None = None, device: Device = "auto",
                 dtype: Dtype = "auto", max_length: int = 2048, batch_size: int = 16,
                 trust_remote_code: bool = False):
        super().__init__(ModelSpec(model=name, revision=revision, trust_remote_code=trust_remote_code),
                         device=device, dtype=dtype, batch_size=batch_size, what="scorer model")
        self.ids = digit_token_ids(self.tokenizer, f"scorer `{name}`")
        self.max_length = max_length

    @classmethod
    @override
    def from_config(cls, config: QualityConfig, model: str, *, revision: str | None,
                    gpu_memory_utilization: float) -> Self:
        return cls(model, revision=revision, device=config.device, dtype=config.dtype,
                   max_length=config.max_length, batch_size=config.batch_size,
                   trust_remote_code=config.trust_remote_code)

    @override
    def scores(self, prompts: Sequence[str]) -> np.ndarray:
        """The expected digit (1 to 6) for each prompt."""
        encoded = encode_prompts(self.tokenizer, prompts, self.max_length)
        digits = np.zeros((len(encoded), len(DIGITS)), np.float32)
        for rows, logprobs in self.next_token_logprobs(encoded):
            digits[rows] = logprobs[:, self.ids].numpy()
        return expected_digit(digits)


class VllmScorer(DeitaScorer, VllmEngineScorer):
    """A DEITA scorer on vLLM: one generated token, restricted to the six digits, with their
    log-probabilities (``logprobs_mode="processed_logprobs"``: after the restriction, so
    exactly the six digits come back, normalised among themselves).

    vLLM rejects a prompt that leaves no room for the output token ("prompt plus the number
    of requested output tokens (at least 1) is longer than the maximum model length",
    ``InputProcessor._validate_prompt_len`` in ``vllm/v1/engine/input_processor.py``), and
    one such prompt fails the whole batch. So prompts are cut to ``min(max_length, the
    engine's max_model_len - 1)`` tokens, the length the engine reports once loaded
    (DEITA's Llama-1-13B scorers have 2,048 tokens of context)."""

    def __init__(self, name: str, *, revision: str | None = None, dtype: Dtype = "auto",
                 max_length: int = 2048, trust_remote_code: bool = False,
                 gpu_memory_utilization: float = 0.9, tensor_parallel_size: int = 1,
                 max_model_len: int | None = None):
        try:
            from vllm import SamplingParams
        except ImportError:
            raise MissingDependencyError("vllm", "vllm") from None
        super().__init__(ModelSpec(model=name, revision=revision, trust_remote_code=trust_remote_code),
                         dtype=dtype, tensor_parallel_size=tensor_parallel_size,
                         gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
                         logprobs_mode="processed_logprobs")
        self.ids = digit_token_ids(self.tokenizer, f"scorer `{name}`")
        self.params = SamplingParams(max_tokens=1, temperature=0.0, logprobs=len(DIGITS),
                                     allowed_token_ids=self.ids)
        self.max_length = (max_length if self.max_model_len is None
                           else min(max_length, self.max_model_len - 1))

    @classmethod
    @override
    def from_config(cls, config: QualityConfig, model: str, *, revision: str | None,
                    gpu_memory_utilization: float) -> Self:
        return cls(model, revision=revision, dtype=config.dtype, max_length=config.max_length,
                   trust_remote_code=config.trust_remote_code,
                   gpu_memory_utilization=gpu_memory_utilization,
                   tensor_parallel_size=config.tensor_parallel_size,
                   max_model_len=config.max_model_len)

    @override
    def scores(self, prompts: Sequence[str]) -> np.ndarray:
        """The expected digit (1 to 6) for each prompt, in one vLLM batch."""
        encoded = encode_prompts(self.tokenizer, prompts, self.max_length)
        if not encoded:
            return np.zeros(0)
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in encoded], self.params,
                                    use_tqdm=False)
        logits = np.zeros((len(encoded), len(DIGITS)), np.float32)
        for row, output in enumerate(outputs):
            top = output.outputs[0].logprobs[0]
            missing = [DIGITS[k] for k, i in enumerate(self.ids) if i not in top]
            if missing:
                raise ConfigError(
                    f"scorer `{self.model}`: vLLM returned no log-probability for the digits "
                    f"{missing}; it needs vLLM >= 0.12 (`logprobs_mode`): "
                    "pip install 'curate[vllm]'")
            logits[row] = [top[i].logprob for i in self.ids]
        return expected_digit(logits)
