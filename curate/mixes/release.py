"""Releases: immutable, reproducible folders a trainer loads and a reviewer audits.

```
releases/<name>/<version>/
  data/<config>/train-00000.parquet   text (messages), image_text (messages, images),
                                      preference (prompt, chosen, rejected); TRL's shapes
  manifest.json                       recipe, inputs, stages, contamination, composition,
                                      package versions, seed, sha256 of every data file
  README.md                           Hugging Face dataset card
  removed.parquet                     every ingested row not in the mix, with stage and reason
```

A release is written to a temporary folder and renamed, so no half release is ever
visible. An existing version is never overwritten: building the same recipe, inputs and
seed again yields byte-identical files, which is reported as unchanged; anything else is
an error asking for a new version.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import polars as pl

from curate.errors import ConfigError

DEFAULT_RELEASES_DIR = Path("releases")
ROWS_PER_FILE = 50_000
PACKAGES = ("curate", "pyarrow", "polars", "duckdb", "numpy", "numba", "datasets")


@dataclass
class WrittenRelease:
    """A release folder, whether it was written or found unchanged, and its manifest."""
    path: Path
    status: str  # "written" or "unchanged"
    manifest: dict[str, Any]


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    """The installed versions of the packages a release's bytes depend on."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def config_of(kind: str) -> str:
    """The release config (data folder) that records of ``kind`` go to."""
    return {"preference": "preference", "image_text": "image_text"}.get(kind, "text")


def trl_columns(records: pl.DataFrame, config: str) -> pl.DataFrame:
    """The columns TRL reads for ``config``, plus id, source, category and meta (the
    lineage of a synthetic record: parent, generator, template, seed) for auditing."""
    audit = [pl.col("id"), pl.col("source"), pl.col("category"), pl.col("meta")]
    if config == "preference":
        return records.select(pl.col("messages").alias("prompt"), "chosen", "rejected", *audit)
    if config == "image_text":
        return records.select("messages", "images", *audit)
    return records.select("messages", *audit)


def write_release(
    target: Path,
    write_data: Callable[[Path], list[str]],
    removed: pl.DataFrame,
    manifest: dict[str, Any],
    card: str,
) -> WrittenRelease:
    """Write the release folder atomically: ``write_data(folder)`` writes the data files
    and returns their relative paths; ``manifest`` gains every file's sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        files = {relative: sha256_file(tmp / relative) for relative in write_data(tmp)}
        removed.write_parquet(tmp / "removed.parquet", compression="zstd")
        files["removed.parquet"] = sha256_file(tmp / "removed.parquet")
        manifest = {**manifest, "files": files}
        (tmp / "manifest.json").write_text(
            json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n", "utf-8")
        (tmp / "README.md").write_text(card, "utf-8")
        if target.exists():
            same = all((target / name).read_bytes() == (tmp / name).read_bytes()
                       for name in ("manifest.json", "README.md") if (target / name).exists())
            if not same:
                raise ConfigError(
                    f"release {target} exists with other contents; releases are never "
                    "overwritten: bump the recipe's `version`")
            shutil.rmtree(tmp)
            return WrittenRelease(target, "unchanged", manifest)
        os.replace(tmp, target)
        return WrittenRelease(target, "written", manifest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# -- reading releases -------------------------------------------------------------------------


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of the release at ``path``; a ConfigError when there is none."""
    manifest = Path(path) / "manifest.json"
    if not manifest.exists():
        raise ConfigError(f"{path} is not a release (no manifest.json); releases live in "
                          "releases/<name>/<version>")
    return json.loads(manifest.read_text("utf-8"))


def load_release(path: str | os.PathLike[str]) -> Any:
    """The release as a ``datasets.DatasetDict``: one entry per config present (``text``,
    ``image_text``, ``preference``), images decoded by the ``Image`` feature."""
    import datasets

    root = Path(path)
    manifest = read_manifest(root)
    present = sorted({f.split("/")[1] for f in manifest["files"] if f.startswith("data/")})
    # One load per config: loaded together, the configs would share one schema and the
    # text rows would carry a null `images` column, which TRL takes for a vision dataset.
    loaded = datasets.DatasetDict({
        config: datasets.load_dataset("parquet", data_files=str(root / "data" / config / "*.parquet"),
                                      split="train")
        for config in present
    })
    if "image_text" in loaded:
        loaded["image_text"] = loaded["image_text"].cast_column(
            "images", datasets.List(datasets.Image()))
    return loaded


