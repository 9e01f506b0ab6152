"""A content-addressed cache of completions, so generation resumes and never repeats.

A completion is stored under the SHA-256 of everything that determines it: the backend,
model and revision, the template hash, the attempt number, the sampling parameters
(temperature, max tokens, n, seed, stop, choices) and the input messages. Never the
API key, nor the endpoint URL (the same model served elsewhere gives the same answer).

Storage is one SQLite database in write-ahead-log mode, one committed transaction per
completion as it arrives: a process killed mid-run loses at most the requests still
in flight, and a rerun finds every finished one. Several processes may share a cache.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from curate.synth.backend import Backend, Completion, Request

FILE = "completions.sqlite"


def cache_key(identity: Mapping[str, Any], request: Request, context: Mapping[str, Any]) -> str:
    """The key of ``request`` sent to the backend ``identity`` names, in ``context``
    (the template hash and attempt number)."""
    parts = {"generator": dict(identity), "context": dict(context),
             "sampling": request.sampling(), "messages": [list(m) for m in request.messages]}
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class GenerationCache:
    """Completions by key, in ``folder/completions.sqlite``."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS completions "
                         "(key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def get_many(self, keys: Iterable[str]) -> dict[str, Completion]:
        """The cached completions of ``keys`` (missing keys are absent)."""
        found: dict[str, Completion] = {}
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT key, value FROM completions WHERE key IN ({marks})", chunk)
            for key, value in rows:
                data = json.loads(value)
                found[key] = Completion(texts=tuple(data["texts"]), prompt_tokens=data["prompt_tokens"],
                                        completion_tokens=data["completion_tokens"],
                                        finish_reasons=tuple(data["finish_reasons"]))
        return found

    def put(self, key: str, completion: Completion) -> None:
        """Store one completion (committed at once)."""
        value = json.dumps({"texts": list(completion.texts), "prompt_tokens": completion.prompt_tokens,
                            "completion_tokens": completion.completion_tokens,
                            "finish_reasons": list(completion.finish_reasons)}, ensure_ascii=False)
        self._db.execute("INSERT OR REPLACE INTO completions (key, value) VALUES (?, ?)", (key, value))

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM completions").fetchone()[0]

    def close(self) -> None:
        """Close the database."""
        self._db.close()


def generate_cached(backend: Backend, requests: Sequence[Request], keys: Sequence[str],
                    cache: GenerationCache) -> tuple[list[Completion], int]:
    """Completions for ``requests`` (keyed by ``keys``): cached ones read back, the others
    generated and stored one by one as they finish. Returns them and the number sent."""
    have = cache.get_many(keys)
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    missing = [i for key, i in first.items() if key not in have]
    if missing:
        def store(position: int, completion: Completion) -> None:
            key = keys[missing[position]]
            cache.put(key, completion)
            have[key] = completion

        backend.generate([requests[i] for i in missing], on_result=store)
    return [have[key] for key in keys], len(missing)
