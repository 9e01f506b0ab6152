"""Bounding boxes: exact round trips between every pair of formats; bounds and area."""

from __future__ import annotations

import io
from fractions import Fraction
from itertools import permutations

import polars as pl
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from curate.curation.box_formats import FORMATS, Box, box_values, format_box, parse_box, rewrite_boxes
from curate.curation.boxes import BoxCheck
from curate.curation.config import BoxConfig
from curate.mixes.assemble import modality
from curate.records import conform, with_ids

sides = st.integers(1, 5000)


@st.composite
def token_boxes(draw):
    w, h = draw(sides), draw(sides)
    x = sorted(draw(st.lists(st.integers(0, 1000), min_size=2, max_size=2)))
    y = sorted(draw(st.lists(st.integers(0, 1000), min_size=2, max_size=2)))
    return parse_box([x[0], y[0], x[1], y[1]], "tokens", w, h), w, h


@st.composite
def millipixel_boxes(draw):
    w, h = draw(sides), draw(sides)
    x = sorted(draw(st.lists(st.integers(0, w * 1000), min_size=2, max_size=2)))
    y = sorted(draw(st.lists(st.integers(0, h * 1000), min_size=2, max_size=2)))
    return Box(*(Fraction(v, 1000) for v in (x[0], y[0], x[1], y[1]))), w, h


def _through(box: Box, chain: tuple[str, ...], w: int, h: int) -> Box:
    """``box`` written and read back in each format of ``chain`` in turn."""
    for fmt in chain:
        box = parse_box(box_values(box, fmt, w, h), fmt, w, h)  # type: ignore[arg-type]
    return box


def _written(box: Box, fmt: str, w: int, h: int) -> list[Fraction]:
    return box_values(box, fmt, w, h)  # type: ignore[arg-type]


@given(token_boxes())
def test_token_grid_boxes_survive_every_chain_of_formats(case):
    box, w, h = case
    for a, b in permutations(FORMATS, 2):  # written in a, read, written in b, read, written in a
        assert _written(_through(box, (a, b), w, h), a, w, h) == _written(box, a, w, h)
    for chain in permutations(FORMATS):
        assert _written(_through(box, chain, w, h), "tokens", w, h) == _written(box, "tokens", w, h)
        assert _written(_through(box, chain, w, h), "xyxy", w, h) == _written(box, "xyxy", w, h)


@given(millipixel_boxes())
def test_pixel_grid_boxes_survive_pixel_and_normalised_formats(case):
    box, w, h = case
    for a, b in permutations(("xyxy", "xywh", "norm_xyxy"), 2):
        assert _written(_through(box, (a, b), w, h), a, w, h) == _written(box, a, w, h)
    assert _through(box, ("norm_xyxy", "xyxy"), w, h) == box  # pixels come back exactly


@given(millipixel_boxes())
def test_tokens_quantise_once_then_are_stable(case):
    box, w, h = case
    once = _through(box, ("tokens",), w, h)
    assert abs(once.x1 - box.x1) <= Fraction(w, 2000) and abs(once.y2 - box.y2) <= Fraction(h, 2000)
    for fmt in FORMATS:
        assert _written(_through(once, (fmt,), w, h), "tokens", w, h) == _written(once, "tokens", w, h)


@given(token_boxes())
def test_text_round_trip(case):
    box, w, h = case
    for a, b in permutations(FORMATS, 2):
        text = f"The lesion is at {format_box(box, a, w, h)}."
        assert rewrite_boxes(rewrite_boxes(text, a, b, w, h), b, a, w, h) == text


def test_formats_read_as_documented():
    assert parse_box([10, 20, 30, 40], "xywh", 100, 100) == parse_box([10, 20, 40, 60], "xyxy", 100, 100)
    assert format_box(parse_box(["0.1", "0.2", "0.5", "0.5"], "norm_xyxy", 640, 480), "tokens", 640, 480) == \
        "<|box_start|>(100,200),(500,500)<|box_end|>"
    assert format_box(parse_box([100, 200, 500, 500], "tokens", 333, 100), "xyxy", 333, 100) == \
        "[33.3, 20, 166.5, 50]"


def _png(w: int, h: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (w, h)).save(out, "PNG")
    return out.getvalue()


def _grounding(texts: list[str], size=(200, 100)) -> pa.Table:
    rows = [{"id": None, "source": "g", "source_version": "1", "row": i, "kind": "image_text",
             "task": "vqa",
             "messages": [{"role": "user", "content": "Where is the nodule?"},
                          {"role": "assistant", "content": t}],
             "images": [{"bytes": _png(*size), "path": f"{i}.png"}]} for i, t in enumerate(texts)]
    return with_ids(conform(pa.Table.from_pylist(rows)))


def test_out_of_bounds_and_degenerate_boxes_are_rejected():
    table = _grounding(["[10, 10, 50, 50]", "[150, 10, 210, 50]", "[-1, 0, 10, 10]",
                        "[30, 30, 30, 60]", "no box here"])
    stage = BoxCheck(BoxConfig(input_format="xyxy", target_format="tokens"))
    decided = stage.decide(pl.from_arrow(stage.score(table, None)))
    assert decided.get_column("reason").to_list() == [
        None, "box_out_of_bounds", "box_out_of_bounds", "box_degenerate", None]
    assert decided.get_column("box_count").to_list() == [1, 1, 1, 1, 0]
    rewritten = stage.rewrite(table).column("messages").to_pylist()
    assert rewritten[0][1]["content"] == "<|box_start|>(50,100),(250,500)<|box_end|>"
    assert rewritten[4][1]["content"] == "no box here"


def test_grounding_is_a_modality():
    table = pl.from_arrow(_grounding(["<|box_start|>(1,2),(30,40)<|box_end|>", "left lung"]))
    chat = table.head(1).with_columns(kind=pl.lit("chat"))
    labels = pl.concat([table, chat]).select(modality()).to_series().to_list()
    assert labels == ["grounding", "image", "text"]
