"""Prompts for multiple-choice questions: one function builds them, whatever reads them.

``build_prompt(question, template, examples=..., order=...)`` is the only place a question
becomes model input, so the log-likelihood scorer, the generative scorer, the lm-eval
export, a retrieval-augmented evaluation (few-shot examples from an index, choice
shuffles for an ensemble) and a user serving retrieved examples all speak the same text.
(It lives in ``curate.rag`` so retrieval can use it without the evaluation module;
``curate.evaluate.prompts`` re-exports it.)

- ``question``: a ``McqaItem`` (``McqaItem.of(question, options)`` for a bare question);
- ``examples``: solved items put before the question (few-shot), in the order given
  (retrieval passes the most similar last, closest to the question). ``letters``: each
  is a block with its options and answer, separated by a blank line; ``cot``: each is a
  user turn and an assistant turn with its chain of thought (``reasoning``, when it has
  one) and ``Answer: <letter>``;
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
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from curate.errors import ConfigError

TemplateName = Literal["letters", "cot"]

COT_SYSTEM = "You are an expert answering exam questions. Reason step by step, then answer."
COT_INSTRUCTION = ('Think step by step about each option, then end with a final line of the form '
                   '"Answer: <letter>".')


def letter(index: int) -> str:
    """The label of option ``index``: A, B, C, ..."""
    return chr(ord("A") + index)


@dataclass(frozen=True)
class McqaItem:
    """One multiple-choice question with its gold answer (None when hidden) and, for a
    few-shot example, its verified chain of thought (``reasoning``)."""

    benchmark: str
    row: int
    record_id: str
    question: str
    options: tuple[str, ...]
    answer: int | None
    subject: str | None = None
    reasoning: str | None = None

    @property
    def item(self) -> str:
        """``<benchmark>:<row>``: the id reports and predictions name the item by."""
        return f"{self.benchmark}:{self.row}"

    @classmethod
    def of(cls, question: str, options: Sequence[str], answer: int | None = None, *,
           reasoning: str | None = None, name: str = "question", row: int = 0) -> McqaItem:
        """A bare question (no benchmark): for serving and notebooks."""
        return cls(benchmark=name, row=row, record_id="", question=question, options=tuple(options),
                   answer=answer, reasoning=reasoning)


@dataclass(frozen=True)
class Template:
    """A prompt layout; see the module docstring for each one."""

    name: TemplateName

    def texts(self) -> list[str]:
        """Every fixed text the template renders from (what its hash covers)."""
        if self.name == "letters":
            return ["{question}", "\n{letter}. {option}", "\nAnswer:", " {letter}", "\n\n"]
        return [COT_SYSTEM, "Question:\n{question}\n\nOptions:\n{letter}. {option}\n\n",
                COT_INSTRUCTION, "{reasoning}\nAnswer: {letter}"]

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
    """The prompt for ``item``: with few-shot ``examples`` before it (in the order given),
    its options in ``order``."""
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
        turns: list[dict[str, str]] = [{"role": "system", "content": COT_SYSTEM}]
        for e, gold in solved:
            asked = _cot_block(e.question, list(e.options)) + COT_INSTRUCTION
            turns.append({"role": "user", "content": asked})
            turns.append({"role": "assistant", "content": _worked_answer(e.reasoning, gold)})
        turns.append({"role": "user", "content": _cot_block(item.question, options) + COT_INSTRUCTION})
        messages = tuple(turns)
        text = "\n\n".join(m["content"] for m in turns[1:])
    return Prompt(item=item, text=text, messages=messages, letters=letters,
                  order=() if order is None else shown)


def _worked_answer(reasoning: str | None, gold: str) -> str:
    """An example's assistant turn: its reasoning without its own conclusion, then the gold
    letter (so every example concludes in the layout the question asks for)."""
    if not reasoning:
        return f"Answer: {gold}"
    lines = reasoning.strip().splitlines()
    while lines and (not lines[-1].strip() or _CONCLUSION.match(lines[-1])):
        lines.pop()
    body = "\n".join(lines).strip()
    return f"{body}\nAnswer: {gold}" if body else f"Answer: {gold}"


_CONCLUSION = re.compile(r"^\s*\**\s*(final\s+)?answer\s*\**\s*:", re.IGNORECASE)


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
