"""vLLM's offline engine (``vllm.LLM``): built in one place, shut down in one place.

``build_llm`` is the one way curate starts an engine (the ``vllm`` generation backend, the
DEITA scorer on vLLM and the MCQA log-likelihood scorer on vLLM all use it), with the
house's options: the model and ``trust_remote_code`` from a ``ModelSpec``, its
``revision`` only when one is pinned, ``max_model_len`` only when set (else the model's
own), ``logprobs_mode`` only when a caller needs one. These are keyword arguments of
``LLM.__init__`` (``vllm/entrypoints/llm.py``: ``model``, ``trust_remote_code``,
``tensor_parallel_size``, ``dtype``, ``revision``, ``gpu_memory_utilization``; the rest
go through ``**kwargs`` to ``EngineArgs``, whose fields ``max_model_len`` and
``logprobs_mode`` are, ``vllm/engine/arg_utils.py``). ``close_vllm`` gives the GPU
memory back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from curate.config import Dtype, ModelSpec
from curate.errors import MissingDependencyError
from curate.models.loading import free_memory

if TYPE_CHECKING:
    from vllm import LLM

LogprobsMode = Literal["raw_logprobs", "raw_logits", "processed_logprobs", "processed_logits"]
"""vLLM's ``logprobs_mode`` (``vllm/config/model.py``): what ``logprobs`` report; `processed_*`
are taken after the logits processors (``allowed_token_ids``, temperature)."""


def build_llm(spec: ModelSpec, *, dtype: Dtype = "auto", tensor_parallel_size: int = 1,
              gpu_memory_utilization: float = 0.9, max_model_len: int | None = None,
              logprobs_mode: LogprobsMode | None = None) -> LLM:
    """A ``vllm.LLM`` for ``spec`` with these engine options (see the module docstring); a
    MissingDependencyError naming the extra when vLLM is not installed."""
    try:
        from vllm import LLM
    except ImportError:
        raise MissingDependencyError("vllm", "vllm") from None
    engine: dict[str, Any] = {
        "model": spec.model, "tensor_parallel_size": tensor_parallel_size, "dtype": dtype,
        "gpu_memory_utilization": gpu_memory_utilization,
        "trust_remote_code": spec.trust_remote_code,
    }
    if spec.revision is not None:
        engine["revision"] = spec.revision
    if max_model_len is not None:
        engine["max_model_len"] = max_model_len
    if logprobs_mode is not None:
        engine["logprobs_mode"] = logprobs_mode
    return LLM(**engine)


def engine_max_model_len(llm: Any) -> int | None:
    """The context length a ``vllm.LLM`` runs with (``llm.llm_engine.model_config.max_model_len``:
    the option given, else the model's own), or None when it does not say."""
    config = getattr(getattr(llm, "llm_engine", None), "model_config", None)
    value = getattr(config, "max_model_len", None)
    return int(value) if isinstance(value, int) else None


def close_vllm(llm: Any) -> None:
    """Shut a ``vllm.LLM`` down and free its GPU memory, so the next step can load its own.

    vLLM's V1 engine runs the model in an engine-core process (``LLM.llm_engine.engine_core``,
    ``vllm/v1/engine/core_client.py``) that holds the GPU memory until ``shutdown()``:
    dropping the Python object alone does not stop it. Newer vLLM has ``LLM.shutdown()``
    (which calls the same); older ones only the engine core's. Then the tensor-parallel
    groups are destroyed (``vllm.distributed``: ``destroy_model_parallel``,
    ``destroy_distributed_environment``, as vLLM's own test clean-up does), the references
    dropped, garbage collected and the CUDA cache emptied (``free_memory``)."""
    if llm is None:
        return
    shutdown = getattr(llm, "shutdown", None)
    if not callable(shutdown):
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        shutdown = getattr(core, "shutdown", None)
    if callable(shutdown):
        shutdown()
    _destroy_vllm_groups()
    del llm, shutdown
    free_memory()


def _destroy_vllm_groups() -> None:
    """Tear down vLLM's model-parallel and distributed state (a no-op when none was made)."""
    import contextlib
    import sys

    if "vllm" not in sys.modules:
        return
    try:
        from vllm.distributed import destroy_distributed_environment, destroy_model_parallel
    except ImportError:  # a vLLM without these (or a test double of it): nothing to tear down
        return
    with contextlib.suppress(AssertionError, RuntimeError):
        destroy_model_parallel()
        destroy_distributed_environment()
