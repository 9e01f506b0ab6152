"""Scorers: models that score prompts, one hierarchy for curation and evaluation.

``Scorer`` (a ``curate.lifecycle.Lifecycle``) is the base of every scorer: the DEITA
scorers of the quality stage (``curate.curation.quality.DeitaScorer``: prompts in, expected
digits out) and the MCQA scorers of evaluation (``curate.evaluate.scorers.ChoiceScorer``:
prompts in, one chosen option each). A scorer loads its model when it is built and frees
it in ``teardown``; it names its backend, model and revision (``identity``). What a
backend needs is written once, here:

- ``TransformersModelScorer``: a causal LM through transformers (``load_causal_lm``) and
  the one forward pass both transformers scorers use, ``next_token_logprobs``: the
  log-probabilities of the next token after each prompt, from left-padded batches with
  explicit position ids and only the last position's logits computed (``logits_to_keep=1``);
- ``VllmEngineScorer``: a ``vllm.LLM`` from ``curate.models.vllm.build_llm``, its tokenizer
  and the context length the engine reports; ``teardown`` shuts the engine down.

``SCORERS`` maps scorer names to their classes, as every registry of curate does:
``deita_<backend>`` for the quality stage's ``backend`` option and ``loglik_<backend>``
for ``eval mcqa --mode loglik``'s model backend; ``generate`` is ``--mode generate``.
Another package adds scorers through ``curate.scorers`` entry points.
"""

from __future__ import annotations

import inspect
from abc import ABC
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from typing_extensions import override

from curate.config import Device, Dtype, ModelSpec
from curate.lifecycle import Lifecycle
from curate.models.loading import free_memory, load_causal_lm, resolve_device
from curate.models.vllm import LogprobsMode, build_llm, close_vllm, engine_max_model_len
from curate.registry import Registry

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

SCORERS: Registry[Any] = Registry("scorer", "curate.scorers", {
    "deita_transformers": "curate.curation.quality:TransformersScorer",
    "deita_vllm": "curate.curation.quality:VllmScorer",
    "loglik_transformers": "curate.evaluate.scorers:TransformersLoglik",
    "loglik_vllm": "curate.evaluate.scorers:VllmLoglik",
    "generate": "curate.evaluate.scorers:Generative",
})
"""Scorer name -> its ``Scorer`` class: ``deita_<backend>`` builds a ``DeitaScorer``
(``from_config(QualityConfig, ...)``), ``loglik_<backend>`` and ``generate`` a
``ChoiceScorer`` (``from_config(McqaConfig)``)."""


class Scorer(Lifecycle, ABC):
    """Base of every scorer: its backend, model and revision; loaded when built, freed by
    ``teardown`` (``with scorer:`` tears it down at the end of the block)."""

    backend: str
    """The backend the model runs on (`transformers`, `vllm`, a generation backend's name)."""
    model: str
    """The model's hub name or local folder."""
    revision: str | None
    """The model's pinned revision, when known."""

    def identity(self) -> dict[str, str | None]:
        """Backend, model and revision: what results name."""
        return {"backend": self.backend, "model": self.model, "revision": self.revision}


def pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id left padding uses: the tokenizer's pad token, else its end-of-text, else its
    unknown token, else 0 (padded positions are masked, so any id gives the same numbers)."""
    found = (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id)
    return next((int(i) for i in found if i is not None), 0)


def next_token_logprobs(network: Any, sequences: Sequence[Sequence[int]], *, pad_id: int,
                        batch_size: int, device: str) -> Iterator[tuple[list[int], torch.Tensor]]:
    """Log-probabilities of the token after each of ``sequences`` (token ids), batch by batch.

    Sequences go longest first (as lm-eval orders requests) into batches of ``batch_size``,
    each left-padded with ``pad_id`` to its longest sequence; the attention mask hides the
    padding and the position ids count from each sequence's first real token, so a padded
    sequence is scored as it would be alone. One forward pass per batch computes only the
    last position's logits (``logits_to_keep=1``, when the model takes it). Yields (indices
    into ``sequences``, a float32 CPU tensor of their log-probabilities, one row each over
    the vocabulary)."""
    import torch

    last_only = ({"logits_to_keep": 1}
                 if "logits_to_keep" in inspect.signature(network.forward).parameters else {})
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        width = max(len(sequences[i]) for i in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            ids[row, width - len(sequences[i]):] = torch.tensor(list(sequences[i]), dtype=torch.long)
            mask[row, width - len(sequences[i]):] = 1
        positions = (mask.cumsum(dim=-1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = network(input_ids=ids.to(device), attention_mask=mask.to(device),
                             position_ids=positions.to(device), **last_only).logits
            logprobs = torch.log_softmax(logits[:, -1, :].float(), dim=-1).cpu()
        yield batch, logprobs


class TransformersModelScorer(Scorer):
    """A scorer on a transformers causal LM (CPU or GPU): the model and tokenizer, loaded when
    built, and ``next_token_logprobs`` over them."""

    backend = "transformers"

    def __init__(self, spec: ModelSpec, *, device: Device = "auto", dtype: Dtype = "auto",
                 batch_size: int = 16, what: str = "scorer model"):
        self.model = spec.model
        self.revision = spec.revision
        self.device = resolve_device(device)
        self.network, self.tokenizer = load_causal_lm(
            spec.model, revision=spec.revision, dtype=dtype, device=self.device,
            trust_remote_code=spec.trust_remote_code, what=what)
        self.pad_id = pad_token_id(self.tokenizer)
        self.batch_size = batch_size

    def next_token_logprobs(
            self, sequences: Sequence[Sequence[int]]) -> Iterator[tuple[list[int], torch.Tensor]]:
        """``next_token_logprobs`` (the function) with this scorer's model, in batches of its
        ``batch_size``."""
        return next_token_logprobs(self.network, sequences, pad_id=self.pad_id,
                                   batch_size=self.batch_size, device=self.device)

    @override
    def teardown(self) -> None:
        """Drop the model and give its memory back."""
        self.__dict__.pop("network", None)
        free_memory()


class VllmEngineScorer(Scorer):
    """A scorer on vLLM's offline engine (GPU): the engine, built when the scorer is (with
    ``build_llm``'s options), its tokenizer and ``max_model_len``, the context length it
    reports (else the option given)."""

    backend = "vllm"

    def __init__(self, spec: ModelSpec, *, dtype: Dtype = "auto", tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.9, max_model_len: int | None = None,
                 logprobs_mode: LogprobsMode | None = None):
        self.model = spec.model
        self.revision = spec.revision
        self.llm = build_llm(spec, dtype=dtype, tensor_parallel_size=tensor_parallel_size,
                             gpu_memory_utilization=gpu_memory_utilization,
                             max_model_len=max_model_len, logprobs_mode=logprobs_mode)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = engine_max_model_len(self.llm) or max_model_len

    @override
    def teardown(self) -> None:
        """Shut the engine down and give its GPU memory back."""
        close_vllm(self.__dict__.pop("llm", None))
