"""Releases after they are written: saved for ``datasets``, compared, pushed to the Hub."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import Field

from curate.config import Config
from curate.errors import ConfigError
from curate.read.releases import Release


def export_release(path: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Save the release with ``DatasetDict.save_to_disk`` (for ``load_from_disk``), once
    it verifies against its manifest."""
    Release.open(path, verify=True).dataset().save_to_disk(str(out))
    return Path(out)


@dataclass(frozen=True)
class Added:
    """Rows of one source that release B has and A does not."""

    source: str
    len: int


@dataclass(frozen=True)
class Gone:
    """Rows of one source that release A has and B does not, by B's stage and reason."""

    source: str
    stage: str | None
    reason: str
    len: int


@dataclass(frozen=True)
class ShareChange:
    """One category's realised share and rows in A (None when A has none) and in B."""

    category: str
    a: float | None
    b: float
    a_rows: int | None
    b_rows: int


@dataclass(frozen=True)
class ReleaseDiff:
    """What changed from release A to release B."""

    a: str
    b: str
    added: list[Added]
    removed: list[Gone]
    composition: list[ShareChange]
    recipe_changed: bool
    seed: tuple[int, int]


def diff_releases(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> ReleaseDiff:
    """What changed from release A to B: rows added and removed by source (removed rows
    with B's reason), and the composition side by side."""
    first, second = Release.open(a), Release.open(b)
    ids_a, ids_b = first.ids(), second.ids()
    added = ids_b.join(ids_a, on="id", how="anti")
    gone = ids_a.join(ids_b, on="id", how="anti")
    reasons = second.removed(["id", "stage", "reason"]).filter(
        pl.col("id").is_not_null()).unique("id", keep="first")
    gone = gone.join(reasons, on="id", how="left").with_columns(
        pl.col("reason").fill_null("not in B's inputs"))
    before = {s.category: s for s in first.composition.shares}
    return ReleaseDiff(
        a=str(a), b=str(b),
        added=[Added(**r) for r in added.group_by("source").len().sort("source").iter_rows(named=True)],
        removed=[Gone(**r) for r in gone.group_by("source", "stage", "reason").len()
                 .sort("source", "reason").iter_rows(named=True)],
        composition=[ShareChange(s.category, getattr(before.get(s.category), "realised", None), s.realised,
                                 getattr(before.get(s.category), "rows", None), s.rows)
                     for s in second.composition.shares],
        recipe_changed=first.manifest["recipe"]["resolved"] != second.manifest["recipe"]["resolved"],
        seed=(first.manifest["seed"], second.manifest["seed"]),
    )


class PushConfig(Config):
    """Where and how ``curate release push`` uploads (``push_release`` takes the same names)."""

    repo: str = Field(description="Hugging Face dataset repository (owner/name).")
    private: bool = Field(True, description=(
        "Visibility of the repository when it is created (an existing one keeps its own)."))
    token: str | None = Field(None, description=(
        "Hugging Face token with write access [default: the login's, or $HF_TOKEN]."))
    revision: str | None = Field(None, description=(
        "Branch to upload to (created when missing) [default: main]."))
    create_pr: bool = Field(False, description=(
        "Open a pull request with the release instead of committing (no tag is made)."))
    dry_run: bool = Field(False, description=(
        "Check the release and list what would be uploaded; send nothing."))


@dataclass(frozen=True)
class Pushed:
    """What ``push_release`` did, or would do (``uploaded`` False: a dry run, or offline)."""

    repo: str
    tag: str
    files: list[str]
    uploaded: bool
    private: bool
    revision: str | None
    create_pr: bool
    reason: str | None = None
    """Why nothing was sent: ``dry run`` or ``offline (HF_HUB_OFFLINE=1)``."""
    url: str | None = None
    commit: str | None = None
    pr_url: str | None = None
    sizes: dict[str, int] = field(default_factory=dict)
    """Each file's size in bytes."""

    @property
    def total_bytes(self) -> int:
        """The bytes the push sends (or would send)."""
        return sum(self.sizes.values())


def push_release(path: str | os.PathLike[str], repo: str, *, private: bool = True,
                 token: str | None = None, revision: str | None = None, create_pr: bool = False,
                 dry_run: bool = False, api: Any = None) -> Pushed:
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

    release = Release.open(path, verify=True)
    root, manifest = release.path, release.manifest
    validate_card(release.folder.card.read_text("utf-8"), where=str(release.folder.card))
    files = release.folder.files()
    plan = Pushed(repo=repo, tag=f"v{manifest['version']}", files=files, uploaded=False, private=private,
                  revision=revision, create_pr=create_pr,
                  sizes={name: (root / name).stat().st_size for name in files})
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    if dry_run or constants.HF_HUB_OFFLINE:
        return replace(plan, reason="dry run" if dry_run else "offline (HF_HUB_OFFLINE=1)")
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
            api.create_tag(repo, repo_type="dataset", tag=plan.tag, revision=commit.oid,
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
    return replace(plan, uploaded=True, url=str(url), commit=commit.oid,
                   pr_url=getattr(commit, "pr_url", None))


def _network_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a failed connection raises through huggingface_hub's HTTP client."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(module).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)
