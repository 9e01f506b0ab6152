"""What the ``curate rag`` commands call: index an input, with or without self-generated
chains of thought, and check an index against benchmarks."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from curate.curation.config import DecontamConfig
from curate.errors import ConfigError
from curate.rag.config import IndexConfig
from curate.rag.examples import index_rows, read_input, self_generated_cot
from curate.rag.exclusion import ContaminationCheck, check_index
from curate.rag.index import BuildResult, Index, build_index
from curate.synth.config import SynthCotConfig

Dirs = Iterable[str | os.PathLike[str]]


def index_input(spec: str, out: str | os.PathLike[str], config: IndexConfig | None = None, *,
                cot: SynthCotConfig | None = None, source: str | None = None, catalog_dirs: Dirs = (),
                data_root: str | os.PathLike[str] | None = None,
                cache_dir: str | os.PathLike[str] | None = None,
                embedding_cache: str | os.PathLike[str] | None = None) -> BuildResult:
    """Index the multiple-choice records of ``spec`` (a release folder, a file, a catalog
    source or benchmark) into ``out`` (created, or appended to). With ``cot``, each record
    first gets a chain of thought from ``synth_cot_v1`` and only verified ones are indexed;
    ``cache_dir`` holds its completions (default: synth's cache folder)."""
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


def check_benchmarks(index_path: str | os.PathLike[str], benchmarks: Sequence[str],
                     config: DecontamConfig | None = None, *, catalog_dirs: Dirs = (),
                     data_root: str | os.PathLike[str] | None = None) -> ContaminationCheck:
    """Check the index at ``index_path`` against catalog ``benchmarks`` (what ``curate eval
    mcqa --retrieval`` does before it retrieves)."""
    if not benchmarks:
        raise ConfigError("name at least one benchmark to check the index against (see `curate catalog ls`)")
    import polars as pl

    frames = {}
    for name in dict.fromkeys(benchmarks):
        records = pl.from_arrow(read_input(name, catalog_dirs=catalog_dirs, data_root=data_root).records)
        assert isinstance(records, pl.DataFrame)
        frames[name] = records
    return check_index(Index.open(index_path), frames, config)
