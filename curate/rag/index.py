"""The example index: embedded questions with their records, searched by similarity.

```
INDEX/
  manifest.json         format, embedder (model, revision, backend, max tokens), dimensions,
                        normalisation, record count, and one entry per part: what it was
                        built from (input, the release's manifest hash), rows added,
                        duplicates skipped, the part file's sha256
  parts/00000.parquet   id, source, question, options, answer, cot, meta, vector
  parts/00001.parquet   an appended input (the earlier parts are not embedded again)
```

``vector`` is the unit-length embedding of ``question`` (cosine = inner product). A
record already in the index (same ``id``) is skipped when appended.

Search (``Index.search(texts, k)``) is exact inner product in numpy by default; with the
extra ``rag`` (faiss-cpu), ``search="faiss"`` uses ``IndexFlatIP`` and ``search="hnsw"``
``IndexHNSWFlat`` (approximate). Every backend ends the same way: its candidates are
scored again in float64 and ordered by score, ties broken by record id (the index keeps
its rows sorted by id), so numpy and faiss flat return the same top-k; faiss is asked
for more than k neighbours, and a query whose k-th score ties with the last candidate
it returned is answered exactly instead.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from curate.errors import ConfigError, MissingDependencyError
from curate.rag.config import IndexConfig, SearchConfig, SearchKind
from curate.rag.prompts import McqaItem
from curate.read.views import CotStats

log = logging.getLogger(__name__)

FORMAT = "curate-rag-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PARTS = "parts"
RECORD_SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("source", pa.string()),
    pa.field("question", pa.string(), nullable=False),
    pa.field("options", pa.list_(pa.string())),
    pa.field("answer", pa.int32()),
    pa.field("cot", pa.string()),
    pa.field("meta", pa.string()),
])
"""The records an index holds (a part file adds ``vector``). ``cot``: a verified chain of
thought (None: the example is shown with its answer alone); ``meta``: its lineage."""
_SLACK = 1e-5
"""Score margin of the exact candidates (float32 products) before they are scored again in float64."""


@dataclass(frozen=True)
class Hit:
    """One retrieved record: its id, similarity (cosine) and fields."""

    id: str
    score: float
    record: dict[str, Any]

    @property
    def question(self) -> str:
        """The record's question."""
        return str(self.record["question"])

    @property
    def source(self) -> str | None:
        """The source the record came from."""
        return self.record.get("source")

    @property
    def cot(self) -> str | None:
        """The record's chain of thought (a self-generated or synthetic one), if any."""
        return self.record.get("cot")

    def example(self) -> McqaItem:
        """The record as a few-shot example for ``build_prompt``."""
        r = self.record
        return McqaItem(benchmark=r.get("source") or "index", row=0, record_id=self.id,
                        question=r["question"], options=tuple(r["options"] or ()), answer=r["answer"],
                        reasoning=r.get("cot"))


@dataclass(frozen=True)
class Retrieved:
    """What one query retrieved: ``hits`` (best first) and the records the similarity guard
    dropped as too close to the query (``dropped``)."""

    hits: list[Hit]
    dropped: list[Hit]