def export_release(path: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Save the release with ``DatasetDict.save_to_disk`` (for ``load_from_disk``)."""
    load_release(path).save_to_disk(str(out))
    return Path(out)


def list_releases(root: str | os.PathLike[str] = DEFAULT_RELEASES_DIR) -> list[dict[str, Any]]:
    """Every release under ``root``: name, version, rows, loss tokens, path."""
    found = []
    for manifest in sorted(Path(root).glob("*/*/manifest.json")):
        data = json.loads(manifest.read_text("utf-8"))
        found.append({
            "path": str(manifest.parent), "name": data["name"], "version": data["version"],
            "rows": sum(c["rows"] for c in data["composition"]),
            "loss_tokens": sum(c["loss_tokens"] for c in data["composition"]),
        })
    return found


def _ids(path: Path) -> pl.DataFrame:
    files = sorted((path / "data").glob("*/*.parquet"))
    if not files:
        return pl.DataFrame(schema={"id": pl.String, "source": pl.String})
    return pl.concat([pl.read_parquet(f, columns=["id", "source"]) for f in files]).unique("id")


def diff_releases(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> dict[str, Any]:
    """What changed from release A to B: rows added and removed by source (removed rows
    with B's reason), and the composition side by side."""
    a, b = Path(a), Path(b)
    ma, mb = read_manifest(a), read_manifest(b)
    ids_a, ids_b = _ids(a), _ids(b)
    added = ids_b.join(ids_a, on="id", how="anti")
    gone = ids_a.join(ids_b, on="id", how="anti")
    reasons = pl.read_parquet(b / "removed.parquet", columns=["id", "stage", "reason"]).filter(
        pl.col("id").is_not_null()).unique("id", keep="first")
    gone = gone.join(reasons, on="id", how="left").with_columns(
        pl.col("reason").fill_null("not in B's inputs"))
    share = {c["category"]: c for c in ma["composition"]}
    return {
        "added": added.group_by("source").len().sort("source").to_dicts(),
        "removed": gone.group_by("source", "stage", "reason").len().sort("source", "reason").to_dicts(),
        "composition": [
            {"category": c["category"], "a": share.get(c["category"], {}).get("realised"),
             "b": c["realised"], "a_rows": share.get(c["category"], {}).get("rows"), "b_rows": c["rows"]}
            for c in mb["composition"]
        ],
        "recipe_changed": ma["recipe"]["resolved"] != mb["recipe"]["resolved"],
        "seed": (ma["seed"], mb["seed"]),
    }


def push_release(path: str | os.PathLike[str], repo: str, *, dry_run: bool = False) -> dict[str, Any]:
    """Upload a release to a Hugging Face dataset repo and tag it with its version.

    Offline (``HF_HUB_OFFLINE=1``) or with ``dry_run``, nothing is sent: the result lists
    what would be uploaded.
    """
    root = Path(path)
    manifest = read_manifest(root)
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    plan = {"repo": repo, "tag": f"v{manifest['version']}", "files": files, "uploaded": False}
    try:
        from huggingface_hub import HfApi, constants
    except ImportError:
        from curate.errors import MissingDependencyError

        raise MissingDependencyError("huggingface_hub", "ml") from None
    if dry_run or constants.HF_HUB_OFFLINE:
        plan["reason"] = "dry run" if dry_run else "offline (HF_HUB_OFFLINE=1)"
        return plan
    api = HfApi()
    api.create_repo(repo, repo_type="dataset", exist_ok=True)
    commit = api.upload_folder(repo_id=repo, repo_type="dataset", folder_path=str(root),
                               commit_message=f"{manifest['name']} {manifest['version']}")
    api.create_tag(repo, repo_type="dataset", tag=str(plan["tag"]), revision=commit.oid)
    return {**plan, "uploaded": True, "commit": commit.oid}
