"""Where stages run. ``local``: in this process, streaming over parquet shards."""

from curate.engine.local import StageResult, kept_records, run_stages
from curate.engine.stage import DatasetStage, RowStage, Stage, StageConfig, StageContext

__all__ = ["DatasetStage", "RowStage", "Stage", "StageConfig", "StageContext", "StageResult", "kept_records",
           "run_stages"]
