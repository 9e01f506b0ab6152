"""Mixes: allocation of a finished run to its target shares, releases, cards and diffs.

``curate.mixes.release`` writes releases, ``curate.mixes.publish`` exports, compares and
pushes them (``export_release``, ``diff_releases``, ``push_release``);
``curate.mixes.assemble`` makes one from a run. ``curate.read.releases`` reads them.
The build that runs a recipe end to end lives above, in ``curate.pipeline``.
"""
