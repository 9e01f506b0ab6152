"""Options of MCQA evaluation and of the benchmark audit, in one module that imports only
pydantic (the command line builds its options from these models)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from curate.config import Config
from curate.curation.config import DecontamConfig
from curate.rag.config import GuardConfig, SearchKind
from curate.synth.config import MAX_TEMPERATURE, GeneratorConfig

LOGLIK_BACKENDS = ("transformers", "vllm")
"""Backends that can score option letters by log-likelihood (they expose the model)."""


class McqaConfig(Config):
    """Options of ``curate eval mcqa``: the model, the mode and the statistics."""

    model: GeneratorConfig = Field(description=(
        "The backend and its options, e.g. {backend: transformers, model: PATH}. `loglik` needs "
        "`transformers` or `vllm`; `generate` takes any backend (`openai` for any "
        "OpenAI-compatible endpoint; `offline` writes template text for tests only)."))
    mode: Literal["loglik", "generate"] = Field("loglik", description=(
        "`loglik`: the option letter with the highest log-likelihood after the prompt, from one "
        "forward pass; `generate`: a chain of thought, then the answer extracted from it."))
    limit: int | None = Field(None, ge=1, description=(
        "Evaluate only the first LIMIT items of each benchmark (in file order)."))
    allow_dropped: int = Field(0, ge=0, description=(
        "Rows of a benchmark that may be dropped because they cannot be scored (no gold "
        "answer, an answer outside the options, too few options, ...; `curate audit` names "
        "them). More drops refuse the benchmark: its denominator would not be the published one. "
        "Drops are reported by reason either way."))
    subject_field: str | None = Field(None, description=(
        "The `meta` key (a column the catalog entry keeps in `meta`) naming each item's subject "
        "for per-subject accuracy, e.g. `meta_info` for MedQA [default: `subject`, then "
        "`subject_name`]."))
    max_length: int | None = Field(None, ge=8, description=(
        "`loglik`: prompt tokens kept (from the end, as lm-eval does); unset: the model's "
        "maximum positions."))
    chat_template: bool = Field(False, description=(
        "`loglik` with backend `transformers`: put the prompt in one user turn of the model's chat "
        "template (with the assistant's opening) and score each bare letter as the assistant's first "
        "word, as a chat model answers; off: the plain lm-eval layout. (`generate` always sends chat "
        "messages.)"))
    max_tokens: int = Field(1024, ge=1, description="`generate`: upper bound on generated tokens.")
    temperature: float = Field(0.0, ge=0, le=MAX_TEMPERATURE, description=(
        "`generate`: sampling temperature (0: greedy)."))
    seed: int = Field(0, description="Seed of generation and of the bootstrap resamples.")
    resamples: int = Field(1000, ge=100, le=100_000, description=(
        "Bootstrap resamples behind every interval."))
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Coverage of the intervals.")
    batch_size: int = Field(64, ge=1, description=(
        "Prompts handed to the scorer at once (the transformers backend splits them further "
        "into forward batches of its own `batch_size`)."))
    retries: int = Field(2, ge=0, le=10, description=(
        "`generate`: retries of a prompt whose answer could not be read, each at a higher "
        "temperature and token budget (`retry_temperature_step`, `retry_token_step`)."))
    retry_temperature_step: float = Field(0.3, ge=0, le=2, description=(
        "`generate`: added to the temperature at each retry (kept within [0, 2])."))
    retry_token_step: int = Field(256, ge=0, description="`generate`: added to `max_tokens` at each retry.")
    retrieval: str | None = Field(None, description=(
        "A retrieval index (`curate rag index`): also evaluate MedPrompt-style, with the `k` most "
        "similar indexed examples as few-shot turns (the most similar closest to the question) "
        "and a vote over `shuffles` option orders; reported beside the plain zero-shot run. "
        "The index is opened for the evaluated benchmarks first: records the guard finds in them "
        "are excluded, and an example too similar to the question is dropped (`guard`)."))
    guard: GuardConfig = Field(default_factory=lambda: GuardConfig.model_validate({}), description=(
        "With `retrieval`: the contamination guard, as `curate rag check` applies it."))
    k: int = Field(5, ge=1, le=64, description="With `retrieval`: few-shot examples per question.")
    shuffles: int = Field(5, ge=1, le=120, description=(
        "With `retrieval`: distinct option orders per question (the original first), answers "
        "mapped back to the original letters, majority vote with a seeded tie-break."))
    retrieval_search: SearchKind = Field("numpy", description=(
        "With `retrieval`: `numpy` exact search, `faiss` exact (same top-k), `hnsw` approximate."))

    @model_validator(mode="after")
    def _chat_template_fits(self) -> McqaConfig:
        if self.chat_template and (self.mode != "loglik" or self.model.backend != "transformers"):
            raise ValueError("`chat_template` applies to mode `loglik` with backend `transformers` (mode "
                             "`generate` sends chat messages already)")
        return self

    @model_validator(mode="after")
    def _mode_fits_backend(self) -> McqaConfig:
        if self.mode == "loglik" and self.model.backend not in LOGLIK_BACKENDS:
            raise ValueError(
                f"mode `loglik` scores option letters with the model itself: use backend "
                f"{' or '.join(LOGLIK_BACKENDS)}, or mode `generate` for backend `{self.model.backend}`")
        return self


class AuditConfig(Config):
    """Options of ``curate audit``: what counts as a flaw and when a benchmark is unfit."""

    unfit_above: float = Field(0.02, ge=0, le=1, description=(
        "A benchmark is marked unfit when more than this share of its items are flawed."))
    cross_benchmark: bool = Field(True, description=(
        "Look for items shared between the audited benchmarks (decontamination tiers)."))
    decontam: DecontamConfig = Field(default_factory=lambda: DecontamConfig.model_validate({}), description=(
        "Shared items: the decontamination tiers and thresholds, as the `decontam` stage uses "
        "them (an item of one benchmark found in another is what decontamination would flag)."))


class McqaFiles(Config):
    """Where ``curate eval mcqa`` writes, and the run it compares with."""

    out: str = Field(description="Folder for results.json, predictions.parquet, report.md and the plots.")
    baseline: str | None = Field(None, description=(
        "The --out folder of an earlier run: compare with it, paired, on the same items."))


class ExportFiles(Config):
    """Where ``curate eval export-lm-eval`` writes, and its few-shot examples."""

    out: str = Field(description="Folder the task folder goes in (pass it to lm_eval as --include_path).")
    num_fewshot: int = Field(0, ge=0, le=64, description=(
        "Few-shot examples before each question: the first NUM_FEWSHOT answered items of "
        "`fewshot_from`, in file order (lm-eval's fixed `first_n` sampler)."))
    fewshot_from: str | None = Field(None, description=(
        "The catalog benchmark the few-shot examples come from (a dev split, never the exported one)."))


class AuditFiles(Config):
    """Where ``curate audit`` writes."""

    out: str | None = Field(None, description=(
        "Folder for audit.json, audit.md and audit.png [default: print only]."))
