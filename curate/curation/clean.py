"""Cleaning: text repair, and heuristic flags measured on the repaired text.

A stage never rewrites records, so repair is split in two honest halves:
``Clean.score`` measures every flag on the repaired text and records whether repair
changed the record (``clean_changed``); ``clean_messages`` returns the repaired turns,
for the release to write. Records in the run store stay as ingested, and so do their
ids: later stages (dedup, decontamination) read the ingested text.

Repair (scoring options: they change the text every flag is measured on), applied to
every turn of ``messages``, ``chosen`` and ``rejected`` in this order:

- ``fix_unicode``: ftfy repairs mojibake ("cafÃ©" -> "café"), HTML entities, control
  and width-variant characters; curly quotes are kept. Only strings holding a non-ASCII
  or control character or an HTML entity reach ftfy (found with one vectorised regex):
  plain ASCII text has nothing for it to repair.
- ``remove_urls`` / ``remove_emails`` (off by default): delete http(s) and www. links,
  and e-mail addresses.
- ``normalize_whitespace``: CR LF and Unicode line separators become LF, Unicode spaces
  a plain space; inside a line, a run of spaces or a tab after text becomes one space;
  trailing spaces go; three or more line breaks become two; ends are trimmed. Leading
  indentation is kept, because answers hold code.

Flags (decision options; a record gets the first that fires, in this order). "The
answer" is the last assistant turn (of ``chosen`` for a preference record); "the
question" the last user turn. Records without an answer (prompt-only sources such as
AdvBench) get no answer flag.

- ``empty_answer``: the answer has no word (``\\w+``), e.g. "..." or a lone URL removed.
- ``short_answer``: fewer than ``min_answer_words`` words. The default, 1, never fires:
  one-word answers are right in extractive QA and VQA (Dolly: "Hawaii", "2022";
  VQA-RAD: "yes"); raise it for long-form sources.
- ``answer_equals_question``: the answer repeats the question (case, punctuation and
  spacing ignored).
- ``refusal``: the answer is only refusal boilerplate: it opens with "I'm sorry, but I
  cannot ...", "As an AI language model, I cannot ...", "I can't help with ...", offers
  nothing after it ("however", "instead", "here is", "but I can" ...) and has at most
  ``REFUSAL_MAX_WORDS`` words. Preference records are exempt: a refusal is the chosen
  answer of a safety pair.
- ``repetitive``: the share of the answer's word 3-grams that repeat an earlier one
  (1 - distinct/total) exceeds ``max_repeated_ngrams``. Gopher (Rae et al. 2021, table
  A1) and DataTrove's ``GopherRepetitionFilter`` drop web pages whose top 3-gram covers
  over 18% of characters or whose duplicated 5- to 10-grams cover over 15% to 10%;
  those limits flag good structured answers (MedQuAD's cancer answers list their "Key
  Points" and then state them again in full, reaching 0.4-0.5 here). A text written out
  twice in full scores just under 0.5, three times 0.67, a looping generation near 1; at
  the default 0.55, 3 of MedQuAD's 16,407 answers are flagged (checklists), 12 at 0.5.
- ``non_text``: the share of alphabetic characters among the record's non-space
  characters (all turns) is below ``min_alpha_share``: number dumps, tables, symbol
  soup. Over the whole record, so a numeric answer to a worded question ("How many
  ribs?" "12") is text; at 0.25 only two Sudoku grids of the Self-Instruct and Dolly
  sets are flagged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from typing_extensions import override

from curate.curation.config import REPAIR_OPTIONS, CleanConfig
from curate.curation.text import all_text, answer_text, question_text
from curate.engine.stage import RowStage, StageContext

TURN_COLUMNS = ("messages", "chosen", "rejected")
REPETITION_NGRAM = 3
REFUSAL_MAX_WORDS = 60

# RE2 (pyarrow) patterns for repair.
_NEEDS_FTFY = r"[^\t\n\r\x20-\x7e]|&(?:[A-Za-z]+|#[0-9]+|#[xX][0-9A-Fa-f]+);"
_URL = r"(?i)\b(?:https?://|www\.)[^\s<>\"']*[^\s<>\"'.,;:!?)\]}]"
_EMAIL = r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"
_WHITESPACE_STEPS = (
    (r"\r\n?|[\x{2028}\x{2029}]", "\n"),
    (r"[\x0b\x0c\x{a0}\x{1680}\x{2000}-\x{200a}\x{202f}\x{205f}\x{3000}]", " "),
    (r"[ \t]+\n", "\n"),
    (r"(\S)(?:[ \t]{2,}|\t)", r"\1 "),
    (r"\n{3,}", "\n\n"),
)

# Rust-regex (polars) patterns for the refusal flag.
_CANNOT = (r"(?:can(?:no|['’])t|can\s+not|(?:am|are)\s+(?:not\s+able|unable)"
           r"|won['’]t|will\s+not|do\s+not|don['’]t|must\s+(?:decline|refuse))")
_APOLOGY = (r"(?:(?:i['’]m|i\s+am)\s+(?:really\s+|very\s+|so\s+|truly\s+)?(?:sorry|afraid)"
            r"|sorry|unfortunately|(?:my\s+)?apologies)")
_REFUSAL = (
    r"(?i)^\W*(?:"
    rf"{_APOLOGY},?\s+(?:but\s+)?(?:as\s+an\s+ai[^,.]{{0,30}},\s+)?i\s+{_CANNOT}"
    rf"|as\s+an\s+ai(?:\s+language)?(?:\s+model|\s+assistant)?,?\s+i\s+(?:{_CANNOT}|have\s+no)"
    rf"|i\s+{_CANNOT}\s+(?:help|assist|provide|answer|comply|fulfil|do\s+that|create|generate"
    r"|write|engage|support|share|give)"
    r")"
)
_HELP_FOLLOWS = (r"(?i)\b(?:however|instead|that\s+said|here\s+(?:is|are)"
                 r"|but\s+i\s+can\s+(?:help|offer|suggest|tell|give|provide|share))\b")


SCORES = {
    "clean_changed": pl.Boolean,
    "clean_answer_words": pl.Int64,
    "clean_answer_equals_question": pl.Boolean,
    "clean_refusal": pl.Boolean,
    "clean_repeated_ngrams": pl.Float64,
    "clean_alpha_share": pl.Float64,
}


class Clean(RowStage[CleanConfig]):
    """Measure heuristic flags on repaired text; flag empty, short, echoed, refusing,
    repetitive and non-text records."""

    name = "clean"
    version = 1
    decision_fields = frozenset(CleanConfig.model_fields) - REPAIR_OPTIONS
    columns = ("kind", *TURN_COLUMNS)
    score_columns = SCORES

    @override
    def thresholds(self) -> dict[str, float]:
        """The answer-length, repetition and alphabetic-share cuts of the flags switched on."""
        o = self.config
        cuts = {"clean_answer_words": float(o.min_answer_words) if o.short_answer and o.min_answer_words > 1
                else None,
                "clean_repeated_ngrams": o.max_repeated_ngrams if o.repetitive else None,
                "clean_alpha_share": o.min_alpha_share if o.non_text else None}
        return {column: value for column, value in cuts.items() if value is not None}
    rewrites_text = True

    @override
    def rewrite(self, records: pa.Table) -> pa.Table:
        """The records with their turns repaired (what a release and synthesis read)."""
        return clean_messages(records, self.config)


    @override
    def score(self, records: pa.Table, context: StageContext) -> pa.Table:
        repaired: dict[str, Any] = {"kind": records.column("kind")}
        changed = np.zeros(records.num_rows, bool)
        for name in TURN_COLUMNS:
            turns, turns_changed = _repair_turns(records.column(name), self.config)
            repaired[name] = turns
            changed |= turns_changed
        frame = pl.from_arrow(pa.table(repaired))
        assert isinstance(frame, pl.DataFrame)
        answer = answer_text()
        words = answer.str.to_lowercase().str.extract_all(r"\w+")
        grams = words.list.eval(pl.concat_str(
            [pl.element().shift(-k) for k in range(REPETITION_NGRAM)], separator=" ").drop_nulls())
        text = all_text()
        non_space = text.str.count_matches(r"\S")
        refusal = (answer.str.contains(_REFUSAL) & ~answer.str.contains(_HELP_FOLLOWS)
                   & (words.list.len() <= REFUSAL_MAX_WORDS))
        scores = frame.select(
            clean_changed=pl.Series(changed),
            clean_answer_words=words.list.len().cast(pl.Int64),
            clean_answer_equals_question=(_canonical(answer) == _canonical(question_text()))
            & (_canonical(answer) != ""),
            clean_refusal=pl.when(pl.col("kind") != "preference").then(refusal),
            clean_repeated_ngrams=pl.when(grams.list.len() > 0).then(
                1 - grams.list.n_unique() / grams.list.len()),
            clean_alpha_share=pl.when(non_space > 0).then(
                text.str.count_matches(r"\p{Alphabetic}") / non_space),
        )
        return scores.to_arrow()

    @override
    def decide(self, scores: pl.DataFrame) -> pl.DataFrame:
        o = self.config
        words = pl.col("clean_answer_words")
        flags = [
            ("empty_answer", o.empty_answer, words == 0),
            ("short_answer", o.short_answer, words.is_between(1, o.min_answer_words - 1)),
            ("answer_equals_question", o.answer_equals_question,
             pl.col("clean_answer_equals_question")),
            ("refusal", o.refusal, pl.col("clean_refusal")),
            ("repetitive", o.repetitive, pl.col("clean_repeated_ngrams") > o.max_repeated_ngrams),
            ("non_text", o.non_text, pl.col("clean_alpha_share") < o.min_alpha_share),
        ]
        fired = [pl.when(test.fill_null(False)).then(pl.lit(code))
                 for code, on, test in flags if on]
        reason = pl.coalesce(fired) if fired else pl.lit(None, pl.String)
        return scores.with_columns(reason=reason).with_columns(keep=pl.col("reason").is_null())


def _canonical(text: pl.Expr) -> pl.Expr:
    return text.str.to_lowercase().str.replace_all(r"[^\p{L}\p{N}]+", " ").str.strip_chars()


def repair(texts: pa.Array, config: CleanConfig) -> pa.Array:
    """The repaired strings (nulls stay null), as ``config`` switches the steps."""
    if config.fix_unicode:
        texts = _fix_unicode(texts)
    if config.remove_urls:
        texts = pc.replace_substring_regex(texts, _URL, "")
    if config.remove_emails:
        texts = pc.replace_substring_regex(texts, _EMAIL, "")
    if config.normalize_whitespace:
        for pattern, replacement in _WHITESPACE_STEPS:
            texts = pc.replace_substring_regex(texts, pattern, replacement)
        texts = pc.utf8_trim(texts, " \t\n")
    return texts


def _fix_unicode(texts: pa.Array) -> pa.Array:
    """ftfy on the strings that may need it; the others are not touched."""
    mask = pc.fill_null(pc.match_substring_regex(texts, _NEEDS_FTFY), False)
    if not pc.any(mask).as_py():
        return texts
    import ftfy

    config = ftfy.TextFixerConfig(uncurl_quotes=False, explain=False)
    fixed = [ftfy.fix_text(t, config) for t in texts.filter(mask).to_pylist()]
    return pc.replace_with_mask(texts, mask, pa.array(fixed, texts.type))


def _repair_turns(column: pa.ChunkedArray | pa.Array, config: CleanConfig
                  ) -> tuple[pa.Array, np.ndarray]:
    """The turns with repaired contents, and per record whether any content changed."""
    turns = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    values = turns.flatten()
    contents = pc.struct_field(values, "content")
    repaired = repair(contents, config)
    changed = pc.fill_null(pc.not_equal(contents, repaired), False).to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(turns).to_numpy()
    per_record = np.bincount(parents[changed], minlength=len(turns)) > 0
    rebuilt = pa.StructArray.from_arrays([pc.struct_field(values, "role"), repaired],
                                         fields=list(values.type))
    offsets = pc.subtract(turns.offsets, turns.offsets[0])
    mask = turns.is_null() if turns.null_count else None
    return type(turns).from_arrays(offsets, rebuilt, type=turns.type, mask=mask), per_record


def clean_messages(table: pa.Table, config: CleanConfig | None = None) -> pa.Table:
    """``table`` with the turns of ``messages``, ``chosen`` and ``rejected`` repaired as
    ``config`` says (the ``clean`` stage's options); other columns, ids included, are
    unchanged. This is what a release writes for a recipe with a ``clean`` stage."""
    config = CleanConfig() if config is None else config
    for name in TURN_COLUMNS:
        if name in table.column_names:
            turns, _ = _repair_turns(table.column(name), config)
            table = table.set_column(table.column_names.index(name), name, turns)
    return table
