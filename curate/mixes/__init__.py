"""Mixes: from a recipe to a run, an allocation and a versioned release."""

from curate.mixes.build import BuildResult, Run, build_mix, ingest_run, open_run, plan_mix
from curate.mixes.release import diff_releases, export_release, list_releases, load_release

__all__ = ["BuildResult", "Run", "build_mix", "diff_releases", "export_release", "ingest_run",
           "list_releases", "load_release", "open_run", "plan_mix"]
