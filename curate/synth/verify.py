"""Answer extraction and the checks a generated chain of thought must pass.

Checks run in this order and the first that fails names the rejection:

- ``copies_question``: at least ``copy_threshold`` of the output's word 4-grams occur in
  the question (with its options): the output mostly restates the prompt;
- ``no_answer``: no final answer can be extracted;
- ``wrong_answer``: multiple choice: the extracted letter is not the gold one; open QA
  with ``open_qa_check="overlap"``: less than ``min_overlap`` of the conclusion's content
  words occur in the reference answer;
- ``leaks_gold_hint``: the text says it was given or told the answer ("as given, the
  answer is", "the provided answer", "we are told the correct answer", "answer key").

Extraction (multiple choice) takes the last of: ``Answer: X``, ``**Answer:** X``,
``Answer: (X)``, ``Final answer: X``, ``The (correct) answer is (X)``, ``the correct
option is X``; failing those, a last line that is a lone letter (``C``, ``(C)``,
``C.``), or an ``Answer:`` followed by an option's exact text. Open QA takes the text
after the last ``Answer:`` marker.
"""

from __future__ import annotations

import re
from typing import Literal

Reason = Literal["copies_question", "no_answer", "wrong_answer", "leaks_gold_hint"]

_MARK = r"(?:\*\*|__)?"
_LETTER = r"\(?\**([A-Za-z])\**\)?(?![A-Za-z0-9])"
_ANSWER_PATTERNS = [
    re.compile(rf"{_MARK}(?:final\s+)?answer{_MARK}\s*[:：]\s*{_MARK}\s*(?:option\s+)?{_LETTER}",
               re.IGNORECASE),
    re.compile(rf"\bthe\s+(?:correct\s+|right\s+|best\s+|final\s+)?(?:answer|option|choice)\s+is"
               rf"\s*[:：]?\s*{_MARK}\s*(?:option\s+)?{_LETTER}", re.IGNORECASE),
]
_LONE_LETTER = re.compile(rf"^\s*{_MARK}\s*\(?([A-Za-z])\)?\.?\s*{_MARK}\s*$")
_ANSWER_TEXT = re.compile(rf"{_MARK}(?:final\s+)?answer{_MARK}\s*[:：]\s*{_MARK}\s*(.+?)\s*{_MARK}\s*$",
                          re.IGNORECASE | re.MULTILINE)

_GOLD = r"(?:answer|solution)(?!s\b)(?!\s+(?:choices?|options?)\b)"
_LEAKS = [re.compile(p, re.IGNORECASE) for p in (
    r"\bas\s+(?:given|stated|provided|indicated)\s*(?:in\s+the\s+(?:prompt|instructions?|task))?"
    rf"\s*[,:]?\s*(?:the\s+)?(?:correct\s+|right\s+)?{_GOLD}",
    rf"\b(?:the|this)\s+(?:provided|given|supplied|stated|expected)\s+(?:correct\s+|right\s+)?{_GOLD}",
    rf"\b(?:told|informed)\s+(?:that\s+)?(?:the\s+)?(?:correct\s+|right\s+)?{_GOLD}",
    rf"\b(?:given|provided\s+with|shown)\s+the\s+(?:correct\s+|right\s+)?{_GOLD}",
    rf"\b{_GOLD}\s+(?:is\s+|was\s+)?(?:given|provided|stated|supplied)\s+(?:as|to\s+be|in)\b",
    r"\banswer\s+key\b",
    r"\b(?:the\s+)?(?:prompt|instructions?|task\s+statement)\s+(?:says|states|tells\s+(?:me|us))\b",
)]

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOP = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to was "
    "were which with not no can may will".split()
)


def extract_choice(text: str, options: list[str]) -> int | None:
    """The 0-based option index the text concludes with, or None when it gives none."""
    count = len(options)
    found: tuple[int, int] | None = None  # (position, index): the last answer wins
    for pattern in _ANSWER_PATTERNS:
        for match in pattern.finditer(text):
            index = ord(match.group(1).upper()) - ord("A")
            if 0 <= index < count and (found is None or match.start() > found[0]):
                found = (match.start(), index)
    if found is not None:
        return found[1]
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if lines and (lone := _LONE_LETTER.match(lines[-1])):
        index = ord(lone.group(1).upper()) - ord("A")
        if 0 <= index < count:
            return index
    folded = [" ".join(o.lower().split()).rstrip(".") for o in options]
    for match in reversed(list(_ANSWER_TEXT.finditer(text))):
        said = " ".join(match.group(1).lower().split()).rstrip(".")
        if said in folded:
            return folded.index(said)
    return None


def extract_conclusion(text: str) -> str | None:
    """Open QA: the text after the last ``Answer:`` marker (to the end), or None."""
    matches = list(re.finditer(rf"{_MARK}(?:final\s+)?answer{_MARK}\s*[:：]{_MARK}", text, re.IGNORECASE))
    if not matches:
        return None
    conclusion = text[matches[-1].end():].strip().strip("*_ ").strip()
    return conclusion or None


def words(text: str) -> list[str]:
    """The lower-cased word tokens of ``text``."""
    return _WORD.findall(text.lower())


def copy_ratio(output: str, question: str, n: int = 4) -> float:
    """Share of the output's word ``n``-grams that also occur in ``question``."""
    out = words(output)
    grams = [tuple(out[i:i + n]) for i in range(len(out) - n + 1)]
    if not grams:
        return 0.0
    source = words(question)
    known = {tuple(source[i:i + n]) for i in range(len(source) - n + 1)}
    return sum(g in known for g in grams) / len(grams)


def overlap(conclusion: str, reference: str) -> float:
    """Share of the conclusion's content words (stop words dropped) found in the reference."""
    said = [w for w in words(conclusion) if w not in _STOP]
    if not said:
        return 0.0
    known = set(words(reference))
    return sum(w in known for w in said) / len(said)


def leaks_gold(text: str) -> bool:
    """Whether the text says it was given or told the answer."""
    return any(p.search(text) for p in _LEAKS)


def check_mcqa(text: str, *, question: str, options: list[str], answer: int,
               copy_threshold: float) -> tuple[Reason | None, int | None]:
    """(rejection reason or None, extracted index) for a multiple-choice chain of thought."""
    if copy_ratio(text, question) >= copy_threshold:
        return "copies_question", None
    chosen = extract_choice(text, options)
    if chosen is None:
        return "no_answer", None
    if chosen != answer:
        return "wrong_answer", chosen
    if leaks_gold(text):
        return "leaks_gold_hint", chosen
    return None, chosen


def check_open_qa(text: str, *, question: str, reference: str | None, copy_threshold: float,
                  check: Literal["overlap", "non_empty"], min_overlap: float) -> Reason | None:
    """The rejection reason (or None) for an open-QA chain of thought."""
    if copy_ratio(text, question) >= copy_threshold:
        return "copies_question"
    conclusion = extract_conclusion(text)
    if conclusion is None:
        return "no_answer"
    if check == "overlap" and overlap(conclusion, reference or "") < min_overlap:
        return "wrong_answer"
    if leaks_gold(text):
        return "leaks_gold_hint"
    return None
