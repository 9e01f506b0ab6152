"""Answer extraction and the rejection reasons, on crafted completions."""

from __future__ import annotations

import pytest

from curate.synth.verify import (
    check_mcqa,
    check_open_qa,
    extract_choice,
    extract_conclusion,
    leaks_gold,
)

QUESTION = "Which vitamin deficiency causes scurvy in sailors on long voyages?"
OPTIONS = ["Vitamin A", "Vitamin B12", "Vitamin C", "Vitamin D"]
PROMPT = QUESTION + "\n" + "\n".join(f"{chr(65 + i)}. {o}" for i, o in enumerate(OPTIONS))
GOOD = ("We need the vitamin whose lack leads to scurvy. Vitamin A deficiency gives night "
        "blindness. B12 deficiency gives anaemia. Vitamin C is needed for collagen synthesis, "
        "and its lack gives bleeding gums: scurvy. Vitamin D deficiency gives rickets.\n")


def mcqa(text: str) -> tuple[str | None, int | None]:
    return check_mcqa(text, question=PROMPT, options=OPTIONS, answer=2, copy_threshold=0.6)


@pytest.mark.parametrize("ending", [
    "Answer: C", "Answer: (C)", "**Answer:** C", "**Answer: C**", "Final answer: C.",
    "The answer is (C).", "So the correct answer is C, vitamin C.", "The correct option is C",
    "answer: c", "C", "(C)", "Answer: Vitamin C",
])
def test_extraction_variants(ending):
    assert extract_choice(GOOD + ending, OPTIONS) == 2


def test_the_last_answer_wins_and_out_of_range_letters_are_ignored():
    assert extract_choice("Answer: A\nOn reflection, Answer: C", OPTIONS) == 2
    assert extract_choice("Answer: F", OPTIONS) is None
    assert extract_choice("The answer is clear from physiology.", OPTIONS) is None


def test_right_answer_passes():
    assert mcqa(GOOD + "Answer: C") == (None, 2)


def test_wrong_answer():
    assert mcqa(GOOD + "Answer: D") == ("wrong_answer", 3)


def test_missing_answer():
    assert mcqa(GOOD + "So it must be the collagen vitamin.") == ("no_answer", None)


def test_question_copy():
    assert mcqa(PROMPT + "\nAnswer: C") == ("copies_question", None)
    assert mcqa(f"{QUESTION} {QUESTION}") == ("copies_question", None)


@pytest.mark.parametrize("leak", [
    "As given, the answer is C.",
    "The provided answer C is right because collagen needs it.",
    "We are told the correct answer is C, and indeed collagen needs vitamin C.",
    "I was told that the answer is C.",
    "Since we were given the correct answer, we explain why C holds.",
    "The answer key says C.",
    "The prompt states that C is right.",
])
def test_gold_leak(leak):
    assert mcqa(GOOD + leak + "\nAnswer: C") == ("leaks_gold_hint", 2)


@pytest.mark.parametrize("fine", [
    "Given the answer choices, C fits best.",
    "We are given a sailor with bleeding gums.",
    "Given that the gums bleed, collagen is at fault.",
    "Of the given options, C fits best.",
])
def test_ordinary_phrasing_is_no_leak(fine):
    assert not leaks_gold(fine)


def test_open_qa_checks():
    reference = "Scurvy is caused by a lack of vitamin C (ascorbic acid) in the diet."
    question = "What causes scurvy in sailors on long voyages?"

    def check(text: str, how: str = "overlap") -> str | None:
        return check_open_qa(text, question=question, reference=reference, copy_threshold=0.6,
                             check=how, min_overlap=0.5)

    assert check("Collagen needs it. Answer: a lack of vitamin C in the diet") is None
    assert check("Collagen needs it. Answer: too much sun") == "wrong_answer"
    assert check("Collagen needs it. Answer: too much sun", "non_empty") is None
    assert check("Collagen needs it, so vitamin C.") == "no_answer"
    assert check("Answer:") == "no_answer"
    assert check(f"{question} {question}") == "copies_question"
    assert check("As given, the answer: lack of vitamin C. Answer: vitamin C lack") == "leaks_gold_hint"
    assert extract_conclusion("reasoning\n**Answer:** a lack of vitamin C") == "a lack of vitamin C"
