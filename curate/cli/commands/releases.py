"""`curate release ls|show|diff|export|verify|push`."""

from __future__ import annotations

import sys
from typing import Any

import click

from curate.cli import Group
from curate.cli.console import json_option, show
from curate.cli.options import config_options, settings
from curate.cli.views import releases as view
from curate.mixes.publish import PushConfig
from curate.read.releases import ReleasesFolder

release_path = click.argument("path", type=click.Path(exists=True, file_okay=False))


@click.group(cls=Group)
def release() -> None:
    """List, show, compare, export, verify and publish releases."""


@release.command("ls")
@config_options(ReleasesFolder, rename={"releases_dir": "releases"})
@json_option
def release_ls(as_json: bool, **_: Any) -> None:
    """List the releases under ROOT (name, version, rows, loss tokens)."""
    from curate.read.releases import list_releases

    folder = ReleasesFolder.model_validate(settings(click.get_current_context()))
    show(list_releases(folder.releases_dir), as_json, view.listing)


@release.command("show")
@release_path
@json_option
def release_show(path: str, as_json: bool) -> None:
    """Print a release's composition, curation counts and contamination."""
    from curate.read.releases import Release

    show(Release.open(path), as_json, view.release)


@release.command("diff")
@click.argument("a", type=click.Path(exists=True, file_okay=False))
@click.argument("b", type=click.Path(exists=True, file_okay=False))
@json_option
def release_diff(a: str, b: str, as_json: bool) -> None:
    """What changed from release A to release B: rows added and removed by source (with
    B's reason for each removal) and the composition side by side."""
    from curate.mixes.publish import diff_releases

    show(diff_releases(a, b), as_json, view.diff)


@release.command("export")
@release_path
@click.argument("out", type=click.Path(file_okay=False))
@json_option
def release_export(path: str, out: str, as_json: bool) -> None:
    """Save the release with `datasets` `save_to_disk` into OUT (for `load_from_disk`)."""
    from curate.mixes.publish import export_release

    show(export_release(path, out), as_json, view.exported)


@release.command("verify")
@click.argument("path", type=click.Path(exists=True))
@json_option
def release_verify(path: str, as_json: bool) -> None:
    """Check the release at PATH file by file against its manifest's sha256 hashes; list
    every changed, cut, missing or extra file and folder (exit 1), or say it is intact."""
    from curate.read.releases import Verification

    if show(Verification.of(path), as_json, view.verification).problems:
        sys.exit(1)


@release.command("push")
@release_path
@config_options(PushConfig, rename={"private": "private/public"})
@json_option
def release_push(path: str, as_json: bool, **_: Any) -> None:
    """Upload the release to a Hugging Face dataset repo and tag it v<version>.

    The release must verify against its manifest and carry a valid Hub dataset card
    (with `dataset_info`). Offline (HF_HUB_OFFLINE=1) it stops at a dry run listing what
    would be uploaded; an unreachable Hub or a missing login is a one-line error.
    """
    from curate.mixes.publish import push_release

    options = PushConfig.model_validate(settings(click.get_current_context()))
    show(push_release(path, **options.model_dump()), as_json, view.pushed)
