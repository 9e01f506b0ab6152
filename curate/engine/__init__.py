"""Where steps run.

- ``curate.engine.stage``: the step contract (``Stage``, ``RowStage``, ``DatasetStage``,
  ``Producer``, ``StageContext``);
- ``curate.engine.local``: runs them in this process, streaming over parquet shards.
"""
