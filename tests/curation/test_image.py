"""The image stage on real VQA-RAD images and on broken ones made here."""

from __future__ import annotations

import io

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from conftest import DATA
from PIL import Image

import curate.curation.image as image_stage
from curate.curation.config import ImageConfig
from curate.curation.image import ImageCheck, normalize_images, score_images
from curate.curation.image_io import ImageFacts, near_pairs
from curate.records import SCHEMA, conform, with_ids

IMAGES = DATA / "multimodal" / "vqa_rad" / "images"


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _records(images: list[bytes | None], questions: list[str] | None = None) -> pa.Table:
    return _records_of([[data] for data in images], questions)


def _records_of(images: list[list[bytes | None]], questions: list[str] | None = None) -> pa.Table:
    """One record per list of images."""
    questions = questions or [f"Is there a finding {i}?" for i in range(len(images))]
    rows = [{"source": "t", "source_version": "1", "row": i, "kind": "image_text",
             "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "yes"}],
             "images": [{"bytes": data, "path": f"img{i}-{k}.jpg"} for k, data in enumerate(datas)]}
            for i, (datas, q) in enumerate(zip(images, questions, strict=True))]
    table = pa.Table.from_pylist(rows)
    return with_ids(conform(table.add_column(0, "id", pa.nulls(len(rows), pa.string()))))


def _decide(table: pa.Table, config: ImageConfig | None = None) -> pl.DataFrame:
    stage = ImageCheck(config)
    scores = score_images(pl.from_arrow(table).lazy(), stage.config)
    return stage.decide(scores).sort("row")


@pytest.fixture(scope="module")
def real() -> list[bytes]:
    return [p.read_bytes() for p in sorted(IMAGES.glob("*.jpg"))[:6]]


def test_vqa_rad_images_pass(real):
    decided = _decide(_records(real))
    assert decided.get_column("reason").to_list() == [None] * 6
    assert set(decided.get_column("image_format")) == {"JPEG"}
    assert not decided.get_column("image_normalize").any()


