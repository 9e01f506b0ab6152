"""Passage retrieval: reference text (guidelines, textbook pages, answers of a QA source)
chunked into passages with ids and provenance, searched for open questions, and a grounded
prompt built from what was found.

- ``chunk_words(text, size, overlap)``: word windows of ``size`` words, each starting
  ``size - overlap`` words after the last, with their character spans in ``text``;
- ``passage_rows(records, config)``: index rows (``curate.rag.index.RECORD_SCHEMA``) of every
  chunk of every record's text (its assistant turns, or every turn). A passage's ``id`` is
  the SHA-256 (32 hex digits) of its record id and chunk number, so indexing again adds
  nothing; ``question`` holds the passage text (the column an index embeds), ``options`` and
  ``answer`` are null, and ``meta`` its provenance (JSON: ``record``, ``row``, ``chunk``,
  ``start``, ``end``, and the record's own ``meta``);
- ``Passage.of(hit)``: a retrieved passage with its provenance; ``grounded_prompt(question,
  passages)``: chat messages that give the model the numbered passages and ask it to answer
  from them and cite them by number.

A passage index is an ordinary index (``manifest.json`` says ``"kind": "passages"``), so the
same search backends and the same contamination guard apply: ``curate.rag.open_index(path,
benchmarks=[...])`` leaves out every passage the decontamination tiers find a benchmark item
in (a passage that quotes a test question), and drops results too similar to the query.

What a serving stack calls::

    index = curate.rag.open_index("index/guidelines", benchmarks=["medqa"])   # once
    found = index.retrieve([question], k=4)[0]                                 # per request
    messages = curate.rag.grounded_prompt(question, [Passage.of(h) for h in found.hits])
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from curate.rag.config import PassageConfig
from curate.rag.index import RECORD_SCHEMA, Hit
from curate.records import conform

KIND = "passages"
GROUNDED_SYSTEM = ("Answer the question using only the numbered passages below. Cite the passages you "
                   "use by their number in brackets, e.g. [2]. If they do not contain the answer, say so.")
_WORD = re.compile(r"\S+")


def chunk_words(text: str, size: int, overlap: int) -> list[tuple[int, int, str]]:
    """Windows of ``size`` words overlapping by ``overlap`` words: (start, end, text), the
    character span of each in ``text``; a text of ``size`` words or fewer is one window."""
    words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    if not words:
        return []
    step = max(1, size - overlap)
    out = []
    for first in range(0, len(words), step):
        last = min(first + size, len(words)) - 1
        start, end = words[first][0], words[last][1]
        out.append((start, end, text[start:end]))
        if last == len(words) - 1:
            break
    return out


def passage_id(record_id: str, chunk: int) -> str:
    """32 hex digits of the SHA-256 of ``<record id>:<chunk>``."""
    return hashlib.sha256(f"{record_id}:{chunk}".encode()).hexdigest()[:32]


def passage_rows(records: pa.Table, config: PassageConfig | None = None) -> tuple[pa.Table, dict[str, int]]:
    """Index rows of the chunks of every record (see the module docstring), and the records
    skipped by reason (``no_text``)."""
    config = config or PassageConfig.model_validate({})
    rows = []
    skipped: dict[str, int] = {}
    for record in conform(records).to_pylist():
        roles = ("assistant",) if config.text == "assistant" else ("system", "user", "assistant")
        turns = [m["content"] for m in record["messages"] or [] if m["role"] in roles and m["content"]]
        turns += [m["content"] for m in record["chosen"] or [] if config.text == "all" and m["content"]]
        text = "\n\n".join(turns)
        chunks = chunk_words(text, config.chunk_words, config.chunk_overlap)
        if not chunks:
            skipped["no_text"] = skipped.get("no_text", 0) + 1
            continue
        for number, (start, end, passage) in enumerate(chunks):
            provenance = {"record": record["id"], "row": record["row"], "chunk": number, "start": start,
                          "end": end, "record_meta": json.loads(record["meta"]) if record["meta"] else None}
            rows.append({"id": passage_id(record["id"], number), "source": record["source"],
                         "question": passage, "options": None, "answer": None, "cot": None,
                         "meta": json.dumps(provenance, ensure_ascii=False, sort_keys=True)})
    return pa.Table.from_pylist(rows, schema=RECORD_SCHEMA), skipped


@dataclass(frozen=True)
class Passage:
    """A retrieved passage: its id, text, cosine with the query and where it came from."""

    id: str
    text: str
    score: float
    source: str | None
    record: str | None
    """The id of the record it was cut from."""
    chunk: int | None
    start: int | None
    end: int | None
    """Its character span in the record's text."""
    meta: dict[str, Any] | None

    @classmethod
    def of(cls, hit: Hit) -> Passage:
        """The passage a search hit of a passage index holds."""
        p = json.loads(hit.record.get("meta") or "{}")
        return cls(id=hit.id, text=hit.question, score=hit.score, source=hit.source, record=p.get("record"),
                   chunk=p.get("chunk"), start=p.get("start"), end=p.get("end"), meta=p.get("record_meta"))

    @property
    def citation(self) -> str:
        """``source, record <id>, chunk <n>``: where a reader finds it again."""
        return f"{self.source}, record {self.record}, chunk {self.chunk}"


def grounded_prompt(question: str, passages: list[Passage], *,
                    system: str = GROUNDED_SYSTEM) -> list[dict[str, str]]:
    """Chat messages: ``system``, then one user turn with the passages numbered [1], [2], ...
    (each with its citation) and the question."""
    listing = "\n\n".join(f"[{n}] ({p.citation})\n{p.text}" for n, p in enumerate(passages, start=1))
    return [{"role": "system", "content": system},
            {"role": "user", "content": f"Passages:\n\n{listing}\n\nQuestion: {question.strip()}"}]
