"""Options of the generation backends and of synthetic chain of thought, in one module
that imports only pydantic (the command line builds its options from these models)."""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from curate.engine.stage import StageConfig
from curate.errors import ConfigError

OFFLINE_MODEL = "curate-offline-template"
MAX_TEMPERATURE = 2.0
"""The highest sampling temperature vLLM accepts (``SamplingParams._verify_args`` in
``vllm/sampling_params.py``: "temperature must be in [0, 2]"); the OpenAI API has the same."""
GREEDY_BELOW = 1e-5
"""vLLM samples greedily below this temperature (``_SAMPLING_EPS``) and then needs ``n == 1``."""


def raised_temperature(temperature: float, retry: int, step: float, *,
                       cap: float = MAX_TEMPERATURE) -> float:
    """The sampling temperature of the ``retry``-th retry (0: the first try): raised by
    ``step`` each time, kept within [0, ``cap``] (vLLM and the OpenAI API reject more than 2)."""
    return round(min(cap, max(0.0, temperature + retry * step)), 6)


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


class OfflineOptions(_Options):
    """The deterministic template backend: for tests and demos only, never for training."""

    backend: Literal["offline"] = "offline"
    model: Literal["curate-offline-template"] = Field(
        "curate-offline-template", description="Always `curate-offline-template`: no model runs.")


class OpenAIOptions(_Options):
    """Any OpenAI-compatible chat endpoint (vLLM or TGI server, llama.cpp, a hosted API)."""

    backend: Literal["openai"] = "openai"
    model: str = Field(description="The model name the endpoint serves.")
    base_url: str = Field(description="Endpoint root, e.g. http://127.0.0.1:8000/v1 "
                                      "(requests go to <base_url>/chat/completions).")
    revision: str | None = Field(None, description="The served model's revision, for lineage.")
    api_key_env: str = Field("OPENAI_API_KEY", description=(
        "Name of the environment variable holding the API key; unset means no key is sent. "
        "The key itself is never written anywhere."))
    concurrency: int = Field(8, ge=1, le=1024, description="Requests in flight at once.")
    timeout: float = Field(120.0, gt=0, description="Seconds to wait for one reply.")
    max_retries: int = Field(5, ge=0, description="Retries after a 429, a 5xx, a timeout "
                                                  "or a connection error.")
    backoff: float = Field(1.0, ge=0, description="First retry delay in seconds; doubles each "
                                                  "retry, with jitter; a Retry-After header wins.")
    max_backoff: float = Field(60.0, ge=0, description="Upper bound on one retry delay.")
    structured_outputs_field: bool = Field(True, description=(
        "Send a request's `choices` as vLLM's `structured_outputs: {choice: [...]}` body field; "
        "servers without it reject or ignore such requests."))


class TransformersOptions(_Options):
    """A local transformers model (hub name or path), on CPU or GPU, batched."""

    backend: Literal["transformers"] = "transformers"
    model: str = Field(description="Hub name or local path of a causal LM with a chat template.")
    revision: str | None = Field(None, description="Hub revision (commit sha or tag).")
    device: str = Field("auto", description="`auto` (cuda when available), `cpu`, `cuda`, `cuda:1`.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights' dtype; `auto`: bfloat16 on a GPU, float32 on the CPU.")
    batch_size: int = Field(8, ge=1, description="Requests per forward batch.")
    trust_remote_code: bool = Field(
        False, description="Run code that ships with the model (off unless you trust it).")


class VllmOptions(_Options):
    """vLLM's offline engine (``LLM.chat``) on local GPUs."""

    backend: Literal["vllm"] = "vllm"
    model: str = Field(description="Hub name or local path.")
    revision: str | None = Field(None, description="Hub revision (commit sha or tag).")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs the model is split across.")
    dtype: str = Field("auto", description="vLLM's `dtype`.")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="Share of GPU memory used.")
    max_model_len: int | None = Field(None, ge=1, description="Context length cap.")
    trust_remote_code: bool = Field(
        False, description="Run code that ships with the model (off unless you trust it).")


GENERATORS: tuple[type[_Options], ...] = (OfflineOptions, OpenAIOptions, TransformersOptions,
                                          VllmOptions)
"""Every backend's options model, in the order ``--help`` lists them."""
GeneratorOptions = OfflineOptions | OpenAIOptions | TransformersOptions | VllmOptions
GeneratorConfig = Annotated[GeneratorOptions, Field(discriminator="backend")]
"""A backend and its options, as a recipe or the command line gives them."""

OPTIONS: dict[str, type[_Options]] = {m.model_fields["backend"].default: m for m in GENERATORS}
"""Backend name -> its options model."""
_ADAPTER: TypeAdapter[Any] = TypeAdapter(GeneratorConfig)


