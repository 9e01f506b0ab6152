"""Releases read back: the manifest, the data of each config, the digest, the checks.

A release (``curate.store.ReleaseFolder`` for its layout; written by
``curate.mixes.release``) is trusted only once every file matches its manifest's sha256
(``verify_release``, ``curate release verify``). ``Release`` is how every reader opens
one: training, retrieval, ``release show``/``diff``/``export``/``push``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from curate.config import Config
from curate.errors import ConfigError
from curate.read.views import Composition, ContaminationRow, StageCounts
from curate.store import ReleaseFolder, sha256_file

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

DEFAULT_RELEASES_DIR = Path("releases")


class ReleasesFolder(Config):
    """The folder releases are written to and listed from."""

    releases_dir: str = Field(str(DEFAULT_RELEASES_DIR), description=(
        "Folder of releases (<folder>/<recipe>/<version>)."))


class Release:
    """One release folder: its manifest, its configs and their data files, its digest."""

    def __init__(self, path: str | os.PathLike[str]):
        self.folder = ReleaseFolder(path)

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, verify: bool = False) -> Release:
        """The release at ``path``; a ConfigError when it has no manifest, or, with
        ``verify``, when any file differs from the manifest (``verify_release``)."""
        if verify:
            check_release(path)
        release = cls(path)
        if not release.folder.manifest.is_file():
            raise ConfigError(f"{path} is not a release (no manifest.json); releases live in "
                              "releases/<name>/<version>")
        return release

    @property
    def path(self) -> Path:
        """The release folder."""
        return self.folder.path

    @cached_property
    def manifest(self) -> dict[str, Any]:
        """``manifest.json``: recipe, inputs, stages, contamination, composition, files."""
        value: dict[str, Any] = json.loads(self.folder.manifest.read_text("utf-8"))
        return value

    @cached_property
    def digest(self) -> str:
        """The sha256 of ``manifest.json``: it names the release's exact contents, since the
        manifest holds the sha256 of every other file."""
        return sha256_file(self.folder.manifest)

    @property
    def name(self) -> str:
        """The recipe name the release was built from."""
        return str(self.manifest.get("name", self.path.parent.name))

    @property
    def version(self) -> str:
        """The release's version."""
        return str(self.manifest.get("version", self.path.name))

    @property
    def composition(self) -> Composition:
        """The mix as allocated: budget, categories, modalities."""
        return Composition.from_json(self.manifest)

    @property
    def stages(self) -> list[StageCounts]:
        """What each stage decided."""
        return [StageCounts.from_json(s) for s in self.manifest["stages"]]

    @property
    def contamination(self) -> list[ContaminationRow]:
        """The contamination report, per source and benchmark (without examples)."""
        return [ContaminationRow.from_json(c) for c in self.manifest.get("contamination") or []]

    @property
    def configs(self) -> list[str]:
        """The configs (data folders) the release holds: ``text``, ``image_text``, ``preference``."""
        return sorted({c for f in self.manifest["files"] if (c := ReleaseFolder.config_of(f))})

    def files(self, config: str) -> list[Path]:
        """The data files of ``config``, in order (none when the release has no such config)."""
        return [self.path / f for f in sorted(self.manifest["files"]) if ReleaseFolder.config_of(f) == config]

    def table(self, config: str, columns: list[str] | None = None) -> pa.Table:
        """The rows of ``config`` as one Arrow table (an empty table when there are none)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        tables = [pq.read_table(f, columns=columns) for f in self.files(config)]
        return pa.concat_tables(tables) if tables else pa.table({})

    def removed(self, columns: list[str] | None = None) -> pl.DataFrame:
        """``removed.parquet``: every ingested row not in the mix, with its stage and reason."""
        import polars as pl

        return pl.read_parquet(self.folder.removed, columns=columns)

    def ids(self) -> pl.DataFrame:
        """The ``id`` and ``source`` of every row in the mix, each id once."""
        import polars as pl

        files = [f for config in self.configs for f in self.files(config)]
        if not files:
            return pl.DataFrame(schema={"id": pl.String, "source": pl.String})
        return pl.concat([pl.read_parquet(f, columns=["id", "source"]) for f in files]).unique("id")

    def to_json(self) -> dict[str, Any]:
        """What ``curate release show --json`` prints: the release and its manifest's
        budget, composition, modality, stages and contamination."""
        manifest = self.manifest
        return {"path": str(self.path), **{k: manifest.get(k) for k in (
            "name", "version", "budget", "composition", "modality", "stages", "contamination")}}

    def dataset(self) -> Any:
        """The release as a ``datasets.DatasetDict``: one entry per config, images decoded by
        the ``Image`` feature."""
        import datasets

        # One load per config: loaded together, the configs would share one schema and the
        # text rows would carry a null `images` column, which TRL takes for a vision dataset.
        loaded = datasets.DatasetDict({
            config: datasets.load_dataset(
                "parquet", data_files=str(self.path / ReleaseFolder.data_pattern(config)), split="train")
            for config in self.configs
        })
        if "image_text" in loaded:
            loaded["image_text"] = loaded["image_text"].cast_column(
                "images", datasets.List(datasets.Image()))
        return loaded


def load_release(path: str | os.PathLike[str]) -> Any:
    """The release at ``path`` as a ``datasets.DatasetDict`` (``Release.dataset``)."""
    return Release.open(path).dataset()


@dataclass(frozen=True)
class ListedRelease:
    """One release of a releases folder: where, which, and its size."""

    path: str
    name: str
    version: str
    rows: int
    loss_tokens: int


def list_releases(root: str | os.PathLike[str] = DEFAULT_RELEASES_DIR) -> list[ListedRelease]:
    """Every release under ``root`` (``<root>/<name>/<version>``), in path order; hidden
    folders, such as those of an interrupted build, are never releases."""
    found = []
    for manifest in sorted(Path(root).glob(f"*/*/{ReleaseFolder.MANIFEST}")):
        if manifest.parent.name.startswith(".") or manifest.parent.parent.name.startswith("."):
            continue
        release = Release(manifest.parent)
        composition = release.composition
        found.append(ListedRelease(str(release.path), release.name, release.version, composition.rows,
                                   composition.loss_tokens))
    return found


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """``version`` ordered as people read it: ``0.10.0`` after ``0.9.1``, numbers as numbers."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"[.\-+_]", version))


