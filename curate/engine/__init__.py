"""Where steps run.

- ``curate.engine.stage``: the step contract (``Stage``, ``RowStage``, ``DatasetStage``,
  ``Producer``, ``StageContext``);
- ``curate.engine.runner``: runs steps over a run store, resuming what is done, and decides;
- ``curate.engine.executor``: where the scoring runs: the ``Executor`` interface and the
  in-process ``LocalExecutor``; ``curate.engine.ray``: ``RayExecutor``, the same work on a
  Ray cluster (Ray Data), imported only when a build asks for it.
"""
