"""Prompt templates for chain-of-thought rewrites, per task kind, gold answer given or withheld.

A template's hash (``template_hash``) goes into every synthetic record's lineage and
into the cache key, so editing a template's text regenerates what it produced.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Literal

TaskKind = Literal["mcqa", "open_qa"]
GoldMode = Literal["given", "withheld"]

SYSTEM = (
    "You are an expert tutor. You explain, step by step, how to reach the answer to an exam "
    "question, in clear, correct and self-contained prose."
)

_MCQA = """Question:
{question}

Options:
{options}
{gold}
Write a step-by-step explanation that answers the question:
1. Rephrase the question in your own words.
2. Consider each option in turn and say why it is right or wrong.
3. End with a final line of the form "Answer: <letter>".{hint}"""

_OPEN_QA = """Question:
{question}
{gold}
Write a step-by-step explanation that answers the question: first restate what is asked, \
then reason through the relevant facts, and end with a final line of the form \
"Answer: <the answer in one or two sentences>".{hint}"""

_MCQA_GOLD = "\nThe correct answer is: {letter}. {text}\n"
_OPEN_QA_GOLD = "\nReference answer:\n{answer}\n"
_HINT = ("\nWrite it as if you reasoned it out yourself: never mention that the answer was "
         "given to you.")

GOLD_MARKERS = {"mcqa": "The correct answer is: ", "open_qa": "Reference answer:\n"}
"""How the gold answer is introduced in a prompt (the offline backend reads it back)."""


@dataclass(frozen=True)
class Template:
    """A CoT prompt template: task kind and whether the gold answer is given."""
    kind: TaskKind
    gold: GoldMode

    @property
    def name(self) -> str:
        """The template's name, e.g. ``mcqa_given``."""
        return f"{self.kind}_{self.gold}"

    def _parts(self) -> list[str]:
        body, gold = (_MCQA, _MCQA_GOLD) if self.kind == "mcqa" else (_OPEN_QA, _OPEN_QA_GOLD)
        return [SYSTEM, body] + ([gold, _HINT] if self.gold == "given" else [])

    @property
    def hash(self) -> str:
        """16 hex digits of the SHA-256 of every text this template renders from."""
        text = json.dumps([self.name, *self._parts()], separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def render_mcqa(self, question: str, options: list[str], answer: int | None) -> list[dict[str, str]]:
        """The chat messages asking for a chain of thought on a multiple-choice item."""
        listing = "\n".join(f"{letter(i)}. {o}" for i, o in enumerate(options))
        gold = hint = ""
        if self.gold == "given":
            assert answer is not None  # callers reject rows without a gold answer first
            gold, hint = _MCQA_GOLD.format(letter=letter(answer), text=options[answer]), _HINT
        return _chat(_MCQA.format(question=question, options=listing, gold=gold, hint=hint))

    def render_open_qa(self, question: str, reference: str | None) -> list[dict[str, str]]:
        """The chat messages asking for a chain of thought on an open question."""
        gold = hint = ""
        if self.gold == "given":
            assert reference is not None
            gold, hint = _OPEN_QA_GOLD.format(answer=reference), _HINT
        return _chat(_OPEN_QA.format(question=question, gold=gold, hint=hint))


def letter(index: int) -> str:
    """The option letter of a 0-based index (0 -> A)."""
    return chr(ord("A") + index)


def _chat(user: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
