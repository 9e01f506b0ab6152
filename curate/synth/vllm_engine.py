"""The ``vllm`` backend: vLLM's offline engine on local GPUs (``pip install 'curate[vllm]'``).

``LLM.chat`` applies the model's chat template; each request gets its own
``SamplingParams`` with ``max_tokens`` always set (vLLM's default is 16), its ``n``,
``seed`` and ``stop``, and, when it constrains its answer, structured output
``StructuredOutputsParams(choice=...)``. vLLM schedules the whole batch itself, so
results are reported when the batch returns. The engine is built by
``curate.models.vllm.build_llm`` (with the backend's options) and shut down by ``teardown``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from typing_extensions import override

from curate.synth.backend import Backend, Completion, OnResult, Request
from curate.synth.config import VllmOptions


class VllmBackend(Backend):
    """vLLM's offline engine on local GPUs (``LLM.chat``)."""
    name = "vllm"
    options_class = VllmOptions
    options: VllmOptions

    def __init__(self, options: VllmOptions):
        from curate.models.vllm import build_llm

        self.options = options
        self.llm = build_llm(options, dtype=options.dtype,
                             tensor_parallel_size=options.tensor_parallel_size,
                             gpu_memory_utilization=options.gpu_memory_utilization,
                             max_model_len=options.max_model_len)

    @override
    def teardown(self) -> None:
        """Shut the engine down and give its GPU memory back (the next step may need it)."""
        from curate.models.vllm import close_vllm

        close_vllm(self.__dict__.pop("llm", None))

    @override
    def generate(self, requests: Sequence[Request], *,
                 on_result: OnResult | None = None) -> list[Completion]:
        if not requests:
            return []
        outputs = self.llm.chat([r.message_dicts() for r in requests],
                                [sampling_params(r) for r in requests], use_tqdm=False)
        results = []
        for index, output in enumerate(outputs):
            completion = Completion(
                texts=tuple(o.text for o in output.outputs),
                prompt_tokens=len(output.prompt_token_ids or ()),
                completion_tokens=sum(len(o.token_ids) for o in output.outputs),
                finish_reasons=tuple(str(o.finish_reason) for o in output.outputs),
            )
            results.append(completion)
            if on_result is not None:
                on_result(index, completion)
        return results


def sampling_params(request: Request) -> Any:
    """vLLM ``SamplingParams`` for one request."""
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    structured = StructuredOutputsParams(choice=list(request.choices)) if request.choices else None
    return SamplingParams(
        n=request.n, temperature=request.temperature, max_tokens=request.max_tokens,
        seed=request.seed, stop=list(request.stop) or None, structured_outputs=structured,
    )
