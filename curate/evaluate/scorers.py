"""MCQA scorers: a batch of prompts in, one choice per prompt out.

Every scorer is a ``ChoiceScorer`` (a ``curate.models.scoring.Scorer``): a callable
``scorer(prompts) -> list[Scored]`` whose ``teardown()`` frees its model. Which one runs
is decided by ``make_scorer(config)`` through ``curate.models.scoring.SCORERS``:
``loglik_<backend>`` for mode `loglik`, ``generate`` for mode `generate`.

- ``TransformersLoglik``: option-letter log-likelihood in one forward pass per prompt.
  The context and each continuation (`` A``, `` B``, ...) are tokenized the way
  lm-eval's ``HFLM`` does (the whole string, then the context's tokens split off), and
  each letter must be one token there; so the log-likelihood of every option is a
  log-softmax entry of the logits after the context's last token, and one forward pass
  scores all of them. Contexts longer than ``max_length`` keep their last tokens (as
  lm-eval does). The forward pass is the one the DEITA scorer uses
  (``curate.models.scoring.next_token_logprobs``): left-padded batches, explicit position
  ids, only the last position's logits computed (``logits_to_keep=1``).
- ``VllmLoglik``: the same numbers through vLLM's prompt-logprobs API (as lm-eval's
  vLLM model does): one request per option, the token ids of the context plus the
  letter, ``SamplingParams(max_tokens=1, prompt_logprobs=1)``; the letter's entry of the
  last ``prompt_logprobs`` position is its log-likelihood. (Checked against vLLM's
  ``SamplingParams`` and lm-eval's ``vllm_causallms``; no GPU here, so the tests run it
  against a test double of ``vllm.LLM`` that computes prompt logprobs with a real model.)
- ``Generative``: any generation backend writes a chain of thought; the answer is
  extracted with ``curate.synth.verify.extract_choice``. A prompt whose answer cannot be
  read is generated again, up to ``retries`` times, at a temperature raised by a step
  (within [0, 2]) with a larger token budget and a fresh seed
  (``curate.rag.ensemble.attempt_schedule``); None after every try is a parse failure.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from typing_extensions import override

from curate.errors import ConfigError, MissingDependencyError
from curate.evaluate.config import McqaConfig
from curate.evaluate.prompts import Prompt
from curate.models.scoring import SCORERS, Scorer, TransformersModelScorer, VllmEngineScorer
from curate.synth.config import TransformersOptions, VllmOptions

if TYPE_CHECKING:
    from curate.synth.backend import Backend

Encode = Callable[[list[str]], list[list[int]]]


@dataclass(frozen=True)
class Scored:
    """A scorer's answer to one prompt. ``choice``: the shown option picked (None: none
    could be read); ``scores``: each option's log-likelihood (log-likelihood mode);
    ``output``: the generated text (generation mode); ``truncated``: the context was cut;
    ``attempts``: generations tried (1 + retries of unreadable answers)."""

    choice: int | None
    scores: tuple[float, ...] | None = None
    output: str | None = None
    truncated: bool = False
    attempts: int = 1


class ChoiceScorer(Scorer):
    """An MCQA scorer: ``identity()`` for results, ``teardown()`` to free the model."""

    @abstractmethod
    def __call__(self, prompts: Sequence[Prompt]) -> list[Scored]:
        """One ``Scored`` per prompt, in order."""

    @classmethod
    @abstractmethod
    def from_config(cls, config: McqaConfig) -> Self:
        """The scorer ``config`` describes, its model loaded."""


def encode_choices(encode: Encode, prompts: Sequence[Prompt], *, max_length: int,
                   what: str, chat: Callable[[str], str] | None = None
                   ) -> list[tuple[list[int], list[int], bool]]:
    """Per prompt: (context token ids, one token id per letter, whether the context was cut).

    Tokenized as lm-eval's ``_encode_pair``: ``encode(context + continuation)`` with the
    context's own tokens split off. A letter that is not exactly one token there is an
    error: its log-likelihood would need a second forward pass. With ``chat`` (the model's
    chat template: prompt text -> a user turn and the assistant's opening), the context is
    the templated prompt and each continuation is the bare letter, the assistant's first word.
    """
    texts = [p.text if chat is None else chat(p.text) for p in prompts]
    options = [p.continuations if chat is None else p.letters for p in prompts]
    contexts = encode(texts)
    wholes = encode([t + c for t, cs in zip(texts, options, strict=True) for c in cs])
    out = []
    at = 0
    for prompt, context, continuations in zip(prompts, contexts, options, strict=False):
        letters = []
        for continuation in continuations:
            whole = wholes[at]
            at += 1
            rest = whole[len(context):]
            if whole[:len(context)] != context or len(rest) != 1:
                raise ConfigError(
                    f"{what}: after the prompt of item {prompt.item.item}, `{continuation}` is "
                    f"{len(rest)} tokens with this tokenizer (log-likelihood mode needs one token "
                    "per option letter); use mode `generate`")
            letters.append(rest[0])
        cut = len(context) > max_length
        out.append((context[-max_length:] if cut else context, letters, cut))
    return out


class TransformersLoglik(ChoiceScorer, TransformersModelScorer):
    """Option-letter log-likelihood with a transformers model (see the module docstring)."""

    def __init__(self, options: TransformersOptions, *, max_length: int | None = None,
                 chat_template: bool = False):
        super().__init__(options, device=options.device, dtype=options.dtype,
                         batch_size=options.batch_size, what="evaluated model")
        self.options = options
        self.max_length = max_length or _model_max_length(self.network, self.tokenizer)
        self.chat = _chat(self.tokenizer, str(self.model)) if chat_template else None

    @classmethod
    @override
    def from_config(cls, config: McqaConfig) -> Self:
        if not isinstance(config.model, TransformersOptions):
            raise ConfigError(f"scorer `loglik_transformers` needs backend `transformers`, "
                              f"not `{config.model.backend}`")
        return cls(config.model, max_length=config.max_length, chat_template=config.chat_template)

    def _encode(self, texts: list[str]) -> list[list[int]]:
        if self.chat is not None:  # the template writes the special tokens itself
            return self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return self.tokenizer(texts)["input_ids"]

    @override
    def __call__(self, prompts: Sequence[Prompt]) -> list[Scored]:
        """Each option letter's log-likelihood after each prompt; the best one is the choice."""
        encoded = encode_choices(self._encode, prompts, max_length=self.max_length,
                                 what=f"model `{self.model}`", chat=self.chat)
        results: list[Scored | None] = [None] * len(prompts)
        for rows, logprobs in self.next_token_logprobs([context for context, _, _ in encoded]):
            for row, i in enumerate(rows):
                _, letters, cut = encoded[i]
                scores = tuple(float(v) for v in logprobs[row, letters])
                results[i] = Scored(choice=_argmax(scores), scores=scores, truncated=cut)
        return [r for r in results if r is not None]


class VllmLoglik(ChoiceScorer, VllmEngineScorer):
    """Option-letter log-likelihood through vLLM's prompt logprobs (see the module docstring)."""

    def __init__(self, options: VllmOptions, *, max_length: int | None = None):
        super().__init__(options, dtype=options.dtype,
                         tensor_parallel_size=options.tensor_parallel_size,
                         gpu_memory_utilization=options.gpu_memory_utilization,
                         max_model_len=options.max_model_len)
        self.options = options
        # the letter is the last prompt token: the context gets one token less
        self.max_length = (max_length or self.max_model_len or 2048) - 1

    @classmethod
    @override
    def from_config(cls, config: McqaConfig) -> Self:
        if not isinstance(config.model, VllmOptions):
            raise ConfigError(f"scorer `loglik_vllm` needs backend `vllm`, not `{config.model.backend}`")
        return cls(config.model, max_length=config.max_length)

    def _encode(self, texts: list[str]) -> list[list[int]]:
        return [list(self.tokenizer.encode(t)) for t in texts]

    @override
    def __call__(self, prompts: Sequence[Prompt]) -> list[Scored]:
        """Each option letter's log-likelihood from vLLM's prompt logprobs."""
        try:
            from vllm import SamplingParams, TokensPrompt
        except ImportError:
            raise MissingDependencyError("vllm", "vllm") from None
        encoded = encode_choices(self._encode, prompts, max_length=self.max_length,
                                 what=f"model `{self.model}`")
        requests = [TokensPrompt(prompt_token_ids=[*context, token])
                    for context, letters, _ in encoded for token in letters]
        params = SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=1, detokenize=False)
        outputs = self.llm.generate(requests, sampling_params=params, use_tqdm=False)
        results = []
        at = 0
        for _, letters, cut in encoded:
            scores = []
            for token in letters:
                last = outputs[at].prompt_logprobs[-1]
                at += 1
                scores.append(float(getattr(last[token], "logprob", last[token])))
            results.append(Scored(choice=_argmax(scores), scores=tuple(scores), truncated=cut))
        return results


