"""Synthetic chain-of-thought enhancement (``synth_cot_v1``).

For each question-answer record (multiple choice with a gold index, or a single-turn
chat whose assistant turn is the reference answer), a generator writes a chain of
thought: rephrase the question, reason (about each option, for multiple choice),
conclude with ``Answer: ...``. Each output is checked (``curate.synth.verify``):
``copies_question``, ``no_answer``, ``wrong_answer``, ``leaks_gold_hint``. A rejected
output is regenerated, up to ``max_attempts`` times, at a temperature raised by
``temperature_step`` each attempt (clamped at ``max_temperature``, at most 2: vLLM's
limit) and a fresh seed. A parent whose attempts all fail
lands in the rejected table with its last reason (and every attempt's reason).

Each synthetic record has origin ``synthetic``, the parent's kind, domain, license
and task, the parent's conversation with its last assistant turn replaced by the
chain of thought, the parent's ``mcqa`` (gold kept for evaluation), a fresh content
id, source ``synth_cot`` (the mix category is ``synthetic``, derived from origin),
``row`` = the parent's position in the input table, and its lineage in ``meta``:

    {"stage": "synth_cot_v1", "parent_id", "parent_source", "parent_row",
     "generator": {"backend", "model", "revision"}, "offline_backend": bool,
     "template": "mcqa_given", "template_hash", "gold_answer": "given",
     "seed", "attempt", "temperature"}

Every completion goes through a content-addressed cache (``curate.synth.cache``), so
an interrupted run resumes without regenerating anything that finished and a second
run of the same inputs sends no request at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
from typing_extensions import override

from curate.engine.stage import Produced, ProduceProgress, Producer, StageContext
from curate.read.views import CotStats
from curate.records import SCHEMA, conform, record_id
from curate.synth.backend import Backend, Request, backend_from_config
from curate.synth.cache import GenerationCache, cache_key, generate_cached
from curate.synth.config import OFFLINE_MODEL, SynthCotConfig
from curate.synth.templates import TaskKind, Template, letter
from curate.synth.verify import check_mcqa, check_open_qa

log = logging.getLogger(__name__)

NAME = "synth_cot"
VERSION = 1
STAGE = f"{NAME}_v{VERSION}"
SOURCE = "synth_cot"
"""The ``source`` of every synthetic record (the parent's source is in its ``meta``)."""

REJECTED_SCHEMA = pa.schema([
    pa.field("source", pa.string()), pa.field("row", pa.int64()), pa.field("id", pa.string()),
    pa.field("reason", pa.string()), pa.field("attempts", pa.int32()),
    pa.field("attempt_reasons", pa.list_(pa.string())),
])
"""Parents that gave no synthetic record: their keys, the last reason, every attempt's reason.
Besides the four check reasons: ``unsupported_record`` (not a multiple-choice or
single-turn QA record) and ``no_gold_answer`` (nothing to verify against)."""

Progress = ProduceProgress  # (parent rows settled, rows to enhance)


class CotResult(NamedTuple):
    """What ``enhance`` made: synthetic records, rejected parents, stats."""
    synthetic: pa.Table
    """New records, in the record schema."""
    rejected: pa.Table
    """Parents without a synthetic record (``REJECTED_SCHEMA``)."""
    stats: dict[str, Any]


@dataclass
class _Row:
    index: int
    parent: dict[str, Any]
    kind: TaskKind
    question: str
    """What the copy check compares against: the question with its options."""
    messages: list[dict[str, str]]
    """The prompt sent to the generator."""
    reference: str | None = None
    """Open QA: the parent's answer, which the conclusion is checked against."""
    reasons: list[str] = field(default_factory=list)
    accepted: tuple[int, str, float, int] | None = None  # attempt, text, temperature, seed


class SynthCot(Producer[SynthCotConfig]):
    """The pipeline step of ``synth_cot_v1``: chains of thought from the kept records,
    written to the run as the source ``synth_cot``. The backend is built by ``setup``
    and torn down by ``teardown`` (a vLLM engine gives its GPU memory back); completions
    are cached in ``context.cache`` (else ``default_cache_dir()``)."""

    name = NAME
    version = VERSION
    source = SOURCE

    def __init__(self, config: SynthCotConfig):
        super().__init__(config)
        self.backend: Backend | None = None

    @override
    def setup(self, context: StageContext | None = None) -> None:
        """Build the generation backend (load the model, open connections)."""
        self.backend = backend_from_config(self.config.generator)

    @override
    def teardown(self) -> None:
        """Tear the backend down."""
        backend, self.backend = self.backend, None
        if backend is not None:
            backend.teardown()

    @override
    def produce(self, records: pa.Table, context: StageContext, *,
                progress: ProduceProgress | None = None) -> Produced:
        """Synthetic records from ``records``, the parents that gave none, the stats."""
        cache = context.cache if context.cache is not None else default_cache_dir()
        result = enhance(records, self.config, cache, backend=self.backend, progress=progress)
        return Produced(result.synthetic, result.rejected, result.stats)


def enhance(records: pa.Table, config: SynthCotConfig, cache_dir: str | os.PathLike[str], *,
            backend: Backend | None = None, progress: Progress | None = None) -> CotResult:
    """Chain-of-thought records for ``records`` (the record schema), with rejected parents and
    stats. ``backend`` reuses an already built backend (it must match ``config.generator``);
    by default one is built from ``config.generator`` and torn down at the end."""
    table = conform(records)
    parents = table.to_pylist()
    wanted = set(config.sources) if config.sources is not None else None
    rows: list[_Row] = []
    rejected: list[tuple[int, dict[str, Any]]] = []  # (input position, rejection)
    for index, parent in enumerate(parents):
        if wanted is not None and parent["source"] not in wanted:
            continue
        if config.max_rows is not None and len(rows) >= config.max_rows:
            break
        row, problem = _prepare(index, parent, config)
        if row is not None:
            rows.append(row)
        else:
            rejected.append((index, _rejection(parent, [problem])))
    own = backend is None
    backend = backend_from_config(config.generator) if backend is None else backend
    cache = GenerationCache(Path(cache_dir))
    try:
        stats = _generate(rows, config, backend, cache, progress)
    finally:
        cache.close()
        if own:
            backend.teardown()
    synthetic = [_synthetic(row, config, backend) for row in rows if row.accepted is not None]
    considered = len(rows) + len(rejected)
    rejected += [(row.index, _rejection(row.parent, row.reasons))
                 for row in rows if row.accepted is None]
    rejections = [r for _, r in sorted(rejected, key=lambda pair: pair[0])]
    final = Counter(r["reason"] for r in rejections)
    stats.update({
        "stage": STAGE,
        "generator": backend.identity(),
        "offline_backend": backend.model == OFFLINE_MODEL,
        "rows": considered,
        "synthetic": len(synthetic),
        "rejected": dict(sorted(final.items())),
    })
    stats["completion_tokens_per_row"] = (
        round(stats["tokens"]["completion"] / stats["rows"], 2) if stats["rows"] else 0.0)
    return CotResult(
        synthetic=pa.Table.from_pylist(synthetic, schema=SCHEMA),
        rejected=pa.Table.from_pylist(rejections, schema=REJECTED_SCHEMA),
        stats=stats,
    )


def _prepare(index: int, parent: dict[str, Any], config: SynthCotConfig) -> tuple[_Row | None, str]:
    """The row to enhance, or None and the reason it cannot be."""
    turns = [m for m in parent["messages"] or [] if m["role"] != "system"]
    mcqa = parent["mcqa"]
    if parent["kind"] == "mcqa" and mcqa is not None and len(mcqa["options"] or []) >= 2:
        if mcqa["answer"] is None:
            return None, "no_gold_answer"
        template = Template("mcqa", config.gold_answer)
        question = mcqa["question"] + "\n" + "\n".join(
            f"{letter(i)}. {o}" for i, o in enumerate(mcqa["options"]))
        messages = template.render_mcqa(mcqa["question"], mcqa["options"], mcqa["answer"])
        return _Row(index, parent, "mcqa", question, messages), ""
    roles = [m["role"] for m in turns]
    if parent["kind"] == "chat" and roles in (["user"], ["user", "assistant"]):
        reference = turns[1]["content"] if len(turns) == 2 else None
        needs_reference = config.gold_answer == "given" or config.open_qa_check == "overlap"
        if reference is None and needs_reference:
            return None, "no_gold_answer"
        template = Template("open_qa", config.gold_answer)
        question = turns[0]["content"]
        messages = template.render_open_qa(question, reference)
        return _Row(index, parent, "open_qa", question, messages, reference), ""
    return None, "unsupported_record"


def _generate(rows: list[_Row], config: SynthCotConfig, backend: Backend,
              cache: GenerationCache, progress: Progress | None) -> dict[str, Any]:
    identity = backend.identity()
    attempts: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    sent = cached = prompt_tokens = completion_tokens = 0
    pending = list(rows)
    for attempt in range(1, config.max_attempts + 1):
        temperature = config.attempt_temperature(attempt)
        for start in range(0, len(pending), config.batch_size):
            chunk = pending[start:start + config.batch_size]
            requests, keys = [], []
            for row in chunk:
                template = Template(row.kind, config.gold_answer)
                request = Request.chat(row.messages, max_tokens=config.max_tokens,
                                       temperature=temperature, seed=_seed(config, row, attempt))
                requests.append(request)
                keys.append(cache_key(identity, request,
                                      {"template": template.hash, "attempt": attempt}))
            completions, fresh = generate_cached(backend, requests, keys, cache)
            sent += fresh
            cached += len(chunk) - fresh
            for row, request, completion in zip(chunk, requests, completions):
                prompt_tokens += completion.prompt_tokens
                completion_tokens += completion.completion_tokens
                text = completion.texts[0]
                reason = _check(row, text, config)
                if reason is None:
                    row.accepted = (attempt, text.strip(), temperature, request.seed or 0)
                    attempts[str(attempt)] += 1
                else:
                    row.reasons.append(reason)
                    failed[reason] += 1
            if progress is not None:
                settled = sum(1 for r in rows if r.accepted is not None
                              or len(r.reasons) >= config.max_attempts)
                progress(settled, len(rows))
        pending = [row for row in pending if row.accepted is None]
    return {
        "attempts": dict(sorted(attempts.items())),
        "failed_attempts": dict(sorted(failed.items())),
        "requests": {"sent": sent, "cached": cached},
        "tokens": {"prompt": prompt_tokens, "completion": completion_tokens},
    }


def _check(row: _Row, text: str, config: SynthCotConfig) -> str | None:
    if row.kind == "mcqa":
        mcqa = row.parent["mcqa"]
        reason, _ = check_mcqa(text, question=row.question, options=mcqa["options"],
                               answer=mcqa["answer"], copy_threshold=config.copy_threshold)
        return reason
    return check_open_qa(text, question=row.question, reference=row.reference,
                         copy_threshold=config.copy_threshold, check=config.open_qa_check,
                         min_overlap=config.min_overlap)


def _seed(config: SynthCotConfig, row: _Row, attempt: int) -> int:
    digest = hashlib.sha256(f"{config.seed}:{row.parent['id']}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _synthetic(row: _Row, config: SynthCotConfig, backend: Backend) -> dict[str, Any]:
    assert row.accepted is not None
    attempt, text, temperature, seed = row.accepted
    parent = row.parent
    turns = list(parent["messages"] or [])
    if turns and turns[-1]["role"] == "assistant":
        turns = turns[:-1]
    messages = [*turns, {"role": "assistant", "content": text}]
    template = Template(row.kind, config.gold_answer)
    record = {
        "source": SOURCE, "source_version": STAGE, "row": row.index,
        "kind": parent["kind"], "messages": messages, "chosen": None, "rejected": None,
        "images": None, "mcqa": parent["mcqa"], "domain": parent["domain"], "origin": "synthetic",
        "task": parent["task"], "license": parent["license"],
        "meta": json.dumps({
            "stage": STAGE, "parent_id": parent["id"], "parent_source": parent["source"],
            "parent_row": parent["row"], "generator": backend.identity(),
            "offline_backend": backend.model == OFFLINE_MODEL, "template": template.name,
            "template_hash": template.hash, "gold_answer": config.gold_answer, "seed": seed,
            "attempt": attempt, "temperature": temperature,
        }, sort_keys=True, ensure_ascii=False),
    }
    return {"id": record_id(record), **record}


def _rejection(parent: dict[str, Any], reasons: list[str]) -> dict[str, Any]:
    structural = reasons and reasons[-1] in ("unsupported_record", "no_gold_answer")
    return {"source": parent["source"], "row": parent["row"], "id": parent["id"],
            "reason": reasons[-1], "attempts": 0 if structural else len(reasons),
            "attempt_reasons": [] if structural else reasons}


@dataclass
class CotFileResult:
    """What ``enhance_file`` wrote."""

    synthetic: Path
    rejected: Path
    stats_path: Path
    stats: dict[str, Any]

    @property
    def cot(self) -> CotStats | None:
        """``stats`` as a typed view."""
        return CotStats.from_json(self.stats)

    def to_json(self) -> dict[str, Any]:
        """``curate synth cot --json``: where the files went, and the stats."""
        return {"synthetic": str(self.synthetic), "rejected": str(self.rejected),
                "stats_path": str(self.stats_path), "stats": self.stats}


def default_cache_dir() -> Path:
    """``$CURATE_CACHE_DIR/synth``, else ``$XDG_CACHE_HOME/curate/synth``, else
    ``~/.cache/curate/synth``."""
    if root := os.environ.get("CURATE_CACHE_DIR"):
        return Path(root) / "synth"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "curate" / "synth"


def enhance_file(
    input_path: str | os.PathLike[str], out: str | os.PathLike[str], *, config: SynthCotConfig,
    cache_dir: str | os.PathLike[str] | None = None, source: str | None = None,
    catalog_dirs: Iterable[str | os.PathLike[str]] = (),
    data_root: str | os.PathLike[str] | None = None, progress: Progress | None = None,
) -> CotFileResult:
    """Enhance the records of a file (``curate.read.sources.read_file``) and write OUT: a ``.parquet``
    path gets the synthetic records, with ``<stem>.rejected.parquet`` and
    ``<stem>.stats.json`` beside it; any other path is a folder of ``synthetic.parquet``,
    ``rejected.parquet`` and ``stats.json``."""
    from curate.catalog import Catalog, resolve_data_root
    from curate.read.sources import read_file
    from curate.store import write_json, write_parquet

    records = read_file(input_path, source=source, catalog=Catalog.load(catalog_dirs),
                        data_root=resolve_data_root(data_root)).records
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    result = enhance(records, config, cache, progress=progress)
    target = Path(out)
    if target.suffix == ".parquet":
        paths = (target, target.with_name(f"{target.stem}.rejected.parquet"),
                 target.with_name(f"{target.stem}.stats.json"))
    else:
        paths = (target / "synthetic.parquet", target / "rejected.parquet", target / "stats.json")
    write_parquet(result.synthetic, paths[0])
    write_parquet(result.rejected, paths[1])
    write_json(paths[2], result.stats)
    return CotFileResult(synthetic=paths[0], rejected=paths[1], stats_path=paths[2],
                         stats=result.stats)
