"""The ``transformers`` backend: a local causal LM (hub name or path), batched, CPU or GPU.

Prompts go through the tokenizer's chat template and are left-padded into batches of
``batch_size`` rows (a request with ``n`` samples takes ``n`` rows).

Determinism: sampling is done per row by a logits processor with the row's own
``torch.Generator``, seeded from (request seed, sample number); ``generate`` itself
runs greedily over the processed scores. So a request's text depends on its own
messages, seed and temperature, not on the other requests in its batch or on the
global RNG; the only cross-row effect left is floating-point noise from padding,
which can in rare cases flip a near-tie. Temperature 0 is greedy. A request without
a seed gets seed 0. ``max_tokens`` and ``stop`` are applied per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from typing_extensions import override

from curate.errors import ConfigError
from curate.synth.backend import Backend, Completion, OnResult, Request
from curate.synth.config import TransformersOptions

if TYPE_CHECKING:
    import torch


class TransformersBackend(Backend):
    """A local causal LM through transformers, batched with left padding."""
    name = "transformers"
    options_class = TransformersOptions
    options: TransformersOptions

    def __init__(self, options: TransformersOptions):
        from curate.models import load_causal_lm, resolve_device

        self.options = options
        self.device = resolve_device(options.device)
        self.network, tokenizer = load_causal_lm(
            options.model, revision=options.revision, dtype=options.dtype, device=self.device,
            trust_remote_code=options.trust_remote_code, what="generator model")
        if tokenizer.chat_template is None:
            raise ConfigError(f"model `{options.model}`: its tokenizer has no chat template")
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.tokenizer = tokenizer

    @override
    def teardown(self) -> None:
        """Drop the model and give its memory back."""
        from curate.models import free_memory

        self.__dict__.pop("network", None)
        free_memory()

    @override
    def generate(self, requests: Sequence[Request], *,
                 on_result: OnResult | None = None) -> list[Completion]:
        if any(r.choices for r in requests):
            raise ConfigError("backend `transformers` does not constrain answers to `choices`; "
                              "use the `vllm` backend or an `openai` vLLM server")
        rows = [(i, k) for i, r in enumerate(requests) for k in range(r.n)]
        texts: dict[tuple[int, int], tuple[str, int, str]] = {}
        prompt_tokens: dict[int, int] = {}
        finished = 0
        size = self.options.batch_size
        results: list[Completion | None] = [None] * len(requests)
        for start in range(0, len(rows), size):
            batch = rows[start:start + size]
            for row, (text, prompt, produced, reason) in zip(batch, self._batch(requests, batch)):
                texts[row] = (text, produced, reason)
                prompt_tokens[row[0]] = prompt
            # report every request whose rows are all done, in order
            while finished < len(requests) and all(
                    (finished, k) in texts for k in range(requests[finished].n)):
                parts = [texts[(finished, k)] for k in range(requests[finished].n)]
                completion = Completion(
                    texts=tuple(p[0] for p in parts), prompt_tokens=prompt_tokens[finished],
                    completion_tokens=sum(p[1] for p in parts),
                    finish_reasons=tuple(p[2] for p in parts))
                results[finished] = completion
                if on_result is not None:
                    on_result(finished, completion)
                finished += 1
        return [r for r in results if r is not None]

    def _batch(self, requests: Sequence[Request],
               rows: list[tuple[int, int]]) -> list[tuple[str, int, int, str]]:
        """(text, prompt tokens, completion tokens, finish reason) for each (request, sample)."""
        import torch
        from transformers import LogitsProcessorList

        tokenizer = self.tokenizer
        prompts = [tokenizer.apply_chat_template(requests[i].message_dicts(), tokenize=False,
                                                 add_generation_prompt=True) for i, _ in rows]
        inputs = tokenizer(prompts, return_tensors="pt", padding=True,
                           add_special_tokens=False).to(self.device)
        generators = []
        for i, k in rows:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(((requests[i].seed or 0) * 1_000_003 + k) % 2**63)
            generators.append(generator)
        sampler = _RowSampler([requests[i].temperature for i, _ in rows], generators)
        longest = max(requests[i].max_tokens for i, _ in rows)
        with torch.no_grad():
            output = self.network.generate(  # type: ignore[operator]
                **inputs, max_new_tokens=longest, do_sample=False, num_beams=1,
                logits_processor=LogitsProcessorList([sampler]),
                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            )
        generated = output[:, inputs["input_ids"].shape[1]:].tolist()
        lengths = inputs["attention_mask"].sum(dim=1).tolist()
        eos = tokenizer.eos_token_id
        answers = []
        for (i, _), tokens, prompt in zip(rows, generated, lengths):
            request = requests[i]
            reason = "length"
            if eos in tokens:
                tokens, reason = tokens[:tokens.index(eos) + 1], "stop"
            if len(tokens) > request.max_tokens:
                tokens, reason = tokens[:request.max_tokens], "length"
            text = str(tokenizer.decode(tokens, skip_special_tokens=True))
            cut = [text.find(s) for s in request.stop if s in text]
            if cut:
                text, reason = text[:min(cut)], "stop"
                tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
            answers.append((text, int(prompt), len(tokens), reason))
        return answers


class _RowSampler:
    """A logits processor that samples each row with its own generator and temperature,
    leaving only the drawn token finite, so greedy decoding then picks it."""

    def __init__(self, temperatures: list[float], generators: list[torch.Generator]):
        self.temperatures = temperatures
        self.generators = generators

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        import torch

        chosen = torch.empty(scores.shape[0], dtype=torch.long, device=scores.device)
        for row, (temperature, generator) in enumerate(zip(self.temperatures, self.generators)):
            if temperature <= 0:
                chosen[row] = scores[row].argmax()
            else:
                probs = torch.softmax(scores[row].float() / temperature, dim=-1)
                chosen[row] = torch.multinomial(probs, 1, generator=generator)[0]
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, chosen[:, None], 0.0)
        return out
