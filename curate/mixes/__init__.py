"""Mixes: from a recipe to a run, and (next) to a release."""

from curate.mixes.build import BuildResult, Run, build_mix, ingest_run, open_run

__all__ = ["BuildResult", "Run", "build_mix", "ingest_run", "open_run"]
