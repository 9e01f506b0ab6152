"""The image stage on real VQA-RAD images and on broken ones made here."""

from __future__ import annotations

import io

import polars as pl
import pyarrow as pa
import pytest
from conftest import DATA
from PIL import Image

from curate.curation.config import ImageConfig
from curate.curation.image import ImageCheck, normalize_images, score_images
from curate.records import SCHEMA, conform, with_ids

IMAGES = DATA / "multimodal" / "vqa_rad" / "images"


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _records(images: list[bytes | None], questions: list[str] | None = None) -> pa.Table:
    questions = questions or [f"Is there a finding {i}?" for i in range(len(images))]
    rows = [{"source": "t", "source_version": "1", "row": i, "kind": "image_text",
             "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "yes"}],
             "images": [{"bytes": data, "path": f"img{i}.jpg"}]}
            for i, (data, q) in enumerate(zip(images, questions, strict=True))]
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


def test_small_and_elongated_images():
    small = _jpeg(Image.new("RGB", (20, 40), "white"))
    long = _jpeg(Image.new("RGB", (600, 100), "white"))
    decided = _decide(_records([small, long]))
    assert decided.get_column("reason").to_list() == ["image_too_small", "bad_aspect_ratio"]


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
    assert decided.get_column("image_distance").to_list()[2] <= 6


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


def test_text_only_records_are_untouched():
    table = conform(pa.Table.from_pylist([{
        "id": "0" * 32, "source": "t", "source_version": "1", "row": 0, "kind": "chat",
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}]))
    decided = _decide(table)
    assert decided.get_column("keep").to_list() == [True]
    assert decided.get_column("image_count").to_list() == [None]
    assert SCHEMA.names == table.column_names
