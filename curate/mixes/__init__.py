"""Mixes: allocation of a finished run to its target shares, releases, cards and diffs.

``curate.mixes.release`` reads and writes releases (``load_release``, ``diff_releases``,
``export_release``, ``list_releases``); ``curate.mixes.assemble`` makes one from a run.
The build that runs a recipe end to end lives above, in ``curate.pipeline``.
"""
