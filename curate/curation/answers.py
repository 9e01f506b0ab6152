"""Answer checks (answers_v1): answers of the wrong type, pasted answers, unrelated answers.

Only ``image_text`` records are judged (a text-only record keeps null scores). Their
answers are short (VQA-RAD: median 1 word, 90th percentile 3), so the
checks read the form of a question and of its answer rather than their meaning. The
answer is the last assistant turn, the question the last user turn. Flags, the first
that fires, in the order ``pasted_answer``, ``answer_wrong_type``, ``answer_unrelated``:

- ``answer_wrong_type``: the answer's form cannot answer the question's form.
  ``question_form`` is one of
  - ``open``: a wh-question anywhere in it (what, which, where, how, why, who, whose,
    when), an imperative request (describe, name, list, identify, ...) or "can you
    name/tell/...";
  - ``choice``: a yes/no form (starts with an auxiliary verb: is, are, does, can, ...; or
    "any ...", "evidence of ...", "..., is there ...") that offers alternatives (or, vs);
  - ``polar``: a yes/no form without alternatives;
  - ``other``: anything else (elliptic "Location of the mass?"): never flagged.
  An ``open`` question answered yes/no is flagged; a ``polar`` one answered with
  something that is neither yes/no, a hedge (maybe, not sure, both, a bit, ...) nor
  words of the question itself ("Is the trachea midline?" "Midline") is flagged; a
  ``choice`` one answered with a term sharing no word with the question's alternatives
  is flagged (yes/no stays allowed: "Any epidural or subdural hematoma?" "No"). Words
  match exactly, as number words (one, 1), by a shared 5-letter prefix or at 0.8
  similarity (typos: abcess, abscess). The "first word is an auxiliary" rule alone fails
  on choice questions ("Is this a CT or an MRI?"); the forms above are what fixes it.
- ``pasted_answer:<id>``: a long answer (``pasted_min_words`` content words or more:
  yes/no, a number, a side or a term never qualifies, whatever its repetition) found
  with more than one distinct image. The image holding that answer most often (ties:
  the record whose question is closest to the answer, then the first by source and row)
  owns it; the records on every other image are flagged, naming the first record of
  the owner. Answers spread evenly over three or more images have no owner: all are
  flagged as ``pasted_answer``. Normalisation: lower case, runs of non-alphanumerics to
  one space. On VQA-RAD one answer of four content words or more is found with two
  images ("right lobe of the liver"), and none with three.
- ``answer_unrelated``: a long answer (``unrelated_min_words`` content words or more)
  whose cosine to its question (``embedding_model``, MiniLM by default) is below
  ``min_similarity``. Shorter answers are never judged: a sentence embedder does not
  relate "Yes" to anything.

A swap between questions of the same type (yes for no, left for right, one organ for
another) leaves every form intact: no text check sees it; the image must (``relevance``
or a vision-language judge). ``benchmarks/multimodal.py`` measures each kind.
"""

from __future__ import annotations

import difflib
import re
from functools import cache
from typing import Any

import numpy as np
import polars as pl

from curate.curation.config import ANSWERS_DECISIONS, AnswersConfig
from curate.curation.text import answer_text, question_text
from curate.engine.stage import DatasetStage, StageContext

_AUX = (r"(?:is|are|was|were|does|do|did|doe|can|could|has|have|had|will|would|should|shall"
        r"|may|might|must|am|isn't|aren't|doesn't|don't|wasn't|weren't|didn't|hasn't|haven't)")
_WH = re.compile(r"\b(?:what|which|where|how|why|who|whom|whose|when)\b")
_IMPERATIVE = re.compile(r"^(?:describe|name|list|identify|please|state|give|tell|locate"
                         r"|characteri[sz]e|explain|specify|define|report|count|measure)\b")
_ASK_OPEN = re.compile(r"^(?:can|could) you (?:name|tell|identify|describe|list|say|specify|state)\b")
_POLAR = re.compile(rf"^{_AUX}\b|^(?:any|anything|evidence|notice|noticed)\b|^[^,?]*,\s*{_AUX}\b")
_CHOICE = re.compile(r"\b(?:or|vs\.?|versus)\b")
_YES_NO = re.compile(r"^(?:yes|no)\b")
_HEDGE = re.compile(r"^(?:maybe|not sure|unsure|possibly|probably|unknown|uncertain|unclear"
                    r"|can(?:no|')t tell|a bit|a little|somewhat|slightly|partially|partly"
                    r"|mild(?:ly)?|both|neither|none|either)\b")
