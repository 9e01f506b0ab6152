"""A test double of vLLM's offline engine (``vllm.LLM``), NAMED as such: vLLM needs a GPU and
is never installed here. ``install_vllm_double(monkeypatch)`` puts a fake ``vllm`` module in
``sys.modules`` whose ``LLM`` is ``VllmLLMTestDouble``.

The double runs a real transformers model from the folder it is given (a tiny Llama built by
``tests/tiny_lm.py``) on the CPU, and enforces the limits of vLLM 0.33 that curate must respect,
each as vLLM's own source sets it:

- ``SamplingParams``: temperature in [0, 2] and ``n == 1`` when greedy
  (``vllm/sampling_params.py``, ``_verify_args`` / ``_verify_greedy_sampling``);
- prompts: a prompt of ``max_model_len`` tokens or more is rejected, since the output needs
  at least one position (``vllm/v1/engine/input_processor.py``, ``_validate_prompt_len``);
- GPU memory: an engine asks for ``gpu_memory_utilization`` of the device's total memory at
  start-up and fails when less is free because engines still alive hold it
  (``request_memory`` in ``vllm/v1/worker/utils.py``: ``ValueError: Free memory on device ...
  is less than desired GPU memory utilization``); ``llm_engine.engine_core.shutdown()``
  (``vllm/v1/engine/core_client.py``) gives it back.

Every engine start and shutdown lands in ``VllmLLMTestDouble.events``, so a test can assert the
order in which a build loads and closes its engines.
"""

from __future__ import annotations

import sys
import types
from typing import Any, ClassVar


class VllmValidationErrorDouble(ValueError):
    """Stands for ``vllm.exceptions.VLLMValidationError`` (a ``ValueError``)."""


def sampling_params_double(*, n: int = 1, temperature: float = 1.0, max_tokens: int | None = 16,
                           **rest: Any) -> types.SimpleNamespace:
    """``vllm.SamplingParams`` with the checks of ``vllm/sampling_params.py`` that curate meets."""
    if not 0.0 <= temperature <= 2.0:
        raise VllmValidationErrorDouble(f"temperature must be in [0, 2], got {temperature}.")
    if temperature < 1e-5 and n > 1:
        raise VllmValidationErrorDouble(f"n must be 1 when using greedy sampling, got {n}.")
    if max_tokens is not None and max_tokens < 1:
        raise VllmValidationErrorDouble(f"max_tokens must be at least 1, got {max_tokens}.")
    return types.SimpleNamespace(n=n, temperature=temperature, max_tokens=max_tokens, **rest)


class _EngineCoreDouble:
    """``LLM.llm_engine.engine_core``: the engine-core process that holds the GPU memory."""

    def __init__(self, llm: VllmLLMTestDouble):
        self.llm = llm

    def shutdown(self) -> None:
        if self.llm in VllmLLMTestDouble.alive:
            VllmLLMTestDouble.alive.remove(self.llm)
            VllmLLMTestDouble.events.append(("shutdown", self.llm.name))


