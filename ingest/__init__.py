"""Files in, chunked and embedded documents out: ``ingest(paths, index)``."""
from ingest._pipeline import IngestReport, ingest

__all__ = ["ingest", "IngestReport"]