STOP_WORDS = frozenset(
    "a an the of in on at to for with and or is are was were be been this that these those "
    "there it its by from as into than then do does did has have had what which where how why "
    "who whom whose when image shown seen see visible patient patient's".split())
_NUMBERS = {"one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
            "seven": "7", "eight": "8", "nine": "9", "ten": "10", "single": "1"}

FORMS = ("open", "choice", "polar", "other")

SCORES = {
    "answer_question_form": pl.String,
    "answer_form": pl.String,
    "answer_wrong_type": pl.Boolean,
    "answer_content_words": pl.Int64,
    "answer_images": pl.Int64,
    "answer_pasted_from": pl.String,
    "answer_pasted": pl.Boolean,
    "answer_similarity": pl.Float64,
}


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower().replace("is/are", "is").replace("/", " / ")).strip()


@cache
def question_form(question: str) -> str:
    """``open``, ``choice``, ``polar`` or ``other`` (see the module docstring)."""
    q = _norm(question)
    if _ASK_OPEN.search(q) or _IMPERATIVE.search(q) or _WH.search(q):
        return "open"
    if _POLAR.search(q):
        return "choice" if _CHOICE.search(q) else "polar"
    return "other"


def answer_form(answer: str) -> str:
    """``yes_no``, ``hedge`` or ``term``."""
    a = _norm(answer)
    return "yes_no" if _YES_NO.match(a) else "hedge" if _HEDGE.match(a) else "term"


def content_words(text: str) -> list[str]:
    """The words of ``text`` that carry content (lower case, stop words removed)."""
    return [w for w in re.findall(r"[a-z0-9]+", _norm(text)) if w not in STOP_WORDS]


def _matches(word: str, question_words: list[str], joined: str) -> bool:
    word = _NUMBERS.get(word, word)
    if len(word) >= 3 and word in joined:
        return True
    for other in question_words:
        other = _NUMBERS.get(other, other)
        if word == other:
            return True
        if len(word) >= 4 and len(other) >= 4 and (
                word[:5] == other[:5] or difflib.SequenceMatcher(None, word, other).ratio() >= 0.8):
            return True
    return False


def _shared_words(answer: str, question: str) -> tuple[int, int]:
    """(answer content words found in the question, answer content words)."""
    words = content_words(answer)
    question_words = content_words(question)
    joined = re.sub(r"[^a-z0-9]", "", _norm(question))
    return sum(_matches(w, question_words, joined) for w in words), len(words)


def wrong_type(question: str, answer: str) -> bool:
    """Whether the answer's form cannot answer the question's form."""
    form, given = question_form(question), answer_form(answer)
    if form == "open":
        return given == "yes_no"
    if form in ("polar", "choice") and given == "term":
        shared, total = _shared_words(answer, question)
        return shared < total if form == "polar" else shared == 0
    return False


def normalized_answer(answer: str) -> str:
    """The answer as pasted answers are compared: lower case, non-alphanumerics folded."""
    return re.sub(r"[^0-9a-z]+", " ", answer.lower()).strip()


