"""The ``offline`` backend: deterministic template text, for tests and demos only.

No model runs. It reads the question (and the options and gold answer, when the
prompt gives them) back out of curate's own CoT prompts and writes a plausible chain
of thought: a restatement, a line per option, and ``Answer: X``. With the gold
answer given it concludes with it; withheld, it picks an option from a hash of the
prompt and the seed, so retries land on other options. Its model name,
``curate-offline-template``, is in every record's lineage, and records it produced
carry ``"offline_backend": true`` in their ``meta``: they are no training data.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from typing_extensions import override

from curate.synth.backend import Backend, Completion, OnResult, Request
from curate.synth.config import OfflineOptions
from curate.synth.templates import GOLD_MARKERS
from curate.synth.verify import words

_OPTION = re.compile(r"^([A-Z])\. (.*)$")


class OfflineBackend(Backend):
    """Deterministic template text: for tests and demos only, never for training."""
    name = "offline"
    options_class = OfflineOptions
    options: OfflineOptions

    def __init__(self, options: OfflineOptions | None = None):
        self.options = options or OfflineOptions()

    @override
    def generate(self, requests: Sequence[Request], *,
                 on_result: OnResult | None = None) -> list[Completion]:
        results = []
        for index, request in enumerate(requests):
            prompt = request.messages[-1][1] if request.messages else ""
            texts = tuple(_clip(self._text(request, prompt, k), request.max_tokens)
                          for k in range(request.n))
            completion = Completion(
                texts=texts,
                prompt_tokens=sum(len(c.split()) for _, c in request.messages),
                completion_tokens=sum(len(t.split()) for t in texts),
                finish_reasons=("stop",) * request.n,
            )
            results.append(completion)
            if on_result is not None:
                on_result(index, completion)
        return results

    def _text(self, request: Request, prompt: str, sample: int) -> str:
        pick = int.from_bytes(hashlib.sha256(
            f"{request.seed}|{sample}|{request.temperature}|{prompt}".encode()).digest()[:8], "big")
        if request.choices:
            return request.choices[pick % len(request.choices)]
        question = _section(prompt, "Question:\n")
        options = [(m.group(1), m.group(2)) for line in _section(prompt, "Options:\n").splitlines()
                   if (m := _OPTION.match(line.strip()))]
        if options:
            gold = _section(prompt, GOLD_MARKERS["mcqa"])[:1]
            letters = [letter for letter, _ in options]
            answer = gold if gold in letters else letters[pick % len(letters)]
            return _multiple_choice(question, options, answer)
        reference = _section(prompt, GOLD_MARKERS["open_qa"])
        return _open_answer(question or prompt, reference)


def _section(prompt: str, marker: str) -> str:
    """The text after ``marker`` up to the next blank line ('' when absent)."""
    start = prompt.find(marker)
    if start < 0:
        return ""
    rest = prompt[start + len(marker):]
    end = rest.find("\n\n")
    return (rest if end < 0 else rest[:end]).strip()


def _topic(question: str) -> str:
    """A few of the question's longest distinct words: a restatement that does not copy it."""
    seen: list[str] = []
    for word in sorted(words(question), key=len, reverse=True):
        if word not in seen and len(word) > 3:
            seen.append(word)
    return ", ".join(seen[:4]) or "the topic given"


def _multiple_choice(question: str, options: list[tuple[str, str]], answer: str) -> str:
    lines = [
        f"Restated: among {len(options)} options, we must pick the one that best answers a "
        f"question about {_topic(question)}.",
        "Let us weigh each option in turn.",
    ]
    for letter, text in options:
        if letter == answer:
            lines.append(f"- Option {letter} ({text}) fits what is asked, so it is the best choice.")
        else:
            lines.append(f"- Option {letter} ({text}) fits less well than option {answer}, "
                         "so we set it aside.")
    lines.append(f"Having weighed every option, option {answer} is the one that fits.")
    lines.append(f"Answer: {answer}")
    return "\n".join(lines)


def _open_answer(question: str, reference: str) -> str:
    first = re.split(r"(?<=[.!?])\s+", reference.strip(), maxsplit=1)[0] if reference else ""
    conclusion = first or f"It depends on {_topic(question)}."
    return "\n".join([
        f"Restated: the question asks about {_topic(question)}.",
        "We recall the relevant facts and reason from them step by step.",
        f"Answer: {conclusion}",
    ])


def _clip(text: str, max_tokens: int) -> str:
    """At most ``max_tokens`` whitespace-separated words (the offline notion of a token)."""
    parts = text.split(" ")
    return text if len(parts) <= max_tokens else " ".join(parts[:max_tokens])
