"""CLIP relevance through the real loading and scoring code, on a tiny CLIP built here."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from conftest import ingest_into
from tiny_clip import build_tiny_clip

from curate.curation import build_stages
from curate.curation.config import RelevanceConfig
from curate.curation.relevance import Relevance
from curate.errors import ConfigError

pytestmark = pytest.mark.slow  # ingests VQA-RAD and loads a model: ~10 s


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    words = "is there a mass in the lung what organ shown this image yes no brain chest".split()
    return build_tiny_clip(tmp_path_factory.mktemp("clip"), words)


@pytest.fixture(scope="module")
def records(catalog, data_root, tmp_path_factory):
    _, records, _ = ingest_into(catalog.source("vqa_rad"), tmp_path_factory.mktemp("run"), data_root)
    return records.sort("row").head(24)


def test_scores_every_pair_and_flags_below_the_threshold(clip_folder, records):
    stage = Relevance(RelevanceConfig(model=str(clip_folder), threshold=0.0, batch_size=8))
    stage.setup(None)
    try:
        table = records.select("kind", "messages", "chosen", "images").to_arrow()
        scores = pl.from_arrow(stage.score(table, None)).get_column("relevance_clip").to_numpy()
        again = pl.from_arrow(stage.score(table, None)).get_column("relevance_clip").to_numpy()
    finally:
        stage.teardown()
    assert len(scores) == 24 and np.isfinite(scores).all() and (np.abs(scores) <= 1).all()
    np.testing.assert_allclose(scores, again, rtol=1e-5)  # batches do not change a pair's score
    threshold = float(np.median(scores))
    decided = Relevance(RelevanceConfig(model=str(clip_folder), threshold=threshold)).decide(
        records.select("source", "row", "id").with_columns(relevance_clip=pl.Series(scores)))
    expected = records.get_column("id").filter(pl.Series(scores < threshold)).to_list()
    assert decided.filter(~pl.col("keep")).get_column("id").to_list() == expected
    assert set(decided.get_column("reason").drop_nulls()) == {"image_irrelevant"}


def test_threshold_is_per_model():
    assert RelevanceConfig().threshold == 0.15
    assert RelevanceConfig(model="openai/clip-vit-base-patch32").threshold == 0.1
    with pytest.raises(ConfigError, match="give `threshold` for model `my/clip`"):
        build_stages({"relevance": {"model": "my/clip"}}, where="recipe.yaml")


def test_a_missing_model_is_a_clear_error(tmp_path):
    stage = Relevance(RelevanceConfig(model=str(tmp_path / "nothing"), threshold=0.2))
    with pytest.raises(ConfigError, match="cannot load CLIP model"):
        stage.setup(None)
