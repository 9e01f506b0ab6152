"""Loss tokens: the assistant tokens a record trains on.

With a tokenizer (hub name at a pinned revision, or local path; loaded by
``curate.models.load_tokenizer``, once per process), the count is what TRL trains on:
- a conversation (``messages``), when the chat template marks assistant content with
  ``{% generation %}``: the tokens of TRL's assistant mask
  (``apply_chat_template(..., return_assistant_tokens_mask=True)``, what SFT with
  ``assistant_only_loss`` keeps), cut at ``max_length`` when one is given (TRL truncates
  the tokenised conversation there, keeping the start);
- a preference record, when the tokenizer has a chat template: the completion tokens of
  the chosen and the rejected answer as DPO splits them (``prompt + answer`` rendered,
  minus the common prefix with the prompt rendered with the generation prompt), each cut
  at ``max_length`` minus the prompt;
- otherwise (no chat template, or no markers for a conversation): each assistant turn
  (and each preference answer) counts its tokens plus one for the end of the turn.
Without a tokenizer, a documented whitespace estimate: 1.3 tokens per
whitespace-separated word, plus one per turn. The manifest says which was used.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import Any

import polars as pl

from curate.errors import ConfigError
from curate.models import load_tokenizer

WORDS_TO_TOKENS = 1.3
WHITESPACE_ESTIMATE = "whitespace-estimate (1.3 tokens per word)"
CHUNK = 256
_GENERATION = re.compile(r"\{%-?\s*generation\s*-?%\}")


def _answers() -> pl.Expr:
    """Every trained-on text of a record: assistant turns, then preference answers."""
    assistant = pl.col("messages").list.filter(pl.element().struct.field("role") == "assistant")
    answers = pl.concat_list(
        assistant.fill_null([]), pl.col("chosen").fill_null([]), pl.col("rejected").fill_null([]))
    return answers.list.eval(pl.element().struct.field("content"))


@cache
def counting_tokenizer(name: str, revision: str | None = None) -> Any:
    """The tokenizer ``name`` at ``revision`` (``curate.models.load_tokenizer``), loaded once
    per process for each (name, revision)."""
    return load_tokenizer(name, revision=revision, what="tokenizer")


def loss_tokens(records: pl.DataFrame, tokenizer: str | None, *, max_length: int | None = None,
                revision: str | None = None) -> pl.Series:
    """Loss tokens of each record (UInt64), in order; ``max_length``: the training
    sequence length (tokens past it are not trained on), only with a tokenizer;
    ``revision``: the tokenizer's hub revision."""
    if tokenizer is None:
        if max_length is not None:
            raise ConfigError("`max_length` needs a `tokenizer` to count loss tokens with")
        answers = records.select(answers=_answers()).get_column("answers")
        turns = answers.list.len().fill_null(0)
        words = answers.list.eval(pl.element().str.count_matches(r"\S+")).list.sum().fill_null(0)
        return ((words * WORDS_TO_TOKENS).round(0).cast(pl.UInt64) + turns).alias("loss_tokens")
    tok = counting_tokenizer(tokenizer, revision)
    template = getattr(tok, "chat_template", None)
    marked = isinstance(template, str) and bool(_GENERATION.search(template))
    rows = records.select("messages", "chosen", "rejected").to_dicts()
    counts = [0] * len(rows)
    chats = [i for i, r in enumerate(rows) if r["chosen"] is None and r["rejected"] is None]
    is_chat = set(chats)
    prefs = [i for i in range(len(rows)) if i not in is_chat]
    if marked and chats:
        for i, n in zip(chats, _masked([rows[i]["messages"] or [] for i in chats], tok, max_length),
                        strict=True):
            counts[i] = n
    elif chats:
        for i, n in zip(chats, _per_turn([rows[i] for i in chats], tok, max_length), strict=True):
            counts[i] = n
    if template is not None and prefs:
        for i, n in zip(prefs, _completions([rows[i] for i in prefs], tok, max_length), strict=True):
            counts[i] = n
    elif prefs:
        for i, n in zip(prefs, _per_turn([rows[i] for i in prefs], tok, max_length), strict=True):
            counts[i] = n
    return pl.Series("loss_tokens", counts, dtype=pl.UInt64)


def _turns(messages: Sequence[dict[str, Any]] | None) -> list[dict[str, str]]:
    return [{"role": m["role"], "content": m["content"] or ""} for m in messages or []]


def _masked(conversations: list[list[dict[str, Any]]], tok: Any, max_length: int | None) -> list[int]:
    """Assistant-mask tokens per conversation, as TRL's SFT builds its labels."""
    counts = []
    for start in range(0, len(conversations), CHUNK):
        chunk = [_turns(c) for c in conversations[start:start + CHUNK]]
        masks = tok.apply_chat_template(chunk, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True)["assistant_masks"]
        counts += [sum(mask[:max_length]) for mask in masks]
    return counts


def _completions(rows: list[dict[str, Any]], tok: Any, max_length: int | None) -> list[int]:
    """Chosen plus rejected completion tokens per record, as TRL's DPO splits them."""
    def render(conversations: list[list[dict[str, str]]], **kwargs: Any) -> list[list[int]]:
        return tok.apply_chat_template(conversations, tokenize=True, return_dict=True, **kwargs)["input_ids"]

    counts = []
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        prompts = [_turns(r["messages"]) for r in chunk]
        prompt_ids = render(prompts, add_generation_prompt=True)
        chosen = render([p + _turns(r["chosen"]) for p, r in zip(prompts, chunk, strict=True)])
        rejected = render([p + _turns(r["rejected"]) for p, r in zip(prompts, chunk, strict=True)])
        for p, c, r in zip(prompt_ids, chosen, rejected, strict=True):
            shared = min(_common_prefix(p, c), _common_prefix(p, r))
            room = None if max_length is None else max(0, max_length - shared)
            counts.append(sum(min(len(x) - shared, room) if room is not None else len(x) - shared
                              for x in (c, r)))
    return counts


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _per_turn(rows: list[dict[str, Any]], tok: Any, max_length: int | None) -> list[int]:
    """Each assistant turn or preference answer: its tokens plus one for the end of the
    turn (no chat template to say more); ``max_length`` caps each record's total."""
    texts, owners = [], []
    for i, row in enumerate(rows):
        for m in [*(m for m in row["messages"] or [] if m["role"] == "assistant"), *(row["chosen"] or []),
                  *(row["rejected"] or [])]:
            texts.append(m["content"] or "")
            owners.append(i)
    counts = [0] * len(rows)
    if texts:
        for owner, ids in zip(owners, tok(texts, add_special_tokens=False)["input_ids"], strict=True):
            counts[owner] += len(ids) + 1
    return [min(c, max_length) if max_length is not None else c for c in counts]


def counting_method(tokenizer: str | None, *, max_length: int | None = None,
                    revision: str | None = None) -> str:
    """How ``loss_tokens`` counted, for the manifest (``name@revision`` when pinned)."""
    if tokenizer is None:
        return WHITESPACE_ESTIMATE
    tok = counting_tokenizer(tokenizer, revision)
    template = getattr(tok, "chat_template", None)
    if isinstance(template, str) and _GENERATION.search(template):
        how = "chat-template assistant mask"
    elif template is not None:
        how = "tokens per assistant turn + 1; preference completions by chat template"
    else:
        how = "tokens per assistant turn + 1"
    named = tokenizer if revision is None else f"{tokenizer}@{revision}"
    return f"tokenizer:{named} ({how}" + (f", max_length {max_length})" if max_length else ")")
