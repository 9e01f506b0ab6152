"""Image checks (image_v1): decodable, large enough, sane shape, not a duplicate.

Every distinct image (by the SHA-256 of its bytes) is decoded once, in full, so a
truncated file is caught here (ingestion only verifies headers). Records that share one
image file (VQA-RAD asks about 11 questions per image) share its result: the same image
with another question is not a duplicate. Flags, the first that fires:

- ``unreadable_image``: no bytes, zero bytes, not an image, truncated or corrupt, or more
  than ``max_pixels`` pixels (a decompression bomb, refused before decoding);
- ``image_too_small``: the shorter side is under ``min_side`` pixels;
- ``bad_aspect_ratio``: longer side / shorter side above ``max_aspect_ratio``;
- ``duplicate_image:<id>``: a different file (other bytes) whose perceptual hash
  (imagehash's DCT ``phash``) is within ``max_distance`` bits of an earlier image's: a
  re-encoded, resized or recompressed copy. ``<id>`` is the first record (by source,
  row) that carries the kept image. Images are visited in order of first appearance;
  each is a duplicate of the earliest kept image within reach (no chaining through
  duplicates). Pairs are found by multi-index hashing, not by comparing all pairs.

A record with several images takes the first problem of any of them.

Normalisation for the release. The stage declares a rewrite (``rewrites_text``: the
engine's one mechanism for what a release writes differently from the run store) of the
``images`` column rather than of the turns: an image in a format outside
``keep_formats``, a mode outside ``keep_modes``, or with an EXIF orientation is written
upright, as RGB (alpha on white), as PNG (see ``curate.curation.image_io``). The run
store keeps the original bytes, and the record ids (which hash them) do not change.
``image_normalize`` says which records the release rewrites.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from curate.curation.config import IMAGE_DECISIONS, ImageConfig
from curate.curation.image_io import (
    ImageFacts,
    inspect_image,
    near_pairs,
    needs_normalizing,
    normalized_image,
)
from curate.engine.stage import DatasetStage, StageContext, in_batches

SCORES = {
    "image_count": pl.Int64,
    "image_error": pl.String,
    "image_width": pl.Int64,
    "image_height": pl.Int64,
    "image_format": pl.String,
    "image_mode": pl.String,
    "image_phash": pl.String,
    "image_normalize": pl.Boolean,
    "image_duplicate_of": pl.String,
    "image_distance": pl.Int64,
}


class ImageCheck(DatasetStage[ImageConfig]):
    """Flag unreadable, small, oddly shaped and duplicate images; normalise the rest."""

    name = "image"
    version = 1
    decision_fields = IMAGE_DECISIONS
    columns = ("images",)
    score_columns = SCORES
    rewrites_text = True  # the release's rewrite: here of `images`, not of the turns

    def score(self, records: pl.LazyFrame, context: StageContext) -> pl.DataFrame:
        """The stage's scores (see the module docstring)."""
        return score_images(records, self.config)

    def decide(self, scores: pl.DataFrame) -> pl.DataFrame:
        """``keep`` and ``reason`` from the scores and the decision options."""
        o = self.config
        short = pl.min_horizontal("image_width", "image_height")
        long = pl.max_horizontal("image_width", "image_height")
        flags = [
            pl.when(pl.col("image_error").is_not_null()).then(pl.lit("unreadable_image")),
            pl.when(short < o.min_side).then(pl.lit("image_too_small")),
            pl.when(long > o.max_aspect_ratio * short).then(pl.lit("bad_aspect_ratio")),
        ]
        if o.duplicates:
            flags.append(pl.when(pl.col("image_duplicate_of").is_not_null())
                         .then(pl.lit("duplicate_image:") + pl.col("image_duplicate_of")))
        return scores.with_columns(reason=pl.coalesce(flags)).with_columns(
            keep=pl.col("reason").is_null())

    def rewrite(self, records: pa.Table) -> pa.Table:
        """The records with their images as the release writes them (normalised)."""
        if not self.config.normalize or "images" not in records.column_names:
            return records
        return normalize_images(records, self.config)