def generator_config(name: str, **options: Any) -> GeneratorOptions:
    """Validate ``options`` for backend ``name``; a ConfigError names a bad or unknown key."""
    if name not in OPTIONS:
        close = difflib.get_close_matches(name, list(OPTIONS), n=1)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        raise ConfigError(f"unknown backend `{name}` (known: {', '.join(OPTIONS)}){hint}")
    model = OPTIONS[name]
    try:
        return _ADAPTER.validate_python({**options, "backend": name})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"][1:]) or name
            if err["type"] == "extra_forbidden":
                close = difflib.get_close_matches(key, list(model.model_fields), n=1)
                hint = f"; did you mean `{close[0]}`?" if close else ""
                problems.append(f"unknown option `{key}`{hint}")
            else:
                problems.append(f"`{key}`: {err['msg']}")
        raise ConfigError(f"backend `{name}`: " + "; ".join(problems)) from None



def validate_generator(value: Any) -> Any:
    """A backend mapping (``{backend: ..., model: ...}``) validated with that backend's own
    options model, for errors that name the backend, the bad key and the closest valid one;
    anything else is left to pydantic. For a ``mode="before"`` field validator."""
    if not isinstance(value, dict):
        return value
    options = dict(value)
    name = options.pop("backend", None)
    if name is None:
        raise ValueError(f"`backend` is required: one of {', '.join(OPTIONS)}")
    try:
        return generator_config(name, **options)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


class SynthCotConfig(StageConfig):
    """Options of ``synth_cot_v1`` (the recipe's ``synth: {cot: ...}`` section)."""

    generator: GeneratorConfig = Field(description=(
        "The backend and its options, e.g. {backend: vllm, model: ..., tensor_parallel_size: 8}; "
        "`offline` writes template text for tests and demos only."))
    sources: list[str] | None = Field(None, description=(
        "Enhance records of these sources only; every input record when omitted."))
    max_rows: int | None = Field(None, ge=1, description=(
        "Enhance at most this many records (the first eligible ones, in input order)."))
    gold_answer: Literal["given", "withheld"] = Field("given", description=(
        "`given`: the prompt states the gold answer and asks for an explanation; `withheld`: "
        "the generator answers on its own (more rejections, no hint to leak)."))
    max_attempts: int = Field(3, ge=1, le=20, description="Generations tried per record.")
    temperature: float = Field(0.7, ge=0, le=MAX_TEMPERATURE, description=(
        "Sampling temperature of the first attempt (vLLM and OpenAI accept 0 to 2)."))
    temperature_step: float = Field(0.2, ge=0, description="Added to the temperature each retry.")
    max_temperature: float = Field(MAX_TEMPERATURE, ge=0, le=MAX_TEMPERATURE, description=(
        "Retries stop raising the temperature here (at most 2: vLLM rejects a higher one); "
        "later attempts differ by their seed only."))
    max_tokens: int = Field(1024, ge=1, description="Upper bound on tokens per generation.")
    seed: int = Field(0, description="Base seed; each (record, attempt) derives its own from it.")
    copy_threshold: float = Field(0.6, gt=0, le=1, description=(
        "Reject as `copies_question` when this share of the output's word 4-grams occur in "
        "the question and its options."))
    open_qa_check: Literal["overlap", "non_empty"] = Field("overlap", description=(
        "Open QA: `overlap` needs `min_overlap` of the conclusion's content words in the "
        "reference answer; `non_empty` needs only a non-empty `Answer:` conclusion."))
    min_overlap: float = Field(0.5, ge=0, le=1, description="See `open_qa_check`.")
    batch_size: int = Field(256, ge=1, description=(
        "Requests handed to the backend at once (it bounds memory, not concurrency)."))

    @field_validator("generator", mode="before")
    @classmethod
    def _generator(cls, value: Any) -> Any:
        """Validate a mapping with the backend's own options model."""
        return validate_generator(value)

    @model_validator(mode="after")
    def _sampling(self) -> SynthCotConfig:
        """The schedule within vLLM's limits: a first temperature over the cap is refused."""
        if self.temperature > self.max_temperature:
            raise ValueError(f"`temperature` {self.temperature} is above `max_temperature` "
                             f"{self.max_temperature}: lower it or raise `max_temperature` (at most 2)")
        return self

    def attempt_temperature(self, attempt: int) -> float:
        """The temperature of ``attempt`` (1-based): ``temperature`` raised by
        ``temperature_step`` per retry, clamped at ``max_temperature``."""
        return raised_temperature(self.temperature, attempt - 1, self.temperature_step,
                                  cap=self.max_temperature)