class AnswerCheck(DatasetStage[AnswersConfig]):
    """Flag answers of the wrong type, pasted answers and answers unrelated to the question."""

    name = "answers"
    version = 1
    decision_fields = ANSWERS_DECISIONS
    columns = ("kind", "messages", "chosen", "images")
    score_columns = SCORES

    def thresholds(self) -> dict[str, float]:
        """An ``answer_similarity`` under ``min_similarity`` flags a long enough answer."""
        return {"answer_similarity": self.config.min_similarity}

    def resolved(self) -> dict[str, Any]:
        """The precision and the embedder weights of the relatedness check, when it is on."""
        from curate.curation.embed import embedder_resolved

        return embedder_resolved(self.config.embedding_model, self.config.embedding_precision,
                                 prefix="embedding_")

    def score(self, records: pl.LazyFrame, context: StageContext) -> pl.DataFrame:
        """The stage's scores (see the module docstring)."""
        o = self.config
        keys = records.select("source", "row", "id").collect()
        frame = (records.filter(pl.col("kind") == "image_text")
                 .select("source", "row", "id", question=question_text().fill_null(""),
                         answer=answer_text().fill_null(""),
                         image=pl.col("images").list.first().struct.field("bytes").hash())
                 .sort("source", "row").collect())
        questions = frame.get_column("question").to_list()
        answers = frame.get_column("answer").to_list()
        words = [len(content_words(a)) for a in answers]
        similarity = np.full(len(answers), np.nan)
        need = [i for i, w in enumerate(words) if w >= min(o.unrelated_min_words, o.pasted_min_words)]
        if o.embedding_model is not None and need:
            from curate.curation.embed import embed

            q, a = (embed([texts[i] for i in need], o.embedding_model, max_tokens=128,
                          precision=o.embedding_precision, cache=context.embedding_cache)
                    for texts in (questions, answers))
            similarity[need] = (q * a).sum(axis=1)
        scored = frame.with_columns(
            answer_question_form=pl.Series([question_form(q) for q in questions], dtype=pl.String),
            answer_form=pl.Series([answer_form(a) for a in answers], dtype=pl.String),
            answer_wrong_type=pl.Series([wrong_type(q, a) for q, a in zip(questions, answers, strict=True)],
                                        dtype=pl.Boolean),
            answer_content_words=pl.Series(words, dtype=pl.Int64),
            answer_similarity=pl.Series(similarity, dtype=pl.Float64).fill_nan(None),
            _normalized=pl.Series([normalized_answer(a) for a in answers], dtype=pl.String),
        )
        scores = _pasted(scored, o.pasted_min_words).select("source", "row", "id", *SCORES)
        # text-only records are not judged: their keys, with null scores
        return keys.join(scores, on=["source", "row", "id"], how="left")

    def decide(self, scores: pl.DataFrame) -> pl.DataFrame:
        """``keep`` and ``reason`` from the scores and the decision options."""
        o = self.config
        flags = []
        if o.pasted:
            flags.append(pl.when(pl.col("answer_pasted")).then(
                pl.lit("pasted_answer") + pl.when(pl.col("answer_pasted_from").is_not_null())
                .then(pl.lit(":") + pl.col("answer_pasted_from")).otherwise(pl.lit(""))))
        if o.wrong_type:
            flags.append(pl.when(pl.col("answer_wrong_type")).then(pl.lit("answer_wrong_type")))
        flags.append(pl.when((pl.col("answer_content_words") >= o.unrelated_min_words)
                             & (pl.col("answer_similarity") < o.min_similarity))
                     .then(pl.lit("answer_unrelated")))
        return scores.with_columns(reason=pl.coalesce(flags)).with_columns(
            keep=pl.col("reason").is_null())


def _pasted(scored: pl.DataFrame, min_words: int) -> pl.DataFrame:
    """Add ``answer_images``, ``answer_pasted`` and ``answer_pasted_from`` (the first
    record of the owner image) to ``scored``, for long answers found with several images."""
    long = pl.col("answer_content_words") >= min_words
    per_image = (scored.filter(long).with_columns(pl.int_range(pl.len()).alias("_order"))
                 .group_by("_normalized", "image")
                 .agg(records=pl.len(), best=pl.col("answer_similarity").max().fill_null(-2.0),
                      first=pl.col("_order").min(), first_id=pl.col("id").sort_by("_order").first()))
    ranked = per_image.sort(["_normalized", "records", "best", "first"],
                            descending=[False, True, True, False]).with_columns(
        rank=pl.int_range(pl.len()).over("_normalized"),
        images=pl.len().over("_normalized"),
        runner_up=pl.col("records").shift(-1).over("_normalized"),
    )
    # an owner: the top image, unless three or more images hold the answer equally often
    owner = ranked.filter(pl.col("rank") == 0).with_columns(
        owned=(pl.col("images") < 3) | (pl.col("records") > pl.col("runner_up").fill_null(0)))
    owners = owner.select("_normalized", owner_image="image", owned="owned",
                          owner_id="first_id", answer_images="images")
    joined = scored.join(owners, on="_normalized", how="left")
    several = long & (pl.col("answer_images") > 1)
    pasted = several & (~pl.col("owned") | (pl.col("image") != pl.col("owner_image")))
    return joined.with_columns(
        answer_images=pl.when(long).then(pl.col("answer_images")).cast(pl.Int64),
        answer_pasted=pasted.fill_null(False),
        answer_pasted_from=pl.when(pasted & pl.col("owned")).then(pl.col("owner_id")),
    )