def _sha(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def score_images(records: pl.LazyFrame, config: ImageConfig) -> pl.DataFrame:
    """The image scores of every record (keys first), duplicates found across all."""
    facts: dict[str | None, ImageFacts] = {}
    order: list[str] = []  # distinct readable images, in order of first appearance
    first_record: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    for batch in in_batches(records, "source", "row", "id", "images"):
        for source, row, rid, images in batch.iter_rows():
            images = images or []
            shas = []
            for image in images:
                data = image.get("bytes")
                sha = _sha(data)
                if sha not in facts:
                    facts[sha] = inspect_image(data, max_pixels=config.max_pixels,
                                               hash_size=config.hash_size)
                    if sha is not None and facts[sha].error is None:
                        order.append(sha)
                if sha is not None and sha not in first_record:
                    first_record[sha] = rid
                shas.append(sha)
            rows.append({"source": source, "row": row, "id": rid, "shas": shas})
    duplicate_of, distance = _duplicates(order, facts, config.max_distance)
    out: dict[str, list[Any]] = {k: [] for k in ("source", "row", "id", *SCORES)}
    for r in rows:
        out["source"].append(r["source"])
        out["row"].append(r["row"])
        out["id"].append(r["id"])
        found = [facts[s] for s in r["shas"]]
        error = next((f.error for f in found if f.error is not None), None)
        readable = [f for f in found if f.error is None]
        # the record's smallest image decides size; its most elongated one, shape
        smallest = min(readable, key=lambda f: min(f.width, f.height), default=None)
        first = readable[0] if readable else None
        dup = next(((duplicate_of[s], distance[s]) for s in r["shas"] if s in duplicate_of), None)
        out["image_count"].append(len(found) if found else None)
        out["image_error"].append(error)
        out["image_width"].append(smallest.width if smallest and error is None else None)
        out["image_height"].append(smallest.height if smallest and error is None else None)
        out["image_format"].append(first.format if first else None)
        out["image_mode"].append(first.mode if first else None)
        out["image_phash"].append(first.phash.hex() if first and first.phash is not None else None)
        out["image_normalize"].append(
            any(needs_normalizing(f, config.keep_formats, config.keep_modes) for f in readable)
            if readable else None)
        out["image_duplicate_of"].append(first_record[dup[0]] if dup else None)
        out["image_distance"].append(dup[1] if dup else None)
    schema = {"source": pl.String, "row": pl.Int64, "id": pl.String, **SCORES}
    return pl.DataFrame(out, schema=schema)


def _duplicates(order: list[str], facts: dict[str | None, ImageFacts], max_distance: int
                ) -> tuple[dict[str, str], dict[str, int]]:
    """Distinct image -> the earlier kept image it duplicates, and their distance."""
    if len(order) < 2:
        return {}, {}
    hashes = np.stack([np.frombuffer(facts[s].phash or b"", np.uint8) for s in order])
    left, right = near_pairs(hashes, max_distance)
    if len(left) == 0:
        return {}, {}
    bits = np.unpackbits(hashes[left] ^ hashes[right], axis=1).sum(axis=1)
    earlier: dict[int, list[tuple[int, int]]] = {}
    for i, j, d in zip(left.tolist(), right.tolist(), bits.tolist(), strict=True):  # i < j: i came first
        earlier.setdefault(j, []).append((i, d))
    kept = np.ones(len(order), bool)
    duplicate_of: dict[str, str] = {}
    distance: dict[str, int] = {}
    for j in sorted(earlier):
        candidates = [(i, d) for i, d in sorted(earlier[j]) if kept[i]]
        if candidates:
            i, d = candidates[0]
            kept[j] = False
            duplicate_of[order[j]] = order[i]
            distance[order[j]] = d
    return duplicate_of, distance


def normalize_images(records: pa.Table, config: ImageConfig) -> pa.Table:
    """``records`` with every image that needs it normalised (see the module docstring);
    unreadable images (records the stage removed) are left as they are."""
    column = records.column("images")
    cache: dict[bytes, tuple[bytes, bool]] = {}
    changed = False
    values = []
    for images in column.to_pylist():
        if not images:
            values.append(images)
            continue
        rebuilt = []
        for image in images:
            data, path = image.get("bytes"), image.get("path")
            if data:
                if data not in cache:
                    try:
                        cache[data] = normalized_image(data, keep_formats=list(config.keep_formats),
                                                       keep_modes=list(config.keep_modes),
                                                       max_pixels=config.max_pixels)
                    except (OSError, SyntaxError, ValueError, EOFError):
                        cache[data] = (data, False)
                new, did = cache[data]
                if did:
                    changed = True
                    data = new
                    if path and not path.lower().endswith(".png"):
                        path = (path.rsplit(".", 1)[0] if "." in path.rsplit("/", 1)[-1] else path) + ".png"
            rebuilt.append({"bytes": data, "path": path})
        values.append(rebuilt)
    if not changed:
        return records
    index = records.column_names.index("images")
    return records.set_column(index, "images", pa.array(values, column.type))

