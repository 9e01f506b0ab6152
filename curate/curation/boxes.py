"""Bounding-box checks (boxes_v1): every box in a record's turns, against its image.

Boxes are read from every turn in ``input_format`` (see ``curate.curation.box_formats`` for
the four formats and what an exact round trip between them means), measured against
the size of the record's first image (read from its header; the pixels are not
decoded), and flagged, the first that fires over the record's boxes:

- ``box_out_of_bounds``: a corner outside the image (below 0, past the width or height);
- ``box_degenerate``: no area (x2 <= x1 or y2 <= y1).

A release writes the kept records' boxes in ``target_format``, the one the recipe's
target model reads (``rewrites_text``: the turns are rewritten, ids unchanged). Records
without an image or without boxes are not touched.
"""

from __future__ import annotations

import io
from typing import Any

import polars as pl
import pyarrow as pa

from curate.curation.box_formats import find_boxes, rewrite_boxes
from curate.curation.config import BoxConfig
from curate.engine.stage import RowStage, StageContext

SCORES = {"box_count": pl.Int64, "box_problem": pl.String, "box_image_size": pl.String}


def image_size(data: bytes | None) -> tuple[int, int] | None:
    """(width, height) from the image header, or None when it cannot be read."""
    if not data:
        return None
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (OSError, SyntaxError, ValueError):
        return None


def _first_image(images: list[dict[str, Any]] | None) -> bytes | None:
    return images[0].get("bytes") if images else None


class BoxCheck(RowStage[BoxConfig]):
    """Flag boxes outside their image or without area; write boxes in the target format."""

    name = "boxes"
    version = 1
    decision_fields = frozenset({"target_format"})
    columns = ("messages", "images")
    score_columns = SCORES
    rewrites_text = True

    def score(self, records: pa.Table, context: StageContext) -> pa.Table:
        """The stage's scores (see the module docstring)."""
        counts: list[int | None] = []
        problems: list[str | None] = []
        sizes: list[str | None] = []
        fmt = self.config.input_format
        for turns, images in zip(records.column("messages").to_pylist(),
                                 records.column("images").to_pylist(), strict=True):
            size = image_size(_first_image(images))
            if size is None or not turns:
                counts.append(None)
                problems.append(None)
                sizes.append(None)
                continue
            width, height = size
            boxes = [box for turn in turns for box in find_boxes(turn["content"] or "", fmt, width, height)]
            counts.append(len(boxes))
            problems.append(next((p for p in (b.problem(width, height) for b in boxes) if p), None))
            sizes.append(f"{width}x{height}")
        return pa.table({"box_count": pa.array(counts, pa.int64()),
                         "box_problem": pa.array(problems, pa.string()),
                         "box_image_size": pa.array(sizes, pa.string())})

    def decide(self, scores: pl.DataFrame) -> pl.DataFrame:
        """``keep`` and ``reason`` from the scores and the decision options."""
        return scores.with_columns(reason=pl.col("box_problem")).with_columns(
            keep=pl.col("reason").is_null())

    def rewrite(self, records: pa.Table) -> pa.Table:
        """The records with their boxes written in ``target_format``."""
        source, target = self.config.input_format, self.config.target_format
        if source == target or "images" not in records.column_names:
            return records
        column = records.column("messages")
        values, changed = [], False
        for turns, images in zip(column.to_pylist(), records.column("images").to_pylist(), strict=True):
            size = image_size(_first_image(images))
            if size is None or not turns:
                values.append(turns)
                continue
            new = [{"role": t["role"], "content": rewrite_boxes(t["content"] or "", source, target, *size)}
                   for t in turns]
            changed = changed or new != turns
            values.append(new)
        if not changed:
            return records
        index = records.column_names.index("messages")
        return records.set_column(index, "messages", pa.array(values, column.type))
