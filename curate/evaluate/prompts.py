"""Prompts for MCQA evaluation: one function builds them, whatever scores them.

``build_prompt(item, template, examples=..., order=...)`` is the only place a question
becomes model input, so the log-likelihood scorer, the generative scorer, the lm-eval
export and a retrieval-augmented evaluation (few-shot examples from an index, choice
shuffles for an ensemble) all speak the same text:

- ``examples``: solved items put before the question (few-shot); each is shown with its
  options and answer in the same layout, separated by a blank line;
- ``order``: the options in another order (``order[k]`` is the original index of the
  option shown at position ``k``); ``Prompt.original`` maps a chosen letter back.

Templates:

- ``letters`` (log-likelihood): lm-eval's MMLU layout, ``{question}\\nA. {option}\\n...Answer:``;
  the scored continuation of each option is `` A``, `` B``, ...;
- ``cot`` (generation): a user turn with ``Question:`` and ``Options:`` sections asking for
  step-by-step reasoning and a last line ``Answer: <letter>``.

A template's ``hash`` (16 hex digits of the SHA-256 of its texts) goes into every result,
so two results with different prompts never pass as comparable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from curate.errors import ConfigError
from curate.evaluate.items import McqaItem

TemplateName = Literal["letters", "cot"]

COT_SYSTEM = "You are an expert answering exam questions. Reason step by step, then answer."
COT_INSTRUCTION = ('Think step by step about each option, then end with a final line of the form '
                   '"Answer: <letter>".')


def letter(index: int) -> str:
    """The label of option ``index``: A, B, C, ..."""
    return chr(ord("A") + index)


@dataclass(frozen=True)
class Template:
    """A prompt layout; see the module docstring for each one."""

    name: TemplateName

    def texts(self) -> list[str]:
        """Every fixed text the template renders from (what its hash covers)."""
        if self.name == "letters":
            return ["{question}", "\n{letter}. {option}", "\nAnswer:", " {letter}", "\n\n"]
        return [COT_SYSTEM, "Question:\n{question}\n\nOptions:\n{letter}. {option}\n\n",
                COT_INSTRUCTION, "\nAnswer: {letter}"]

    @property
    def hash(self) -> str:
        """16 hex digits of the SHA-256 of the template's name and texts."""
        text = json.dumps([self.name, *self.texts()], separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


TEMPLATES: dict[str, Template] = {"letters": Template("letters"), "cot": Template("cot")}


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt: ``text`` (a plain context, for log-likelihood) and ``messages``
    (a chat, for generation), with the letters it offers and the option order."""

    item: McqaItem
    text: str
    messages: tuple[dict[str, str], ...]
    letters: tuple[str, ...]
    order: tuple[int, ...] = field(default=())

    def original(self, shown: int | None) -> int | None:
        """The original option index of the option shown at position ``shown``."""
        if shown is None:
            return None
        return self.order[shown] if self.order else shown

    @property
    def continuations(self) -> tuple[str, ...]:
        """What log-likelihood scores after ``text``: `` A``, `` B``, ..."""
        return tuple(f" {x}" for x in self.letters)


def build_prompt(item: McqaItem, template: Template | str = "letters", *,
                 examples: Sequence[McqaItem] = (), order: Sequence[int] | None = None) -> Prompt:
    """The prompt for ``item``: with few-shot ``examples`` before it, options in ``order``."""
    template = TEMPLATES[template] if isinstance(template, str) else template
    shown = tuple(range(len(item.options))) if order is None else tuple(order)
    if sorted(shown) != list(range(len(item.options))):
        raise ConfigError(f"item {item.item}: `order` {list(shown)} is not a permutation of its "
                          f"{len(item.options)} options")
    options = [item.options[i] for i in shown]
    letters = tuple(letter(i) for i in range(len(options)))
    solved = [(e, _answer_letter(e)) for e in examples]
    if template.name == "letters":
        parts = [_letters_block(e.question, list(e.options)) + f" {gold}" for e, gold in solved]
        text = "\n\n".join([*parts, _letters_block(item.question, options)])
        messages: tuple[dict[str, str], ...] = ({"role": "user", "content": text},)
    else:
        parts = [_cot_block(e.question, list(e.options)) + f"Answer: {gold}" for e, gold in solved]
        text = "\n\n".join([*parts, _cot_block(item.question, options) + COT_INSTRUCTION])
        messages = ({"role": "system", "content": COT_SYSTEM}, {"role": "user", "content": text})
    return Prompt(item=item, text=text, messages=messages, letters=letters,
                  order=() if order is None else shown)


def _answer_letter(example: McqaItem) -> str:
    if example.answer is None:
        raise ConfigError(f"few-shot example {example.item} has no gold answer")
    return letter(example.answer)


def _letters_block(question: str, options: list[str]) -> str:
    listing = "".join(f"\n{letter(i)}. {o}" for i, o in enumerate(options))
    return f"{question.strip()}{listing}\nAnswer:"


def _cot_block(question: str, options: list[str]) -> str:
    listing = "\n".join(f"{letter(i)}. {o}" for i, o in enumerate(options))
    return f"Question:\n{question.strip()}\n\nOptions:\n{listing}\n\n"