def test_broken_images_are_tagged_never_a_crash(real):
    truncated = real[0][: len(real[0]) // 2]
    images = [real[0], b"", b"not an image at all", truncated, None]
    decided = _decide(_records(images))
    assert decided.get_column("reason").to_list() == [None] + ["unreadable_image"] * 4
    errors = decided.get_column("image_error").to_list()
    assert errors[1] == "zero-byte image"
    assert "cannot identify image file" in errors[2]
    assert "truncated" in errors[3]
    assert errors[4] == "no image bytes"


def test_decompression_bomb_refused_before_decoding():
    big = _jpeg(Image.new("L", (3000, 3000)))
    decided = _decide(_records([big]), ImageConfig(max_pixels=1_000_000))
    assert decided.get_column("reason").to_list() == ["unreadable_image"]
    assert "decompression bomb: 3000x3000" in decided.get_column("image_error")[0]


def test_max_pixels_admits_an_image_of_exactly_that_many():
    square = _jpeg(Image.new("L", (100, 100)))
    at = _decide(_records([square]), ImageConfig(max_pixels=10_000))
    assert at.get_column("reason").to_list() == [None]
    past = _decide(_records([square]), ImageConfig(max_pixels=9_999))
    assert past.get_column("reason").to_list() == ["unreadable_image"]


def test_small_and_elongated_images():
    small = _jpeg(Image.new("RGB", (20, 40), "white"))
    long = _jpeg(Image.new("RGB", (600, 100), "white"))
    decided = _decide(_records([small, long]))
    assert decided.get_column("reason").to_list() == ["image_too_small", "bad_aspect_ratio"]


def test_side_and_aspect_limits_hold_at_the_limit_and_not_one_pixel_past():
    sizes = [(28, 28), (27, 40), (140, 28), (141, 28)]  # min_side 28, max_aspect_ratio 5
    blank = [_jpeg(Image.new("RGB", size, "white")) for size in sizes]  # all hash alike
    decided = _decide(_records(blank), ImageConfig(duplicates=False))
    assert decided.get_column("reason").to_list() == [None, "image_too_small", None, "bad_aspect_ratio"]


def test_a_record_with_several_images_takes_the_problem_of_any(real):
    small = _jpeg(Image.new("RGB", (20, 40), "white"))
    table = _records_of([[real[0], small], [real[0], b""], [real[0], real[2]]])
    decided = _decide(table)
    assert decided.get_column("reason").to_list() == ["image_too_small", "unreadable_image", None]
    assert decided.get_column("image_count").to_list() == [2, 2, 2]
    assert (decided.get_column("image_width")[0], decided.get_column("image_height")[0]) == (20, 40)


def test_reencoded_and_resized_copies_are_duplicates_same_file_is_not(real):
    original = Image.open(io.BytesIO(real[1])).convert("RGB")
    resized = _jpeg(original.resize((original.width * 2 // 3, original.height * 2 // 3)), quality=50)
    png = io.BytesIO()
    original.save(png, "PNG")
    images = [real[1], real[1], resized, png.getvalue(), real[2]]
    table = _records(images)
    decided = _decide(table)
    first = table.column("id")[0].as_py()
    assert decided.get_column("reason").to_list() == [
        None, None, f"duplicate_image:{first}", f"duplicate_image:{first}", None]
    assert decided.get_column("image_distance").to_list() == [None, None, 0, 0, None]  # hash alike



def test_a_slightly_cropped_copy_is_a_duplicate_within_its_distance_and_not_below(real):
    original = Image.open(io.BytesIO(real[1])).convert("RGB")
    cropped = io.BytesIO()
    original.crop((16, 16, original.width, original.height)).save(cropped, "PNG")
    table = _records([real[1], cropped.getvalue(), real[2]])
    first = table.column("id")[0].as_py()
    decided = _decide(table)
    assert decided.get_column("reason").to_list() == [None, f"duplicate_image:{first}", None]
    assert decided.get_column("image_distance").to_list() == [None, 4, None]  # close, not equal
    at = _decide(table, ImageConfig(max_distance=4))
    assert at.get_column("reason").to_list() == [None, f"duplicate_image:{first}", None]
    below = _decide(table, ImageConfig(max_distance=3))
    assert below.get_column("reason").to_list() == [None, None, None]
    assert below.get_column("image_distance").to_list() == [None, None, None]


def _hash(*flipped: int) -> bytes:
    """A hand-made 64-bit perceptual hash: these bits set, the others clear."""
    bits = np.zeros(64, bool)
    bits[list(flipped)] = True
    return np.packbits(bits).tobytes()


@pytest.fixture
def hashed(monkeypatch):
    """Images whose bytes are their hand-made hash: the stage sees that hash for them."""
    def inspect(data, *, max_pixels, hash_size):
        return ImageFacts(None, 64, 64, "PNG", "RGB", 1, data)

    monkeypatch.setattr(image_stage, "inspect_image", inspect)


def test_the_duplicate_threshold_holds_at_the_distance_and_not_one_past(hashed):
    # 6 and 7 bits from the first, spread so that no 6-way split of the hash keeps a part
    # equal (multi-index hashing must split in max_distance + 1 parts to find them)
    six, seven = _hash(0, 11, 22, 33, 44, 54), _hash(5, 15, 25, 35, 45, 55, 63)
    table = _records([_hash(), six, seven])
    first = table.column("id")[0].as_py()
    for max_distance, reasons, distances in [
        (6, [None, f"duplicate_image:{first}", None], [None, 6, None]),
        (7, [None, f"duplicate_image:{first}", f"duplicate_image:{first}"], [None, 6, 7]),
        (5, [None, None, None], [None, None, None]),
    ]:
        decided = _decide(table, ImageConfig(max_distance=max_distance))
        assert decided.get_column("reason").to_list() == reasons, max_distance
        assert decided.get_column("image_distance").to_list() == distances, max_distance


def test_a_duplicate_points_at_the_earliest_kept_image_never_through_a_duplicate(hashed):
    # b is 4 from a (a duplicate of a); c is 4 from b but 8 from a: c is kept, since b
    # is not; d is 6 from a and 2 from c: the earliest kept image in reach, a, wins
    a, b, c, d = _hash(), _hash(0, 1, 2, 3), _hash(0, 1, 2, 3, 4, 5, 6, 7), _hash(2, 3, 4, 5, 6, 7)
    table = _records([a, b, c, d])
    ids = table.column("id").to_pylist()
    decided = _decide(table)
    assert decided.get_column("reason").to_list() == [
        None, f"duplicate_image:{ids[0]}", None, f"duplicate_image:{ids[0]}"]
    assert decided.get_column("image_distance").to_list() == [None, 4, None, 6]


def test_duplicates_off_flags_none_but_still_scores_them(hashed):
    table = _records([_hash(), _hash(0, 1)])
    decided = _decide(table, ImageConfig(duplicates=False))
    assert decided.get_column("reason").to_list() == [None, None]
    assert decided.get_column("image_distance").to_list() == [None, 2]


def test_near_pairs_are_exactly_the_pairs_within_the_distance():
    rng = np.random.default_rng(0)
    for width in (64, 256):  # hash_size 8 and 16
        centres = rng.integers(0, 2, (12, width), dtype=np.uint8)
        bits = np.repeat(centres, 15, axis=0)
        for row in bits:  # 0 to 12 bits flipped around each centre
            row[rng.choice(width, rng.integers(0, 13), replace=False)] ^= 1
        hashes = np.packbits(bits, axis=1)
        distance = (bits[:, None, :] != bits[None, :, :]).sum(axis=2)
        for max_distance in (0, 1, 2, 5, 6, 7, 12):
            left, right = near_pairs(hashes, max_distance)
            i, j = np.triu_indices(len(bits), 1)
            close = distance[i, j] <= max_distance
            assert list(zip(left.tolist(), right.tolist())) == list(zip(i[close].tolist(), j[close].tolist()))

def test_normalisation_rewrites_only_images_that_need_it(real):
    palette = io.BytesIO()
    Image.new("RGBA", (64, 64), (255, 0, 0, 128)).save(palette, "PNG")
    table = _records([real[0], palette.getvalue()])
    decided = _decide(table)
    assert decided.get_column("image_normalize").to_list() == [False, True]
    rewritten = normalize_images(table, ImageConfig())
    images = rewritten.column("images").to_pylist()
    assert images[0][0]["bytes"] == real[0]
    with Image.open(io.BytesIO(images[1][0]["bytes"])) as fixed:
        assert (fixed.format, fixed.mode) == ("PNG", "RGB")
        assert fixed.getpixel((0, 0)) == (255, 127, 127)  # alpha composited on white
    assert rewritten.column("id").to_pylist() == table.column("id").to_pylist()
    assert normalize_images(table, ImageConfig()).equals(rewritten)  # deterministic
    assert ImageCheck(ImageConfig(normalize=False)).rewrite(table) is table


def test_an_exif_rotated_image_is_written_upright(real):
    stored = Image.new("RGB", (60, 40), "white")
    stored.paste((255, 0, 0), (0, 0, 10, 10))  # a red corner at the stored top left
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise
    rotated = io.BytesIO()
    stored.save(rotated, "PNG", exif=exif)
    table = _records([real[0], rotated.getvalue()])
    assert _decide(table).get_column("image_normalize").to_list() == [False, True]
    images = normalize_images(table, ImageConfig()).column("images").to_pylist()
    with Image.open(io.BytesIO(images[1][0]["bytes"])) as upright:
        assert (upright.format, upright.size) == ("PNG", (40, 60))
        assert upright.getexif().get(0x0112) in (None, 1)
        assert upright.getpixel((39, 0)) == (255, 0, 0)  # the red corner, now top right
        assert upright.getpixel((0, 0)) == (255, 255, 255)


def test_text_only_records_are_untouched():
    table = conform(pa.Table.from_pylist([{
        "id": "0" * 32, "source": "t", "source_version": "1", "row": 0, "kind": "chat",
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}]))
    decided = _decide(table)
    assert decided.get_column("keep").to_list() == [True]
    assert decided.get_column("image_count").to_list() == [None]
    assert SCHEMA.names == table.column_names
