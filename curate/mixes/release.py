"""Releases: immutable, reproducible folders a trainer loads and a reviewer audits.

```
releases/<name>/<version>/
  data/<config>/train-00000.parquet   text (messages), image_text (messages, images),
                                      preference (prompt, chosen, rejected); TRL's shapes
  manifest.json                       recipe, inputs, stages, contamination, composition,
                                      package versions, seed, sha256 of every other file
  README.md                           Hugging Face dataset card (loadable by `datasets`)
  removed.parquet                     every ingested row not in the mix, with stage and reason
```

A release is written to a temporary folder and renamed, so no half release is ever
visible. An existing version is never overwritten: building the same recipe, inputs and
seed again yields byte-identical files, which is reported as unchanged; anything else is
an error asking for a new version. An existing release is only trusted once every file
matches its manifest's sha256 (``verify_release``, ``curate release verify``).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from curate.errors import ConfigError
from curate.version import installed_versions

logger = logging.getLogger(__name__)

DEFAULT_RELEASES_DIR = Path("releases")
ROWS_PER_FILE = 50_000
IMAGE_ROW_GROUP = 100
"""Rows per parquet row group of ``image_text`` data (what ``datasets`` uses for images)."""
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
    return {name: v for name, v in installed_versions(PACKAGES).items() if v is not None}


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
    card: Callable[[Path], str],
) -> WrittenRelease:
    """Write the release folder atomically: ``write_data(folder)`` writes the data files,
    ``card(folder)`` gives the dataset card once they are written; ``manifest`` gains the
    sha256 of every file in the folder (``manifest.json`` aside).

    Under a lock per release, the hidden folders of builds killed before their final
    rename are removed first. An existing release is first verified against its manifest
    (:func:`verify_release`): a changed, missing or extra file is an error, never
    "unchanged". The folder gets the permissions of an ordinary ``mkdir`` (the umask's)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with _release_lock(target):
        _remove_stale_builds(target)
        if target.exists() or target.is_symlink():
            problems = verify_release(target)
            if problems:
                raise ConfigError(_mismatch(target, problems))
        tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}"
        os.mkdir(tmp)  # not tempfile.mkdtemp: that makes the release folder 0700
        try:
            write_data(tmp)
            removed.write_parquet(tmp / "removed.parquet", compression="zstd")
            (tmp / "README.md").write_text(card(tmp), "utf-8")
            files = {name: sha256_file(tmp / name) for name in _files_in(tmp) if name != "manifest.json"}
            manifest = {**manifest, "files": files}
            (tmp / "manifest.json").write_text(
                json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n", "utf-8")
            if target.exists():
                if (target / "manifest.json").read_bytes() != (tmp / "manifest.json").read_bytes():
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


@contextmanager
def _release_lock(target: Path) -> Iterator[None]:
    """An exclusive lock on ``releases/<name>/.<version>.lock`` while a build writes the
    release, so removing a killed build's folder never touches a running build's."""
    with (target.parent / f".{target.name}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_stale_builds(target: Path) -> None:
    """Remove the hidden folders (``.<version>.<8 chars>``) that builds of ``target``
    killed before their final rename left behind."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]{{8}}")
    for path in target.parent.iterdir():
        if pattern.fullmatch(path.name) and path.is_dir() and not path.is_symlink():
            logger.info("removing %s, left by an interrupted build", path)
            shutil.rmtree(path)


def _files_in(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# -- verifying releases -----------------------------------------------------------------------


def verify_release(path: str | os.PathLike[str]) -> list[str]:
    """Compare the release at ``path`` file by file with its manifest: every listed file
    present with its sha256, and no file or folder the manifest does not list. Returns
    what differs, one line each; an empty list when the release is intact."""
    root = Path(path)
    if root.is_symlink() or not root.is_dir():
        return [f"{root} is not a folder" if root.exists() or root.is_symlink() else f"{root} does not exist"]
    if not any(root.iterdir()):
        return ["the folder is empty (no manifest.json, no data): not a release"]
    try:
        manifest = json.loads((root / "manifest.json").read_text("utf-8"))
    except FileNotFoundError:
        return ["manifest.json is missing"]
    except (ValueError, UnicodeDecodeError) as exc:
        return [f"manifest.json is not valid JSON ({exc})"]
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not files:
        return ["manifest.json lists no files (`files`)"]
    problems = []
    for name, digest in sorted(files.items()):
        file = root / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            problems.append(f"{name}: the manifest names a file outside the release")
        elif file.is_symlink():
            problems.append(f"{name}: a symbolic link, not the file written")
        elif not file.is_file():
            problems.append(f"{name}: missing (the manifest lists it)")
        elif sha256_file(file) != digest:
            problems.append(f"{name}: its bytes differ from the manifest's sha256 "
                            f"({file.stat().st_size:,} bytes now): changed or cut after it was written")
    expected = {*files, "manifest.json", "README.md"}  # README.md: unhashed in older releases
    folders = {parent.as_posix() for name in expected for parent in Path(name).parents}
    stray: list[str] = []
    for entry in sorted(root.rglob("*")):
        name = entry.relative_to(root).as_posix()
        if any(name.startswith(f"{s}/") for s in stray):
            continue
        if entry.is_dir() and not entry.is_symlink():
            if name not in folders:
                stray.append(name)
                problems.append(f"{name}/: a folder the manifest does not list")
        elif name not in expected:
            problems.append(f"{name}: a file the manifest does not list")
    return problems


def check_release(path: str | os.PathLike[str]) -> Path:
    """``path`` when its release verifies (:func:`verify_release`), else a ConfigError
    saying what differs."""
    problems = verify_release(path)
    if problems:
        raise ConfigError(_mismatch(Path(path), problems))
    return Path(path)


def _mismatch(target: Path, problems: list[str]) -> str:
    shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
    return (f"release {target} does not match its manifest: {shown}. It changed after it was "
            f"written: restore it or move it away, then build again (`curate release verify {target}` "
            "lists every difference)")


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
    """Save the release with ``DatasetDict.save_to_disk`` (for ``load_from_disk``), once
    it verifies against its manifest."""
    load_release(check_release(path)).save_to_disk(str(out))
    return Path(out)


def list_releases(root: str | os.PathLike[str] = DEFAULT_RELEASES_DIR) -> list[dict[str, Any]]:
    """Every release under ``root``: name, version, rows, loss tokens, path (hidden
    folders, such as those of an interrupted build, are never releases)."""
    found = []
    for manifest in sorted(Path(root).glob("*/*/manifest.json")):
        if manifest.parent.name.startswith(".") or manifest.parent.parent.name.startswith("."):
            continue
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


def push_release(path: str | os.PathLike[str], repo: str, *, private: bool = True,
                 token: str | None = None, revision: str | None = None, create_pr: bool = False,
                 dry_run: bool = False, api: Any = None) -> dict[str, Any]:
    """Upload a release to a Hugging Face dataset repo and tag it with its version.

    The release must verify against its manifest and its card must be a valid Hub
    dataset card with ``dataset_info`` (both checked offline first). A new repository is
    private unless ``private=False``; ``revision`` uploads to that branch (made when
    missing), ``create_pr`` opens a pull request instead of committing (then no tag is
    made: tag after merging). Offline (``HF_HUB_OFFLINE=1``) or with ``dry_run``, nothing
    is sent: the result lists what would be uploaded. A network or login failure is a
    one-line ConfigError. ``api`` is an ``HfApi`` (default: ``HfApi(token=token)``).
    """
    from curate.mixes.card import validate_card

    root = check_release(path)
    manifest = read_manifest(root)
    validate_card((root / "README.md").read_text("utf-8"), where=str(root / "README.md"))
    files = _files_in(root)
    plan: dict[str, Any] = {"repo": repo, "tag": f"v{manifest['version']}", "files": files,
                            "uploaded": False, "private": private, "revision": revision,
                            "create_pr": create_pr}
    try:
        from huggingface_hub import HfApi, constants
        from huggingface_hub.errors import HfHubHTTPError
    except ImportError:
        from curate.errors import MissingDependencyError

        raise MissingDependencyError("huggingface_hub", "ml") from None
    if dry_run or constants.HF_HUB_OFFLINE:
        plan["reason"] = "dry run" if dry_run else "offline (HF_HUB_OFFLINE=1)"
        return plan
    if api is None:
        from huggingface_hub import get_token

        if token is None and get_token() is None:
            raise ConfigError(
                "no Hugging Face token: log in (`hf auth login`, or set HF_TOKEN, or pass --token) and "
                "be online to push; `--dry-run` lists what would be uploaded")
        api = HfApi(token=token)
    try:
        url = api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
        if revision is not None:
            api.create_branch(repo, repo_type="dataset", branch=revision, exist_ok=True)
        commit = api.upload_folder(repo_id=repo, repo_type="dataset", folder_path=str(root),
                                   commit_message=f"{manifest['name']} {manifest['version']}",
                                   revision=revision, create_pr=create_pr)
        if not create_pr:
            api.create_tag(repo, repo_type="dataset", tag=str(plan["tag"]), revision=commit.oid,
                           exist_ok=True)
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            raise ConfigError(
                f"the Hugging Face Hub refused the token for {repo} ({status}): log in again "
                "(`hf auth login`) or pass a --token with write access") from None
        raise ConfigError(f"the Hugging Face Hub refused the push to {repo}: "
                          f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    except _network_errors() as exc:
        raise ConfigError(
            f"cannot reach the Hugging Face Hub at {constants.ENDPOINT} ({type(exc).__name__}: "
            f"{' '.join(str(exc).split()) or 'no answer'}): go online and log in (`hf auth login`) to "
            "push, or use `--dry-run` (or HF_HUB_OFFLINE=1) to list what would be uploaded") from None
    return {**plan, "uploaded": True, "url": str(url), "commit": commit.oid,
            "pr_url": getattr(commit, "pr_url", None)}


def _network_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a failed connection raises through huggingface_hub's HTTP client."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(module).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)