class Generative(ChoiceScorer):
    """A chain of thought from any backend, and the letter extracted from it."""

    def __init__(self, backend: Backend, *, max_tokens: int, temperature: float, seed: int,
                 retries: int = 0, temperature_step: float = 0.3, token_step: int = 256):
        self.engine = backend
        self.backend = backend.name
        self.model = backend.model
        self.revision = backend.revision
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.seed = seed
        self.retries = retries
        self.temperature_step = temperature_step
        self.token_step = token_step

    @override
    def __call__(self, prompts: Sequence[Prompt]) -> list[Scored]:
        """Generate for each prompt and extract the letter it concludes with; retry the
        unreadable ones (see the module docstring)."""
        from curate.rag.ensemble import attempt_schedule
        from curate.synth.backend import Request
        from curate.synth.verify import extract_choice

        schedule = attempt_schedule(self.temperature, self.max_tokens, self.retries,
                                    temperature_step=self.temperature_step, token_step=self.token_step)
        results: list[Scored | None] = [None] * len(prompts)
        pending = list(range(len(prompts)))
        for attempt, (temperature, max_tokens) in enumerate(schedule, start=1):
            requests = [Request.chat(list(prompts[i].messages), max_tokens=max_tokens,
                                     temperature=temperature, seed=self.seed + attempt - 1) for i in pending]
            completions = self.engine.generate(requests)
            unread = []
            for i, completion in zip(pending, completions, strict=True):
                prompt = prompts[i]
                text = completion.texts[0]
                shown = [prompt.item.options[j] for j in (prompt.order or range(len(prompt.letters)))]
                results[i] = Scored(choice=extract_choice(text, shown), output=text, attempts=attempt)
                if results[i].choice is None:  # type: ignore[union-attr]
                    unread.append(i)
            pending = unread
            if not pending:
                break
        return [r for r in results if r is not None]

    @classmethod
    @override
    def from_config(cls, config: McqaConfig) -> Self:
        from curate.synth.backend import backend_from_config

        return cls(backend_from_config(config.model), max_tokens=config.max_tokens,
                   temperature=config.temperature, seed=config.seed, retries=config.retries,
                   temperature_step=config.retry_temperature_step,
                   token_step=config.retry_token_step)

    @override
    def teardown(self) -> None:
        """Tear the backend down."""
        self.engine.teardown()


