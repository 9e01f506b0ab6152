"""Ingestion: read catalog sources into the run store as records, quarantining bad rows."""

from curate.ingest.runner import IngestResult, SourceResult, ingest, ingest_source

__all__ = ["IngestResult", "SourceResult", "ingest", "ingest_source"]
