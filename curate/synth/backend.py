"""Generation backends: one interface over vLLM, OpenAI-compatible endpoints, local
transformers models and a deterministic offline template.

A backend takes a batch of chat ``Request``s and returns one ``Completion`` per request,
in order: ``n`` texts and token counts. Backends are named in recipes and on the
command line, so they are registered by name (``curate.synth.config.BACKENDS``, which
plugins extend through ``curate.backends`` entry points); each has a typed options model
(its ``options_class``), validated strictly, so a misspelled option is an error, never
a silent default. Nothing heavy (httpx, torch, vllm) is imported until a backend is built.

A backend has the lifecycle of everything that holds a model (``curate.lifecycle``): it
loads its model when built (``make_backend``, ``backend_from_config``) and ``teardown``
frees it (a vLLM engine gives its GPU memory back, an HTTP client its connections);
``with make_backend(...) as backend:`` tears it down at the end of the block.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from curate.errors import ConfigError, CurateError
from curate.lifecycle import Lifecycle
from curate.synth.config import (
    BACKENDS,
    GREEDY_BELOW,
    MAX_TEMPERATURE,
    BackendOptions,
    generator_config,
)


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

    def __post_init__(self) -> None:
        # vLLM's limits (vllm/sampling_params.py, `SamplingParams._verify_args` and
        # `_verify_greedy_sampling`), checked here so no batch reaches an engine that rejects it.
        if not 0 <= self.temperature <= MAX_TEMPERATURE:
            raise ConfigError(f"sampling `temperature` {self.temperature} is outside [0, 2], the "
                              "range vLLM and the OpenAI API accept")
        if self.n < 1 or self.max_tokens < 1:
            raise ConfigError(f"a request needs `n` >= 1 and `max_tokens` >= 1 (got n={self.n}, "
                              f"max_tokens={self.max_tokens})")
        if self.n > 1 and self.temperature < GREEDY_BELOW:
            raise ConfigError(f"`n`={self.n} samples need a positive `temperature`: greedy sampling "
                              "(temperature 0) gives one answer, and vLLM rejects n > 1 with it")

    @classmethod
    def chat(cls, messages: Sequence[dict[str, str]], **fields: Any) -> Request:
        """A request from ``[{"role": ..., "content": ...}, ...]``."""
        return cls(messages=tuple((m["role"], m["content"]) for m in messages), **fields)

    def message_dicts(self) -> list[dict[str, str]]:
        """The conversation as ``[{"role": ..., "content": ...}]``."""
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


class Backend(Lifecycle, ABC):
    """A text generator. ``generate`` returns one completion per request, in order; the
    model loads when the backend is built and ``teardown`` frees it."""

    name: ClassVar[str]
    options_class: ClassVar[type[BackendOptions]]
    """The backend's options model (its ``backend`` field is ``Literal[name]``)."""
    options: BackendOptions
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


def make_backend(name: str, **options: Any) -> Backend:
    """Build backend ``name`` from its options (its ``options_class`` has the fields)."""
    return backend_from_config(generator_config(name, **options))


def backend_from_config(config: BackendOptions) -> Backend:
    """Build the backend a validated options object describes."""
    backend: Backend = BACKENDS.load(config.backend)(config)
    return backend
