"""A newcomer's own SFT file, as issue 16 describes it: real MedQuAD rows as
`messages`, with a duplicate, mojibake, a URL, an empty answer, a refusal and three
MMLU-medical items pasted in as questions with their answers."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import DATA

MEDQUAD = DATA / "medical/medquad/medquad_answered.jsonl"
MMLU = DATA / "benchmarks/mmlu_medical/mmlu_medical_test.jsonl"


def _lines(path: Path, n: int) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(next(handle)) for _ in range(n)]


def chat(question: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def newcomer_rows() -> tuple[list[dict], dict[str, int]]:
    """The rows, and the row number of each planted problem."""
    rows = [chat(r["question"], r["answer"]) | {"origin": "medquad"} for r in _lines(MEDQUAD, 24)]
    planted: dict[str, int] = {}

    def plant(name: str, row: dict) -> None:
        planted[name] = len(rows)
        rows.append(row)

    plant("duplicate", dict(rows[3]))
    plant("mojibake", chat("What is a cafÃ© au lait spot?",
                           "A flat, light brown patch of skin; several can point to neurofibromatosis."))
    plant("url", chat("Where can I read about anemia?",
                      "See https://medlineplus.gov/anemia.html for a plain overview of anemia."))
    plant("empty", chat("What causes hiccups?", "   "))
    plant("refusal", chat("How do I treat a mild burn at home?",
                          "I'm sorry, but I cannot help with that request."))
    for i, item in enumerate(_lines(MMLU, 3)):
        options = "\n".join(f"{k}. {v}" for k, v in item["options"].items())
        plant(f"mmlu{i}", chat(f"{item['question']}\n{options}", f"The answer is {item['answer_idx']}."))
    return rows, planted


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path
