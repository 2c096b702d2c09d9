"""Files in, chunked and embedded documents out: ``ingest(paths, index)``."""
from ingest._pipeline import IngestReport, ingest
from ingest._readers import KINDS

SUPPORTED = tuple(KINDS)  # file suffixes ingest reads

__all__ = ["ingest", "IngestReport", "SUPPORTED"]
