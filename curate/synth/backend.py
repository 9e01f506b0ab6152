"""Generation backends: one interface over vLLM, OpenAI-compatible endpoints, local
transformers models and a deterministic offline template.

A backend takes a batch of chat ``Request``s and returns one ``Completion`` per request,
in order: ``n`` texts and token counts. Backends are named in recipes and on the
command line, so they live in an explicit name -> ``"module:Class"`` map (``BACKENDS``);
each has a typed options model (``OPTIONS``), validated strictly, so a misspelled
option is an error, never a silent default. Nothing heavy (httpx, torch, vllm) is
imported until a backend is built.
"""

from __future__ import annotations

import difflib
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from curate.errors import ConfigError, CurateError

OFFLINE_MODEL = "curate-offline-template"


class BackendError(CurateError):
    """A backend failed to produce a completion (after its retries): names the request."""


@dataclass(frozen=True)
class Request:
    """One chat request: ``n`` samples of the assistant's next turn."""

    messages: tuple[tuple[str, str], ...]
    """The conversation as (role, content) pairs."""
    max_tokens: int
    """Upper bound on generated tokens per sample (always sent: vLLM's default is 16)."""
    temperature: float = 0.0
    seed: int | None = None
    n: int = 1
    stop: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    """When set, the output is constrained to exactly one of these strings."""

    @classmethod
    def chat(cls, messages: Sequence[dict[str, str]], **fields: Any) -> Request:
        """A request from ``[{"role": ..., "content": ...}, ...]``."""
        return cls(messages=tuple((m["role"], m["content"]) for m in messages), **fields)

    def message_dicts(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]

    def sampling(self) -> dict[str, Any]:
        """What a cache key needs besides the messages."""
        return {"max_tokens": self.max_tokens, "temperature": self.temperature, "seed": self.seed,
                "n": self.n, "stop": list(self.stop), "choices": list(self.choices)}


@dataclass(frozen=True)
class Completion:
    """The answer to one request: ``n`` texts and token counts (summed over the n texts)."""

    texts: tuple[str, ...]
    prompt_tokens: int
    completion_tokens: int
    finish_reasons: tuple[str, ...] = field(default=())


OnResult = Callable[[int, Completion], None]
"""Called as each request finishes: (its index in the batch, its completion)."""


class Backend(ABC):
    """A text generator. ``generate`` returns one completion per request, in order."""

    name: ClassVar[str]
    options: GeneratorConfig
    """The backend's options (every one names ``model``; most a ``revision``)."""

    @property
    def model(self) -> str:
        """The model's hub name, local path or served name."""
        return self.options.model

    @property
    def revision(self) -> str | None:
        """The model's pinned revision, when known."""
        return getattr(self.options, "revision", None)

    def identity(self) -> dict[str, str | None]:
        """Backend, model and revision: what lineage records and cache keys name."""
        return {"backend": self.name, "model": self.model, "revision": self.revision}

    @abstractmethod
    def generate(self, requests: Sequence[Request], *,
                 on_result: OnResult | None = None) -> list[Completion]:
        """Complete every request; call ``on_result`` as each one finishes (so a caller can
        persist results before the whole batch is done)."""

    def close(self) -> None:
        """Release the model or connections (a no-op unless the backend holds any)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- options, one model per backend ----------------------------------------------------


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


class OfflineOptions(_Options):
    """The deterministic template backend: for tests and demos only, never for training."""

    backend: Literal["offline"] = "offline"
    model: Literal["curate-offline-template"] = Field(
        OFFLINE_MODEL, description="Always `curate-offline-template`: no model runs.")


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
        "auto", description="Weights' dtype.")
    batch_size: int = Field(8, ge=1, description="Requests per forward batch.")


class VllmOptions(_Options):
    """vLLM's offline engine (``LLM.chat``) on local GPUs."""

    backend: Literal["vllm"] = "vllm"
    model: str = Field(description="Hub name or local path.")
    revision: str | None = Field(None, description="Hub revision (commit sha or tag).")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs the model is split across.")
    dtype: str = Field("auto", description="vLLM's `dtype`.")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="Share of GPU memory used.")
    max_model_len: int | None = Field(None, ge=1, description="Context length cap.")


GeneratorConfig = Annotated[
    OfflineOptions | OpenAIOptions | TransformersOptions | VllmOptions,
    Field(discriminator="backend"),
]
"""A backend and its options, as a recipe or the command line gives them."""

BACKENDS = {
    "offline": "curate.synth.offline:OfflineBackend",
    "openai": "curate.synth.openai_api:OpenAIBackend",
    "transformers": "curate.synth.hf_local:TransformersBackend",
    "vllm": "curate.synth.vllm_engine:VllmBackend",
}
OPTIONS: dict[str, type[_Options]] = {
    "offline": OfflineOptions, "openai": OpenAIOptions,
    "transformers": TransformersOptions, "vllm": VllmOptions,
}
_ADAPTER: TypeAdapter[Any] = TypeAdapter(GeneratorConfig)


def generator_config(name: str, **options: Any) -> _Options:
    """Validate ``options`` for backend ``name``; a ConfigError names a bad or unknown key."""
    if name not in BACKENDS:
        close = difflib.get_close_matches(name, list(BACKENDS), n=1)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        raise ConfigError(f"unknown backend `{name}` (known: {', '.join(BACKENDS)}){hint}")
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


def make_backend(name: str, **options: Any) -> Backend:
    """Build backend ``name`` from its options (see ``OPTIONS[name]`` for the fields)."""
    return backend_from_config(generator_config(name, **options))


def backend_from_config(config: _Options) -> Backend:
    """Build the backend a validated options object describes."""
    module, attr = BACKENDS[config.backend].split(":")  # type: ignore[attr-defined]
    return getattr(importlib.import_module(module), attr)(config)
