"""Options of the generation backends and of synthetic chain of thought, in one module
that imports only pydantic (the command line builds its options from these models)."""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SerializeAsAny, ValidationError, model_validator

from curate.config import DEVICE_HELP, DTYPE_HELP, Config, Device, Dtype, ModelSpec
from curate.errors import ConfigError
from curate.registry import Registry

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


class BackendOptions(Config):
    """Base of every generation backend's options: the backend's name and its model.

    A backend's options class narrows ``backend`` to its own name (``Literal["vllm"]``) and
    adds its fields; ``GeneratorConfig`` validates a mapping with the options class of the
    backend it names, so a misspelled option names the backend and the closest field."""

    backend: str = Field(description="The generation backend (see `BACKENDS`).")
    model: str = Field(description="The model: a hub name, a local folder or a served name.")


class OfflineOptions(BackendOptions):
    """The deterministic template backend: for tests and demos only, never for training."""

    backend: Literal["offline"] = "offline"
    model: Literal["curate-offline-template"] = Field(
        "curate-offline-template", description="Always `curate-offline-template`: no model runs.")


class OpenAIOptions(BackendOptions):
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


class TransformersOptions(ModelSpec, BackendOptions):
    """A local transformers model (hub name or path), on CPU or GPU, batched."""

    backend: Literal["transformers"] = "transformers"
    device: Device = Field("auto", description=DEVICE_HELP)
    dtype: Dtype = Field("auto", description=DTYPE_HELP)
    batch_size: int = Field(8, ge=1, description="Requests per forward batch.")


class VllmOptions(ModelSpec, BackendOptions):
    """vLLM's offline engine (``LLM.chat``) on local GPUs."""

    backend: Literal["vllm"] = "vllm"
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs the model is split across.")
    dtype: Dtype = Field("auto", description="vLLM's `dtype`: " + DTYPE_HELP)
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="Share of GPU memory used.")
    max_model_len: int | None = Field(None, ge=1, description="Context length cap.")


BACKENDS: Registry[Any] = Registry("backend", "curate.backends", {
    "offline": "curate.synth.offline:OfflineBackend",
    "openai": "curate.synth.openai_api:OpenAIBackend",
    "transformers": "curate.synth.hf_local:TransformersBackend",
    "vllm": "curate.synth.vllm_engine:VllmBackend",
})
"""Backend name -> its ``curate.synth.backend.Backend`` class (whose ``options_class`` is its
options model); another package adds backends through the ``curate.backends`` entry points."""

GENERATORS: tuple[type[BackendOptions], ...] = (OfflineOptions, OpenAIOptions, TransformersOptions,
                                                VllmOptions)
"""The built-in backends' options models, in the order ``--help`` lists them (the command
line offers these; a plugin backend is configured in YAML)."""


def generator_config(name: str, **options: Any) -> BackendOptions:
    """Validate ``options`` for backend ``name``; a ConfigError names a bad or unknown key."""
    model: type[BackendOptions] = BACKENDS.load(name).options_class
    try:
        return model.model_validate({**options, "backend": name})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or name
            if err["type"] == "extra_forbidden":
                close = difflib.get_close_matches(key, list(model.model_fields), n=1)
                hint = f"; did you mean `{close[0]}`?" if close else ""
                problems.append(f"unknown option `{key}`{hint}")
            else:
                problems.append(f"`{key}`: {err['msg']}")
        raise ConfigError(f"backend `{name}`: " + "; ".join(problems)) from None


def _validate_generator(value: Any) -> Any:
    """A backend mapping (``{backend: ..., model: ...}``) validated with that backend's own
    options model, for errors that name the backend, the bad key and the closest valid one;
    anything else is left to pydantic."""
    if not isinstance(value, dict):
        return value
    options = dict(value)
    name = options.pop("backend", None)
    if name is None:
        raise ValueError(f"`backend` is required: one of {', '.join(BACKENDS.names())}")
    try:
        return generator_config(name, **options)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


GeneratorConfig = SerializeAsAny[Annotated[BackendOptions, BeforeValidator(_validate_generator)]]
"""A field type: a backend and its options, as a recipe or the command line gives them
(``{backend: vllm, model: ..., tensor_parallel_size: 8}``), validated by that backend's
options model and dumped with all of its fields."""


class CotFileOptions(Config):
    """Where ``curate synth cot`` (``enhance_file``) reads and writes."""

    out: str = Field(description="A .parquet file (rejected and stats beside it), or a folder.")
    cache_dir: str | None = Field(None, description=(
        "Completion cache [default: $CURATE_CACHE_DIR/synth or ~/.cache/curate/synth]."))
    source: str | None = Field(None, description=(
        "Read INPUT with this catalog entry's mapping [default: INPUT has a `messages` column, "
        "or is a parquet file of records]."))


class SynthCotConfig(Config):
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


