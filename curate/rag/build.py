"""What the ``curate rag`` commands call: index an input, with or without self-generated
chains of thought, open an index for benchmarks (the guard), search it, and check it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from curate.errors import ConfigError
from curate.rag.config import GuardConfig, IndexConfig, PassageConfig, SearchConfig, SearchKind
from curate.rag.examples import index_rows, read_input, self_generated_cot
from curate.rag.exclusion import ContaminationCheck, check_index
from curate.rag.index import BuildResult, Index, QueryHits, build_index
from curate.synth.config import SynthCotConfig

Dirs = Iterable[str | os.PathLike[str]]


def index_input(spec: str, out: str | os.PathLike[str], config: IndexConfig | None = None, *,
                cot: SynthCotConfig | None = None, source: str | None = None, catalog_dirs: Dirs = (),
                data_root: str | os.PathLike[str] | None = None,
                cache_dir: str | os.PathLike[str] | None = None,
                embedding_cache: str | os.PathLike[str] | None = None,
                allow_benchmark: bool = False) -> BuildResult:
    """Index the multiple-choice records of ``spec`` (a release folder, a file, a catalog
    source or benchmark) into ``out`` (created, or appended to). With ``cot``, each record
    first gets a chain of thought from ``synth_cot_v1`` and only verified ones are indexed;
    ``cache_dir`` holds its completions (default: synth's cache folder). A benchmark (by
    name, or a file read with a benchmark's mapping) is refused unless ``allow_benchmark``."""
    if not allow_benchmark:
        _refuse_benchmark(spec, source, catalog_dirs)
    read = read_input(spec, source=source, catalog_dirs=catalog_dirs, data_root=data_root)
    stats: dict[str, Any] = {"input_skipped": read.skipped} if read.skipped else {}
    records = read.records
    if cot is not None:
        from curate.synth.cot import default_cache_dir

        with tempfile.TemporaryDirectory(prefix="curate-rag-cot-") as tmp:
            records, cot_stats = self_generated_cot(
                records, cot, work=Path(tmp), cache=Path(cache_dir) if cache_dir else default_cache_dir())
        stats["synth_cot"] = cot_stats
    rows, skipped = index_rows(records)
    if skipped:
        stats["skipped"] = skipped
    if rows.num_rows == 0:
        raise ConfigError(f"{spec}: no multiple-choice record with a gold answer to index "
                          f"(skipped: {skipped or read.skipped or 'none'}"
                          f"{'; see the synth_cot rejections' if cot is not None else ''})")
    return build_index(rows, out, config, input_name=read.name, release_hash=read.release_hash, stats=stats,
                       cache=embedding_cache)


def index_passages(spec: str, out: str | os.PathLike[str], config: IndexConfig | None = None, *,
                   passages: PassageConfig | None = None, source: str | None = None, catalog_dirs: Dirs = (),
                   data_root: str | os.PathLike[str] | None = None,
                   embedding_cache: str | os.PathLike[str] | None = None,
                   allow_benchmark: bool = False) -> BuildResult:
    """Index the text of ``spec`` (a catalog source or a file) as passages
    (``curate.rag.passages``) into ``out``: chunked, with ids and provenance. A benchmark is
    refused unless ``allow_benchmark``."""
    from curate.rag.passages import KIND, passage_rows

    if not allow_benchmark:
        _refuse_benchmark(spec, source, catalog_dirs)
    read = read_input(spec, source=source, catalog_dirs=catalog_dirs, data_root=data_root)
    config_passages = passages or PassageConfig.model_validate({})
    rows, skipped = passage_rows(read.records, config_passages)
    if rows.num_rows == 0:
        raise ConfigError(f"{spec}: no text to cut into passages (skipped: {skipped or 'none'})")
    stats: dict[str, Any] = {"passages": {**config_passages.model_dump(mode="json"),
                                          "records": read.records.num_rows, "chunks": rows.num_rows,
                                          **({"skipped": skipped} if skipped else {})}}
    return build_index(rows, out, config, input_name=read.name, release_hash=read.release_hash, stats=stats,
                       cache=embedding_cache, kind=KIND)


def _refuse_benchmark(spec: str, source: str | None, catalog_dirs: Dirs) -> None:
    from curate.catalog import Catalog

    catalog = Catalog.load(catalog_dirs)
    named = source if source is not None and source in catalog.benchmarks else (
        spec if not Path(spec).exists() and spec in catalog.benchmarks else None)
    if named is not None:
        raise ConfigError(f"`{named}` is a benchmark: indexed, its items would be few-shot examples for "
                          "themselves and every evaluation on it would be contaminated. Index training "
                          "data, or pass --allow-benchmark if you mean it")


def read_benchmarks(benchmarks: Sequence[str], *, catalog_dirs: Dirs = (),
                    data_root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Catalog ``benchmarks`` (names) -> their ingested records (polars frames)."""
    import polars as pl

    from curate.catalog import Catalog, resolve_data_root
    from curate.read.sources import read_entries

    catalog = Catalog.load(catalog_dirs)
    entries = [catalog.benchmark(name) for name in dict.fromkeys(benchmarks)]
    from curate.ingest.runner import failures_raised_by_caller

    with failures_raised_by_caller():  # the ConfigError says it, once
        read = read_entries(entries, data_root=resolve_data_root(data_root))
    return {entry.name: pl.DataFrame(r.records) for entry, r in zip(entries, read, strict=True)}


def open_index(path: str | os.PathLike[str], *, benchmarks: Sequence[str] = (),
               guard: GuardConfig | None = None, search: SearchKind | SearchConfig = "numpy",
               catalog_dirs: Dirs = (), data_root: str | os.PathLike[str] | None = None) -> Index:
    """The index at ``path``, opened for ``benchmarks`` (catalog names): records the guard
    (``GuardConfig``: the decontamination tiers and the similarity guard) finds in them are
    left out of every search, and a result too similar to the query is dropped
    (``Index.retrieve`` says which). Without benchmarks: the index as it is."""
    index = Index.open(path, search=search)
    if not benchmarks:
        return index
    return check_benchmarks(index, benchmarks, guard, catalog_dirs=catalog_dirs, data_root=data_root).index


def search_index(path: str | os.PathLike[str], queries: Sequence[str], *, k: int = 5,
                 benchmarks: Sequence[str] = (), grounded: bool = False, guard: GuardConfig | None = None,
                 search: SearchKind = "numpy", catalog_dirs: Dirs = (),
                 data_root: str | os.PathLike[str] | None = None) -> list[QueryHits]:
    """The ``k`` records of the index at ``path`` most similar to each query; with
    ``benchmarks``, the index opened for them (``open_index``); ``grounded`` (a passage
    index): each query's grounded prompt too."""
    index = open_index(path, benchmarks=benchmarks, guard=guard, search=search, catalog_dirs=catalog_dirs,
                       data_root=data_root)
    if grounded and index.kind != "passages":
        raise ConfigError(f"{path} is an index of {index.kind}; --grounded builds prompts from passages "
                          "(`curate rag passages`)")
    found = index.retrieve(list(queries), k)
    out = []
    for query, r in zip(queries, found, strict=True):
        prompt = None
        if grounded:
            from curate.rag.passages import Passage, grounded_prompt

            prompt = grounded_prompt(query, [Passage.of(h) for h in r.hits])
        out.append(QueryHits(query, r.hits, len(r.dropped), prompt))
    return out


def check_benchmarks(index: str | os.PathLike[str] | Index, benchmarks: Sequence[str],
                     guard: GuardConfig | None = None, *, catalog_dirs: Dirs = (),
                     data_root: str | os.PathLike[str] | None = None) -> ContaminationCheck:
    """Check the index (a folder, or an opened ``Index``) against catalog ``benchmarks``
    with the guard (what ``curate eval mcqa --retrieval`` does before it retrieves)."""
    if not benchmarks:
        raise ConfigError("name at least one benchmark to check the index against (see `curate catalog ls`)")
    frames = read_benchmarks(benchmarks, catalog_dirs=catalog_dirs, data_root=data_root)
    opened = index if isinstance(index, Index) else Index.open(index)
    return check_index(opened, frames, guard)
