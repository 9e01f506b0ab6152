"""Records from somewhere: the one place that reads sources, runs and releases back.

- ``curate.read.sources``: catalog entries and files, read through ingestion (the same
  readers, mapping and quarantine a run uses) into a temporary run store;
- ``curate.read.runs``: ``RunReader``, queries over a run folder (records, quarantine,
  decisions, kept and removed records, scores, DuckDB views);
- ``curate.read.releases``: ``Release``, a release folder (manifest, configs and their
  data, digest) and its checks (``verify_release``).

No other module opens a run's shards or spells a release's file names.
"""
