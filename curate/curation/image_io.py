"""What the image stages share: decoding an image safely, and its normalised form.

``inspect_image`` decodes one image in full (a truncated file fails here, not in a
training job), under a decompression-bomb limit, and measures what the checks need:
size, format, mode, EXIF orientation and the perceptual hash. ``normalized_image`` is
the form a release writes: EXIF orientation applied, a pixel mode a vision processor
reads (RGB or L; alpha composited on white); an image that needs any change (or is in
a format outside the kept ones, JPEG and PNG by default) is re-encoded as PNG, losslessly
and deterministically. An image that needs nothing keeps its bytes.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from PIL import Image as PILImage

ORIENTATION_TAG = 0x0112
"""EXIF Orientation: 1 is upright; 2-8 say how the stored pixels are turned or mirrored."""
HASH_DRAFT = 4
"""JPEG images decode at a reduced scale (libjpeg's DCT scaling), at least this many times
the hash side, before hashing: the whole stream is still read (a truncated file still
fails), at a fraction of the cost of a full-size decode."""


@dataclass(frozen=True)
class ImageFacts:
    """What one decode of an image tells: its problem, or its size, format and hash."""

    error: str | None
    width: int = 0
    height: int = 0
    format: str | None = None
    mode: str | None = None
    orientation: int = 1
    phash: bytes | None = None
    """The perceptual hash bits, packed (``np.packbits``), ``hash_size**2`` bits."""


def _pil() -> Any:
    from PIL import Image

    return Image


def open_image(data: bytes, *, max_pixels: int) -> PILImage.Image:
    """The image in ``data``, opened lazily (header read, pixels not yet decoded);
    ValueError when it has more than ``max_pixels`` pixels (a decompression bomb)."""
    image_module = _pil()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", image_module.DecompressionBombWarning)
        image = image_module.open(io.BytesIO(data))
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise ValueError(f"decompression bomb: {width}x{height} = {width * height:,} pixels, "
                         f"over the limit of {max_pixels:,} (`max_pixels`)")
    return image


def inspect_image(data: bytes | None, *, max_pixels: int, hash_size: int = 8) -> ImageFacts:
    """Decode ``data`` in full and describe it; never raises for a bad image: the
    problem is in ``error`` (empty, not an image, truncated, too many pixels)."""
    image_module = _pil()
    if data is None:
        return ImageFacts("no image bytes")
    if len(data) == 0:
        return ImageFacts("zero-byte image")
    try:
        with open_image(data, max_pixels=max_pixels) as image:
            width, height = image.size
            fmt, mode = image.format, image.mode
            orientation = int(image.getexif().get(ORIENTATION_TAG, 1) or 1)
            if fmt == "JPEG":
                side = hash_size * 4 * HASH_DRAFT
                image.draft("L", (side, side))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", image_module.DecompressionBombWarning)
                image.load()
            bits = phash_bits(image, hash_size)
    except (image_module.UnidentifiedImageError, image_module.DecompressionBombError) as exc:
        return ImageFacts(_first_line(exc))
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # truncated, corrupt, bomb
        return ImageFacts(_first_line(exc))
    return ImageFacts(None, width, height, fmt, mode, orientation, np.packbits(bits).tobytes())


def phash_bits(image: PILImage.Image, hash_size: int) -> np.ndarray:
    """The perceptual hash (imagehash.phash: DCT of a grey thumbnail, bits above the
    median) as a flat boolean array."""
    try:
        import imagehash
    except ImportError:
        from curate.errors import MissingDependencyError

        raise MissingDependencyError("imagehash", "image") from None
    return np.asarray(imagehash.phash(image, hash_size=hash_size).hash, bool).ravel()


def needs_normalizing(facts: ImageFacts, keep_formats: Sequence[str], keep_modes: Sequence[str]) -> bool:
    """Whether the release writes this (readable) image differently from its bytes."""
    return (facts.format not in keep_formats or facts.mode not in keep_modes
            or facts.orientation != 1)


def normalized_image(data: bytes, *, keep_formats: Sequence[str], keep_modes: Sequence[str],
                     max_pixels: int) -> tuple[bytes, bool]:
    """The bytes a release writes for this image, and whether they differ from ``data``:
    upright (EXIF orientation applied), in a kept mode (else RGB, alpha on white), in a
    kept format (else PNG). An image that needs none of this is returned as it is."""
    from PIL import ImageOps

    image_module = _pil()
    with open_image(data, max_pixels=max_pixels) as image:
        orientation = int(image.getexif().get(ORIENTATION_TAG, 1) or 1)
        if image.format in keep_formats and image.mode in keep_modes and orientation == 1:
            return data, False
        image.load()
        upright = ImageOps.exif_transpose(image) if orientation != 1 else image
        if upright.mode not in keep_modes:
            if "A" in upright.mode or upright.mode == "P" and "transparency" in upright.info:
                rgba = upright.convert("RGBA")
                background = image_module.new("RGBA", rgba.size, (255, 255, 255, 255))
                upright = image_module.alpha_composite(background, rgba).convert("RGB")
            else:
                upright = upright.convert("RGB")
        out = io.BytesIO()
        upright.save(out, "PNG")  # lossless, and the same bytes for the same pixels
        return out.getvalue(), True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def pack_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between rows of packed hashes (uint8 arrays of equal width)."""
    return np.bitwise_count(np.bitwise_xor(a, b)).sum(axis=-1)


def near_pairs(hashes: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (i < j) of packed hashes within ``max_distance`` bits, by multi-index
    hashing: split the bits into ``max_distance + 1`` chunks; by the pigeonhole principle
    two hashes that close agree on at least one whole chunk, so only hashes sharing a
    chunk value are compared (exactly), never all pairs."""
    n = len(hashes)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    bits = np.unpackbits(hashes, axis=1)
    width = bits.shape[1]
    chunks = np.array_split(np.arange(width), min(max_distance + 1, width))
    left, right = [], []
    for chunk in chunks:
        keys = np.packbits(bits[:, chunk], axis=1)
        keys = np.ascontiguousarray(keys).view(f"V{keys.shape[1]}").ravel()
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        ends = np.r_[starts[1:], n]
        for start, end in zip(starts, ends, strict=True):
            if end - start < 2:
                continue
            members = np.sort(order[start:end])
            i, j = np.triu_indices(len(members), 1)
            left.append(members[i])
            right.append(members[j])
    if not left:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pairs = np.unique(np.stack([np.concatenate(left), np.concatenate(right)], axis=1), axis=0)
    close = pack_distance(hashes[pairs[:, 0]], hashes[pairs[:, 1]]) <= max_distance
    return pairs[close, 0].astype(np.int64), pairs[close, 1].astype(np.int64)