@dataclass
class Index:
    """An opened index: records sorted by id, their vectors, and a search backend."""

    path: Path
    manifest: dict[str, Any]
    records: pl.DataFrame
    vectors: np.ndarray
    config: SearchConfig = field(default_factory=lambda: SearchConfig.model_validate({}))
    excluded: dict[str, str] = field(default_factory=dict)
    """Record id -> why it is left out of this view (``contaminated:<benchmark>:<item>``,
    ``similar:<benchmark>:<item>``)."""
    max_similarity: float | None = None
    """The similarity guard of a view opened for benchmarks: a record whose cosine with the
    query is at or above this is dropped from the results (``retrieve`` says which)."""
    _faiss: Any = field(default=None, repr=False)

    @classmethod
    def open(cls, path: str | os.PathLike[str], search: SearchKind | SearchConfig = "numpy") -> Index:
        """Read the index at ``path`` (vectors in memory) with the search backend ``search``."""
        folder = Path(path)
        manifest = read_manifest(folder)
        config = search if isinstance(search, SearchConfig) else SearchConfig(search=search)
        tables = [pq.read_table(folder / part["file"]) for part in manifest["parts"]]
        dimensions = int(manifest["dimensions"])
        if not tables:
            return cls(folder, manifest, pl.DataFrame(schema=_polars_schema()),
                       np.zeros((0, dimensions), np.float32), config)
        table = pa.concat_tables(tables)
        vectors = np.asarray(table.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False),
                             np.float32).reshape(-1, dimensions)
        frame = pl.from_arrow(table.drop(["vector"]))
        assert isinstance(frame, pl.DataFrame)
        order = np.argsort(np.asarray(frame.get_column("id").to_list(), dtype=object), kind="stable")
        return cls(folder, manifest, frame[order.tolist()], np.ascontiguousarray(vectors[order]), config)

    def __len__(self) -> int:
        return self.records.height

    @property
    def kind(self) -> str:
        """``examples`` (solved questions) or ``passages`` (``curate.rag.passages``)."""
        return str(self.manifest.get("kind", "examples"))

    @property
    def ids(self) -> list[str]:
        """Record ids in index order (sorted)."""
        return self.records.get_column("id").to_list()

    def embed(self, texts: Sequence[str], *, cache: str | os.PathLike[str] | None = None) -> np.ndarray:
        """Vectors of ``texts`` with the index's own embedder (model, backend, max tokens)."""
        from curate.curation.embed import embed

        m = self.manifest["embedder"]
        return embed(list(texts), m["model"], max_tokens=m["max_tokens"], backend=m["backend"],
                     batch_size=m.get("batch_size", 64), cache=cache)

    def search(self, texts: Sequence[str], k: int = 5, *,
               cache: str | os.PathLike[str] | None = None) -> list[list[Hit]]:
        """For each text, the ``k`` most similar records, the most similar first (in a view
        with a similarity guard, without the records too close to the text)."""
        return [r.hits for r in self.retrieve(texts, k, cache=cache)]

    def retrieve(self, texts: Sequence[str], k: int = 5, *,
                 cache: str | os.PathLike[str] | None = None,
                 vectors: np.ndarray | None = None) -> list[Retrieved]:
        """For each text, the ``k`` most similar records and those the similarity guard
        dropped (their cosine with the text at or above ``max_similarity``).
        ``vectors``: the texts' embeddings, when the caller has them already."""
        if k < 1:
            raise ConfigError(f"k = {k}: ask for at least one neighbour")
        queries = self.embed(texts, cache=cache) if vectors is None else vectors
        limit = self.max_similarity
        fetch = k
        while True:
            positions, scores = self.search_vectors(queries, min(fetch, max(len(self), 1)))
            close = 0 if limit is None else int((scores >= limit - 1e-6).sum(axis=1).max(initial=0))
            if limit is None or fetch >= len(self) or fetch - close >= k:
                break
            fetch = max(2 * fetch, k + close)
        wanted = np.unique(positions[positions >= 0])
        rows = dict(zip(wanted.tolist(), self.records[wanted.tolist()].to_dicts(), strict=True))
        out = []
        for ps, ss in zip(positions, scores, strict=True):
            hits = [Hit(id=rows[p]["id"], score=float(s), record=rows[p])
                    for p, s in zip(ps.tolist(), ss.tolist(), strict=True) if p >= 0]
            dropped = [h for h in hits if limit is not None and h.score >= limit - 1e-6]
            out.append(Retrieved([h for h in hits if h not in dropped][:k], dropped))
        return out

    def guarded(self, max_similarity: float | None) -> Index:
        """This view with the query-time similarity guard set to ``max_similarity``."""
        return Index(self.path, self.manifest, self.records, self.vectors, self.config, dict(self.excluded),
                     max_similarity, self._faiss)

    def search_vectors(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Row positions (n, k) and float64 scores of the k best records per query; -1 and
        NaN where the index holds fewer than k records."""
        queries = np.ascontiguousarray(queries, np.float32)
        if queries.ndim != 2 or (len(self) and queries.shape[1] != self.vectors.shape[1]):
            raise ConfigError(f"queries of shape {queries.shape} do not match the index's "
                              f"{self.vectors.shape[1]} dimensions")
        positions = np.full((len(queries), k), -1, np.int64)
        scores = np.full((len(queries), k), np.nan)
        if len(self) == 0 or len(queries) == 0:
            return positions, scores
        if self.config.search == "numpy":
            candidates = self._exact_candidates(queries, k)
        else:
            candidates = self._faiss_candidates(queries, k)
        for row, cand in enumerate(candidates):
            best, value = _rank(self.vectors, queries[row], cand, k)
            positions[row, :len(best)] = best
            scores[row, :len(best)] = value
        return positions, scores

    def _exact_candidates(self, queries: np.ndarray, k: int, *, block: int = 512) -> list[np.ndarray]:
        """Per query: every row whose float32 score is within ``_SLACK`` of the k-th best."""
        out: list[np.ndarray] = []
        n = len(self)
        for start in range(0, len(queries), block):
            sims = queries[start:start + block] @ self.vectors.T
            if k >= n:
                out += [np.arange(n)] * len(sims)
                continue
            kth = -np.partition(-sims, k - 1, axis=1)[:, k - 1]
            out += [np.flatnonzero(s >= t - _SLACK) for s, t in zip(sims, kth, strict=True)]
        return out

    def _faiss_candidates(self, queries: np.ndarray, k: int) -> list[np.ndarray]:
        """faiss's neighbours, more than k; a query whose last one may tie with the k-th
        (approximately equal scores: more might be hidden) gets the exact candidates."""
        index = self.faiss_index()
        n = len(self)
        fetch = min(n, k + max(k, 16))
        found, positions = index.search(queries, fetch)
        out: list[np.ndarray] = []
        exact_rows = []
        for row in range(len(queries)):
            cand = positions[row][positions[row] >= 0]
            out.append(cand)
            if self.config.search == "faiss" and fetch < n and len(cand) >= k and \
                    found[row, -1] >= found[row, k - 1] - _SLACK:
                exact_rows.append(row)
        if exact_rows:
            for row, cand in zip(exact_rows, self._exact_candidates(queries[exact_rows], k), strict=True):
                out[row] = cand
        return out

    def faiss_index(self) -> Any:
        """The faiss index of the vectors (built on first use): flat or HNSW, inner product."""
        if self._faiss is None:
            faiss = _faiss()
            d = self.vectors.shape[1]
            c = self.config
            if c.search == "hnsw":
                index = faiss.IndexHNSWFlat(d, c.hnsw_m, faiss.METRIC_INNER_PRODUCT)
                index.hnsw.efConstruction = c.hnsw_ef_construction
                index.hnsw.efSearch = c.hnsw_ef_search
            else:
                index = faiss.IndexFlatIP(d)
            index.add(self.vectors)
            self._faiss = index
        return self._faiss

    def without(self, excluded: dict[str, str]) -> Index:
        """A view of the index without the records of ``excluded`` (id -> reason)."""
        if not excluded:
            return self
        keep = ~self.records.get_column("id").is_in(list(excluded)).to_numpy()
        return Index(self.path, self.manifest, self.records.filter(pl.Series(keep)), self.vectors[keep],
                     self.config, {**self.excluded, **excluded}, self.max_similarity)

    def as_records(self) -> pa.Table:
        """The index's records (``RECORD_SCHEMA``), in index order."""
        return self.records.to_arrow().cast(RECORD_SCHEMA)


def _rank(vectors: np.ndarray, query: np.ndarray, cand: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best of ``cand`` by float64 inner product, ties by position (= by id)."""
    cand = np.unique(cand)
    values = vectors[cand].astype(np.float64) @ query.astype(np.float64)
    order = np.lexsort((cand, -values))[:k]
    return cand[order], values[order]


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise MissingDependencyError("faiss-cpu", "rag") from None
    return faiss


def _polars_schema() -> dict[str, Any]:
    frame = pl.from_arrow(RECORD_SCHEMA.empty_table())
    assert isinstance(frame, pl.DataFrame)
    return dict(frame.schema)


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of the index at ``folder``; a ConfigError when it is not one."""
    path = folder / MANIFEST
    if not path.is_file():
        raise ConfigError(f"{folder} is not a retrieval index (no {MANIFEST}); build one with "
                          "`curate rag index INPUT --out FOLDER`")
    manifest = json.loads(path.read_text("utf-8"))
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"{path}: format {manifest.get('format')} v{manifest.get('format_version')}; "
                          f"this curate reads {FORMAT} v{FORMAT_VERSION}")
    return manifest


def _embedder(config: IndexConfig) -> dict[str, Any]:
    from curate.curation.embed import model_revision

    return {"model": config.embedder, "revision": model_revision(config.embedder),
            "backend": config.embedding_backend, "max_tokens": config.embedding_max_tokens,
            "batch_size": config.embedding_batch_size}


@dataclass(frozen=True)
class QueryHits:
    """The records retrieved for one query, best first, and how many the similarity guard dropped."""

    query: str
    hits: list[Hit]
    dropped: int = 0
    prompt: list[dict[str, str]] | None = None
    """With ``grounded`` (a passage index): the grounded prompt's messages."""





@dataclass
class BuildResult:
    """What ``build_index`` did: the index, and the part it appended (None: nothing new)."""

    index: Index
    part: dict[str, Any]

    @property
    def added(self) -> int:
        """Records this build embedded and appended."""
        return int(self.part["added"])

    @property
    def already_indexed(self) -> int:
        """Records of the input the index held already."""
        return int(self.part["already_indexed"])

    @property
    def input_name(self) -> str:
        """What was indexed (a release, a file, a catalog name)."""
        return str(self.part["input"])

    @property
    def records_per_second(self) -> float | None:
        """The embedding rate (None when nothing was embedded)."""
        return self.part.get("records_per_second")

    @property
    def synth_cot(self) -> CotStats | None:
        """With self-generated chains of thought: synth_cot_v1's stats."""
        stats = self.part.get("stats", {}).get("synth_cot")
        return None if stats is None else CotStats.from_json(stats)

    def to_json(self) -> dict[str, Any]:
        """``curate rag index|cot --json``: the index folder, its size and the part appended."""
        return {"index": str(self.index.path), "records": len(self.index), "part": self.part}


def build_index(
    records: pa.Table | pl.DataFrame,
    out: str | os.PathLike[str],
    config: IndexConfig | None = None,
    *,
    input_name: str,
    release_hash: str | None = None,
    stats: dict[str, Any] | None = None,
    cache: str | os.PathLike[str] | None = None,
    kind: str = "examples",
) -> BuildResult:
    """Embed ``records`` (``RECORD_SCHEMA``) into the index at ``out``: a new index, or a
    part appended to an existing one built with the same embedder (records whose id it
    holds already are skipped). ``stats``: how the records were made (kept in the part);
    ``kind``: ``examples`` or ``passages`` (an index holds one kind)."""
    from curate.curation.embed import embed
    from curate.store import write_json, write_parquet

    config = config or IndexConfig.model_validate({})
    folder = Path(out)
    table = records.to_arrow() if isinstance(records, pl.DataFrame) else records
    missing = {"id", "question"} - set(table.column_names)
    if missing:
        raise ConfigError(f"index records need columns {sorted(missing)} "
                          "(see curate.rag.index.RECORD_SCHEMA)")
    table = _conform(table)
    embedder = _embedder(config)
    if (folder / MANIFEST).exists():
        manifest = read_manifest(folder)
        old = {k: manifest["embedder"].get(k) for k in ("model", "revision", "backend", "max_tokens")}
        new = {k: embedder[k] for k in old}
        if old != new:
            raise ConfigError(f"index {folder} was embedded with {old}; appending with {new} would mix "
                              "vector spaces: use the same --embedder, --embedding-backend and "
                              "--embedding-max-tokens, or a new --out")
        if manifest.get("kind", "examples") != kind:
            raise ConfigError(f"index {folder} holds {manifest.get('kind', 'examples')}; appending {kind} "
                              "would mix them: use a new --out")
        held = set(Index.open(folder).ids)
    else:
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "embedder": embedder,
                    "dimensions": None, "normalised": True, "metric": "inner_product", "records": 0,
                    "parts": []}
        held = set()
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    unique = frame.unique("id", keep="first", maintain_order=True)
    fresh = unique.filter(~pl.col("id").is_in(list(held)))
    if fresh.height:
        from curate.curation.embed import load_embedder

        load_embedder(config.embedder)  # loaded before the clock starts: the rate is embedding alone
    started = time.perf_counter()
    vectors = embed(fresh.get_column("question").to_list(), config.embedder,
                    batch_size=config.embedding_batch_size, max_tokens=config.embedding_max_tokens,
                    backend=config.embedding_backend, cache=cache)
    seconds = time.perf_counter() - started
    dimensions = int(vectors.shape[1]) if vectors.ndim == 2 and vectors.shape[1] else None
    if dimensions is None:
        from curate.curation.embed import load_embedder

        dimensions = int(load_embedder(config.embedder).get_embedding_dimension() or 0)
    part: dict[str, Any] = {
        "input": input_name, "release_manifest_sha256": release_hash, "rows": frame.height,
        "added": fresh.height, "duplicates_in_input": frame.height - unique.height,
        "already_indexed": unique.height - fresh.height, "embed_seconds": round(seconds, 3),
        "records_per_second": round(fresh.height / seconds, 1) if seconds > 0 and fresh.height else None,
        **({"stats": stats} if stats else {}),
    }
    if fresh.height:
        number = len(manifest["parts"])
        relative = f"{PARTS}/{number:05d}.parquet"
        flat = pa.array(vectors.reshape(-1), pa.float32())
        data = fresh.to_arrow().cast(RECORD_SCHEMA).append_column(
            "vector", pa.FixedSizeListArray.from_arrays(flat, dimensions))
        write_parquet(data, folder / relative)
        from curate.store import sha256_file

        part.update(file=relative, sha256=sha256_file(folder / relative))
        manifest["parts"].append(part)
        manifest["records"] += fresh.height
    manifest["dimensions"] = dimensions
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / MANIFEST, manifest)
    log.info("index %s: %d records added from %s (%d already held)", folder, fresh.height, input_name,
             unique.height - fresh.height)
    return BuildResult(index=Index.open(folder), part=part)


def _conform(table: pa.Table) -> pa.Table:
    columns = []
    for f in RECORD_SCHEMA:
        if f.name in table.column_names:
            columns.append(table.column(f.name).cast(f.type))
        else:
            columns.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=RECORD_SCHEMA)


def records_by_id(index: Index, ids: Iterable[str]) -> pl.DataFrame:
    """The index's records with the given ids (in index order)."""
    return index.records.filter(pl.col("id").is_in(list(ids)))
