"""The pipeline: a recipe run end to end, and one stage run on one file.

- ``curate.pipeline.run``: ``open_run`` (a recipe resolved to a run folder), ``ingest_run``;
- ``curate.pipeline.build``: ``build_mix`` (ingest, stages, synthesis, release), ``plan_mix``;
- ``curate.pipeline.adhoc``: ``run_on_file``, the one-file commands;
- ``curate.pipeline.summary``: ``inspect_run``, what a run folder holds.
"""