class VllmLLMTestDouble:
    """A test double of ``vllm.LLM`` (see the module docstring)."""

    events: ClassVar[list[tuple[str, str]]] = []
    alive: ClassVar[list[VllmLLMTestDouble]] = []
    instances: ClassVar[list[VllmLLMTestDouble]] = []
    model_max_len: ClassVar[int] = 512
    """The context length a model reports when ``max_model_len`` is not given."""

    def __init__(self, **engine: Any):
        from curate.models import load_causal_lm

        self.engine = engine
        self.name = str(engine["model"])
        held = sum(e.engine.get("gpu_memory_utilization", 0.9) for e in self.alive)
        wanted = engine.get("gpu_memory_utilization", 0.9)
        if held + wanted > 1.0 + 1e-9:
            raise ValueError(f"Free memory on device cuda:0 ({1 - held:.2f}) is less than desired "
                             f"GPU memory utilization ({wanted:.2f}). Decrease GPU memory "
                             "utilization or reduce GPU memory used by other processes.")
        self.network, self.tokenizer = load_causal_lm(self.name, device="cpu", dtype="float32")
        max_model_len = engine.get("max_model_len") or self.model_max_len
        self.llm_engine = types.SimpleNamespace(
            model_config=types.SimpleNamespace(max_model_len=max_model_len),
            engine_core=_EngineCoreDouble(self))
        self.prompts: list[list[int]] = []
        self.params: list[Any] = []
        VllmLLMTestDouble.alive.append(self)
        VllmLLMTestDouble.instances.append(self)
        VllmLLMTestDouble.events.append(("start", self.name))

    def get_tokenizer(self) -> Any:
        return self.tokenizer

    def _check_prompt(self, ids: list[int]) -> None:
        limit = self.llm_engine.model_config.max_model_len
        if len(ids) >= limit:
            raise VllmValidationErrorDouble(
                f"The decoder prompt (length {len(ids)}) plus the number of requested output "
                f"tokens (at least 1) is longer than the maximum model length of {limit}.")

    def generate(self, prompts: list[dict[str, list[int]]], sampling_params: Any,
                 use_tqdm: bool = True) -> list[Any]:
        """One token per prompt restricted to ``allowed_token_ids``, with the processed
        log-probabilities of the ``logprobs`` best of them (``logprobs_mode="processed_logprobs"``)."""
        import torch

        assert self.engine.get("logprobs_mode") == "processed_logprobs"
        for prompt in prompts:
            self._check_prompt(prompt["prompt_token_ids"])
        self.params.append(sampling_params)
        allowed = list(sampling_params.allowed_token_ids)
        outputs = []
        for prompt in prompts:
            ids = prompt["prompt_token_ids"]
            self.prompts.append(ids)
            with torch.no_grad():
                logits = self.network(input_ids=torch.tensor([ids])).logits[0, -1].double()
            logprobs = torch.log_softmax(logits[allowed], dim=0)
            best = torch.argsort(logprobs, descending=True)[: sampling_params.logprobs]
            top = {allowed[i]: types.SimpleNamespace(logprob=float(logprobs[i])) for i in best.tolist()}
            outputs.append(types.SimpleNamespace(outputs=[types.SimpleNamespace(logprobs=[top])]))
        return outputs

    def chat(self, conversations: list[list[dict[str, str]]], sampling_params: list[Any],
             use_tqdm: bool = True) -> list[Any]:
        """Greedy continuations of each conversation (the double checks sampling options; it
        does not sample), ``n`` copies each, at most ``max_tokens`` tokens."""
        import torch

        outputs = []
        for messages, params in zip(conversations, sampling_params):
            self.params.append(params)
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                     tokenize=True, return_dict=True)["input_ids"]
            self._check_prompt(ids)
            with torch.no_grad():
                out = self.network.generate(torch.tensor([ids]), max_new_tokens=params.max_tokens,
                                            do_sample=False, pad_token_id=self.tokenizer.pad_token_id)
            new = out[0, len(ids):].tolist()
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            sample = types.SimpleNamespace(text=text, token_ids=new, finish_reason="length")
            outputs.append(types.SimpleNamespace(prompt_token_ids=ids, outputs=[sample] * params.n))
        return outputs


def install_vllm_double(monkeypatch: Any) -> type[VllmLLMTestDouble]:
    """Put the fake ``vllm`` module (``LLM``, ``SamplingParams``, ``vllm.sampling_params``) in
    ``sys.modules`` and clear the double's records."""
    module = types.ModuleType("vllm")
    module.LLM = VllmLLMTestDouble  # type: ignore[attr-defined]
    module.SamplingParams = sampling_params_double  # type: ignore[attr-defined]
    params = types.ModuleType("vllm.sampling_params")
    params.StructuredOutputsParams = lambda **kw: types.SimpleNamespace(**kw)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", params)
    VllmLLMTestDouble.events.clear()
    VllmLLMTestDouble.alive.clear()
    VllmLLMTestDouble.instances.clear()
    monkeypatch.setattr(VllmLLMTestDouble, "model_max_len", 512)
    return VllmLLMTestDouble


QUESTIONS = ["What is the capital of France?", "How do I treat a cold?", "Explain why the sky is blue.",
             "Give me a list of fruits.", "What are the symptoms of diabetes?", "Thank you!"]
ANSWERS = ["Paris is the capital of France.", "Rest, fluids and time.", "Sunlight scatters off air.",
           "Apples, pears, plums.", "Thirst and tiredness.", "You are welcome."]


def write_chat_source(store: Any, name: str, *, rows: int, shards: int) -> None:
    """Ingested records of a small chat source ``name`` in ``store``: ``rows`` single-turn
    question-answer records over ``shards`` shards (for runs that must stay fast)."""
    import pyarrow as pa

    from curate.records import SCHEMA, conform, record_id

    folder = store.source(name)
    folder.open(f"test-{name}-{rows}-{shards}")
    per = -(-rows // shards)
    for shard in range(shards):
        records = []
        for row in range(shard * per, min(rows, (shard + 1) * per)):
            q, a = QUESTIONS[row % len(QUESTIONS)], ANSWERS[row % len(ANSWERS)]
            record = {"source": name, "source_version": "1", "row": row, "kind": "chat",
                      "messages": [{"role": "user", "content": f"{q} {'why ' * (row % 7)}"},
                                   {"role": "assistant", "content": a}],
                      "domain": "general", "origin": "real", "task": "qa", "license": "CC0-1.0"}
            records.append({**record, "id": record_id(record)})
        table = conform(pa.Table.from_pylist(records, schema=SCHEMA))
        folder.write_shard(f"{shard:05d}", {"records": table}, {"rows": table.num_rows})
    folder.mark_complete()