def make_scorer(config: McqaConfig) -> ChoiceScorer:
    """The scorer ``config`` describes (its model loaded): ``SCORERS``' ``loglik_<backend>``
    in mode `loglik`, ``generate`` in mode `generate`."""
    name = f"loglik_{config.model.backend}" if config.mode == "loglik" else "generate"
    scorer: type[ChoiceScorer] = SCORERS.load(name)
    return scorer.from_config(config)


def _chat(tokenizer: Any, model: str) -> Callable[[str], str]:
    """The prompt text as one user turn in the model's chat template, with the assistant's
    opening (``add_generation_prompt``); a ConfigError when the tokenizer has no template."""
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(f"model `{model}`: its tokenizer has no chat template; drop --chat-template")

    def render(text: str) -> str:
        rendered: str = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                      add_generation_prompt=True)
        return rendered

    return render


def _argmax(scores: Sequence[float]) -> int:
    """The first index of the largest score (ties: the earlier option, as numpy's argmax)."""
    best = 0
    for i, value in enumerate(scores):
        if value > scores[best]:
            best = i
    return best


def _model_max_length(network: Any, tokenizer: Any) -> int:
    """The model's maximum positions (or the tokenizer's limit when it is smaller)."""
    positions = getattr(network.config, "max_position_embeddings", None) or 2048
    limit = getattr(tokenizer, "model_max_length", None)
    return min(positions, limit) if isinstance(limit, int) and limit < 1_000_000 else positions
