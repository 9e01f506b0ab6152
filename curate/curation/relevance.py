"""Image-text relevance (relevance_v1): CLIP cosine between an image and its text.

Each ``image_text`` record's first image and its question (or question and answer,
``text``) go through a CLIP model (transformers ``CLIPModel`` and ``CLIPProcessor``, by
hub name at a pinned ``revision`` or from a local folder); the score is the cosine of
the two projected, normalised embeddings. Below ``threshold`` a record is
``image_irrelevant``. A cosine means something only for the model that produced it:
the threshold is per model (published: 0.15 with ViT-L/14, 0.1 with ViT-B/32), filled in
from the model name when known and required otherwise, and recorded in the stage's
stats with its options. Texts are cut to CLIP's 77 tokens. Records without a readable
image keep a null score (the ``image`` stage flags them).
"""

from __future__ import annotations

import io
import logging
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from typing_extensions import override

from curate.curation.config import RelevanceConfig
from curate.engine.stage import RowStage, StageContext
from curate.errors import ConfigError, MissingDependencyError

log = logging.getLogger(__name__)

SCORES = {"relevance_clip": pl.Float64}


class Relevance(RowStage[RelevanceConfig]):
    """Flag image-text pairs whose CLIP cosine is below the model's threshold."""

    name = "relevance"
    version = 1
    decision_fields = frozenset({"threshold"})
    columns = ("kind", "messages", "chosen", "images")
    score_columns = SCORES

    @override
    def thresholds(self) -> dict[str, float]:
        """A ``relevance_clip`` cosine under ``threshold`` removes."""
        return {"relevance_clip": float(self.config.threshold or 0.0)}

    @property
    @override
    def gpus(self) -> float:
        """One GPU when CLIP is to run on `cuda`."""
        return 1.0 if self.config.device.startswith("cuda") else 0.0

    def __init__(self, config: RelevanceConfig | None = None):
        super().__init__(config)
        self._model: Any = None
        self._processor: Any = None
        self._device = "cpu"

    def setup(self, context: StageContext | None = None) -> None:
        """Load the CLIP model and processor once for the stage run."""
        self._model, self._processor, self._device = load_clip(
            self.config.model, revision=self.config.revision, device=self.config.device)

    def teardown(self) -> None:
        """Drop the model and free its memory."""
        self._model = self._processor = None
        from curate.models import free_memory

        free_memory()

    def score(self, records: pa.Table, context: StageContext) -> pa.Table:
        """The stage's scores (see the module docstring)."""
        if self._model is None:  # scored outside the engine: load here
            self.setup(context)
        frame = pl.from_arrow(records)
        assert isinstance(frame, pl.DataFrame)
        from curate.curation.text import answer_text, question_text

        question = question_text().fill_null("")
        text = question if self.config.text == "question" else pl.concat_str(
            [question, answer_text().fill_null("")], separator=" ")
        rows = frame.select(
            image=pl.when(pl.col("kind") == "image_text")
            .then(pl.col("images").list.first().struct.field("bytes")), text=text)
        scores = np.full(rows.height, np.nan)
        todo = [(i, data, t) for i, (data, t) in enumerate(rows.iter_rows()) if data]
        for start in range(0, len(todo), self.config.batch_size):
            batch = todo[start : start + self.config.batch_size]
            images, keep = [], []
            for i, data, _ in batch:
                image = _decode(data)
                if image is not None:
                    images.append(image)
                    keep.append(i)
            if not images:
                continue
            texts = [t for i, _, t in batch if i in set(keep)]
            scores[keep] = clip_cosine(self._model, self._processor, images, texts, self._device)
        return pa.table({"relevance_clip": pa.array(
            [None if np.isnan(s) else float(s) for s in scores], pa.float64())})

    def decide(self, scores: pl.DataFrame) -> pl.DataFrame:
        """``keep`` and ``reason`` from the scores and the decision options."""
        low = pl.col("relevance_clip") < self.config.threshold
        return scores.with_columns(
            reason=pl.when(low.fill_null(False)).then(pl.lit("image_irrelevant")),
        ).with_columns(keep=pl.col("reason").is_null())


def _decode(data: bytes) -> Any:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError):
        return None


def load_clip(name: str, *, revision: str | None = None, device: str = "auto") -> tuple[Any, Any, str]:
    """(model, processor, device) of a CLIP model by hub name or local folder."""
    try:
        from transformers import CLIPModel, CLIPProcessor
    except ImportError:
        raise MissingDependencyError("transformers", "ml") from None
    from curate.models import hub_options, looks_local, resolve_device

    if not looks_local(name) and revision is None:
        log.warning("CLIP model `%s` has no pinned `revision`: results may change upstream", name)
    where = resolve_device(device)
    try:
        hub = hub_options(name, revision)  # the cache only when the hub is unreachable
        model: Any = CLIPModel.from_pretrained(name, **hub)
        model = model.to(where).eval()
        processor = CLIPProcessor.from_pretrained(name, **hub)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot load CLIP model `{name}`"
                          f"{f' at revision {revision}' if revision else ''}: {first}; give a hub "
                          "name with `revision`, or a local folder with `model`") from None
    return model, processor, where


def clip_cosine(model: Any, processor: Any, images: list[Any], texts: list[str], device: str) -> np.ndarray:
    """The cosine of each image with its text (pairwise, not all against all)."""
    import torch

    length = min(77, model.config.text_config.max_position_embeddings)
    inputs = processor(text=texts, images=images, return_tensors="pt", padding=True,
                       truncation=True, max_length=length)
    inputs = {k: v.to(device) for k, v in inputs.items()}
    with torch.no_grad():
        out = model(**inputs)
    image = torch.nn.functional.normalize(out.image_embeds, dim=-1)
    text = torch.nn.functional.normalize(out.text_embeds, dim=-1)
    return (image * text).sum(dim=-1).float().cpu().numpy()