def latest_pair(root: str | os.PathLike[str] = DEFAULT_RELEASES_DIR, name: str | None = None
                ) -> tuple[Path, Path]:
    """The two newest versions (by ``version_key``) of the releases called ``name`` under
    ``root`` (default: the name with the most versions, then the first): (older, newer),
    what a comparison of "what changed" looks at. A ConfigError when there are fewer than two."""
    listed = list_releases(root)
    versions: dict[str, list[ListedRelease]] = {}
    for release in listed:
        versions.setdefault(release.name, []).append(release)
    if name is None and versions:
        name = max(sorted(versions), key=lambda n: len(versions[n]))
    mine = sorted(versions.get(name or "", []), key=lambda r: version_key(r.version))
    if len(mine) < 2:
        have = ", ".join(r.version for r in mine) or "none"
        raise ConfigError(
            f"comparing needs two releases of `{name or '<any>'}` under {root} (found: {have}); build "
            "another version (a recipe with another `version`, e.g. `curate build-mix demo-0.2.0.yaml "
            "--run-id 0.1.0`) or name both releases (CURATE_RELEASE_A and CURATE_RELEASE_B)")
    return Path(mine[-2].path), Path(mine[-1].path)


@dataclass(frozen=True)
class Verification:
    """A release folder checked against its manifest (``curate release verify``)."""

    path: str
    problems: list[str]
    """What differs, one line each; empty when the release is intact."""
    name: str | None = None
    version: str | None = None
    files: int = 0
    """Files the manifest lists (when it could be read)."""

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> Verification:
        """Check the release at ``path`` (``verify_release``)."""
        problems = verify_release(path)
        if problems:
            return cls(str(path), problems)
        release = Release(path)
        return cls(str(path), [], release.name, release.version, len(release.manifest["files"]))


def verify_release(path: str | os.PathLike[str]) -> list[str]:
    """Compare the release at ``path`` file by file with its manifest: every listed file
    present with its sha256, and no file or folder the manifest does not list. Returns
    what differs, one line each; an empty list when the release is intact."""
    root = Path(path)
    folder = ReleaseFolder(root)
    if root.is_symlink() or not root.is_dir():
        return [f"{root} is not a folder" if root.exists() or root.is_symlink() else f"{root} does not exist"]
    if not any(root.iterdir()):
        return [f"the folder is empty (no {folder.MANIFEST}, no data): not a release"]
    try:
        manifest = json.loads(folder.manifest.read_text("utf-8"))
    except FileNotFoundError:
        return [f"{folder.MANIFEST} is missing"]
    except (ValueError, UnicodeDecodeError) as exc:
        return [f"{folder.MANIFEST} is not valid JSON ({exc})"]
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not files:
        return [f"{folder.MANIFEST} lists no files (`files`)"]
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
    expected = {*files, folder.MANIFEST, folder.CARD}  # the card: unhashed in older releases
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
        raise ConfigError(mismatch(Path(path), problems))
    return Path(path)


def mismatch(target: Path, problems: list[str]) -> str:
    """One line saying that the release at ``target`` differs from its manifest, and how."""
    shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
    return (f"release {target} does not match its manifest: {shown}. It changed after it was "
            f"written: restore it or move it away, then build again (`curate release verify {target}` "
            "lists every difference)")
