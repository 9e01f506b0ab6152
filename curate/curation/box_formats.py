"""Bounding boxes: four ways of writing one, converted exactly, validated against the image.

Formats (x grows right, y grows down; (x1, y1) is the top-left corner, (x2, y2) the
bottom-right one; pixel coordinates are positions on the image's edge grid, 0..width):

- ``xyxy``: pixels ``[x1, y1, x2, y2]``;
- ``xywh``: pixels ``[x, y, width, height]`` (COCO);
- ``norm_xyxy``: ``[x1, y1, x2, y2]`` as shares of the width and height, 0-1;
- ``tokens``: ``<|box_start|>(x1,y1),(x2,y2)<|box_end|>`` with integers 0-1000 (shares of
  the width and height in thousandths, as Qwen-VL writes them).

A ``Box`` holds exact rational pixel coordinates (``fractions.Fraction``); numbers are
parsed from their decimal text, so ``0.1`` is one tenth, not the nearest double.

What "exact" means. Each format writes a grid of values: ``tokens`` multiples of
width/1000 pixels; ``xyxy`` and ``xywh`` multiples of 1/1000 pixel (written with at
most three decimals, rounded half to even); ``norm_xyxy`` the shortest decimal that reads
back as the same double. The token grid lies on the millipixel grid (k * width / 1000 has
at most three decimals), and a double carries far more digits than either. So:

1. a box on the token grid survives any chain of conversions between any formats exactly
   (to tokens, pixels, shares and back, in any order);
2. a box on the millipixel grid (integer pixels included) survives exactly any chain
   among ``xyxy``, ``xywh`` and ``norm_xyxy``;
3. writing a box as ``tokens`` rounds it to the token grid (quantisation: at most
   width/2000 pixels per coordinate); after that first rounding, rule 1 holds: every
   further round trip is the identity.

The property tests check all three with hypothesis, for every pair of formats.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from curate.curation.config import BoxFormat

FORMATS: tuple[BoxFormat, ...] = ("xyxy", "xywh", "norm_xyxy", "tokens")
TOKEN_SCALE = 1000

_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
TOKEN_BOX = re.compile(
    rf"<\|box_start\|>\s*\(\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\)\s*,\s*"
    rf"\(\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\)\s*<\|box_end\|>")
LIST_BOX = re.compile(
    rf"\[\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\]")
GROUNDING_PATTERN = r"<\|box_start\|>|\[\s*-?\d+(?:\.\d+)?(?:\s*,\s*-?\d+(?:\.\d+)?){3}\s*\]"
"""A box written in any format (Rust and Python regex): what makes a record grounding."""


@dataclass(frozen=True)
class Box:
    """A box in exact pixel coordinates."""

    x1: Fraction
    y1: Fraction
    x2: Fraction
    y2: Fraction

    def problem(self, width: int, height: int) -> str | None:
        """``box_out_of_bounds``, ``box_degenerate`` or None, on a width x height image."""
        if min(self.x1, self.y1, self.x2, self.y2) < 0 or max(self.x1, self.x2) > width \
                or max(self.y1, self.y2) > height:
            return "box_out_of_bounds"
        if self.x2 <= self.x1 or self.y2 <= self.y1:
            return "box_degenerate"
        return None


def _exact(value: str | int | float | Fraction) -> Fraction:
    if isinstance(value, Fraction):
        return value
    if isinstance(value, float):
        return Fraction(repr(value))  # the decimal the float was written as
    return Fraction(str(value))


def parse_box(values: list[str | int | float | Fraction], fmt: BoxFormat, width: int, height: int) -> Box:
    """The box ``values`` (four numbers, or their text) mean in ``fmt`` on a
    width x height image. ValueError for anything but four numbers."""
    if len(values) != 4:
        raise ValueError(f"a box needs four numbers, got {len(values)}")
    a, b, c, d = (_exact(v) for v in values)
    if fmt == "xyxy":
        return Box(a, b, c, d)
    if fmt == "xywh":
        return Box(a, b, a + c, b + d)
    if fmt == "norm_xyxy":
        return Box(a * width, b * height, c * width, d * height)
    if fmt == "tokens":
        return Box(a * width / TOKEN_SCALE, b * height / TOKEN_SCALE,
                   c * width / TOKEN_SCALE, d * height / TOKEN_SCALE)
    raise ValueError(f"unknown box format `{fmt}`; known: {', '.join(FORMATS)}")


def _millipixel(value: Fraction) -> Fraction:
    return Fraction(round(value * 1000), 1000)


def _pixel_text(value: Fraction) -> str:
    value = _millipixel(value)
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.3f}".rstrip("0")


def box_values(box: Box, fmt: BoxFormat, width: int, height: int) -> list[Fraction]:
    """The four numbers ``fmt`` writes for ``box`` (rounded to the format's grid)."""
    if fmt == "xyxy":
        return [_millipixel(v) for v in (box.x1, box.y1, box.x2, box.y2)]
    if fmt == "xywh":
        x1, y1, x2, y2 = (_millipixel(v) for v in (box.x1, box.y1, box.x2, box.y2))
        return [x1, y1, x2 - x1, y2 - y1]
    if fmt == "norm_xyxy":
        return [Fraction(repr(float(v / side))) for v, side in
                ((box.x1, width), (box.y1, height), (box.x2, width), (box.y2, height))]
    if fmt == "tokens":
        return [Fraction(round(v * TOKEN_SCALE / side)) for v, side in
                ((box.x1, width), (box.y1, height), (box.x2, width), (box.y2, height))]
    raise ValueError(f"unknown box format `{fmt}`; known: {', '.join(FORMATS)}")


def format_box(box: Box, fmt: BoxFormat, width: int, height: int) -> str:
    """``box`` written as text in ``fmt``."""
    values = box_values(box, fmt, width, height)
    if fmt == "tokens":
        x1, y1, x2, y2 = (int(v) for v in values)
        return f"<|box_start|>({x1},{y1}),({x2},{y2})<|box_end|>"
    if fmt == "norm_xyxy":
        return "[" + ", ".join(repr(float(v)) for v in values) + "]"
    return "[" + ", ".join(_pixel_text(v) for v in values) + "]"


def _pattern(fmt: BoxFormat) -> re.Pattern[str]:
    return TOKEN_BOX if fmt == "tokens" else LIST_BOX


def find_boxes(text: str, fmt: BoxFormat, width: int, height: int) -> list[Box]:
    """Every box written in ``fmt`` in ``text``."""
    return [parse_box(list(m.groups()), fmt, width, height) for m in _pattern(fmt).finditer(text)]


def rewrite_boxes(text: str, source: BoxFormat, target: BoxFormat, width: int, height: int) -> str:
    """``text`` with every box written in ``source`` rewritten in ``target``."""
    if source == target:
        return text
    return _pattern(source).sub(
        lambda m: format_box(parse_box(list(m.groups()), source, width, height), target, width, height),
        text)
