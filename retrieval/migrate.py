"""Move an index's vectors from its FAISS files into a vector engine, without re-embedding."""
from __future__ import annotations

import dataclasses
import time

from ragqa.config import IndexConfig
from ragqa.errors import ConfigError
from retrieval.backends import new_record, open_backend, same_place
from retrieval.store import IndexStore, WriteLock, read_journal


def migrate_index(name: str, config: IndexConfig) -> dict:
    """Copy index ``name`` (a FAISS index) into the engine ``config`` names and make that copy live.

    The chunks, page texts and manifest are carried over as they are and every stored vector is
    inserted under its chunk id: nothing is re-embedded. The switch is one more generation, so a
    migration killed midway leaves the FAISS index live; running it again picks the same collection up
    and deletes what the interrupted run had inserted before inserting again.
    """
    if config.backend == "faiss":
        raise ConfigError("ragqa index migrate --to faiss: indexes start on faiss; give --to milvus")
    with WriteLock(name):
        store = IndexStore.open(name, config=config)
        if store.on_engine:
            raise ConfigError(f"index {name!r} already keeps its vectors in {store.backend.describe()} — "
                              "nothing to migrate")
        record = new_record(config, name)
        left = read_journal(store.root).get("backend", {})
        record = left if same_place(left, record) else record  # an interrupted migration's collection is ours
        backend = open_backend(record, store.root, config)
        m = store.manifest
        backend.check(m.dim, m.embedder, name, new=True)  # before anything is written
        moved = IndexStore(store.root, dataclasses.replace(m, backend=record), store.chunks, None, store.pages,
                           backend=backend)
        moved.base_ids = set()  # nothing of this index is in the engine yet
        moved.pending = dict(zip((c.id for c in store.chunks), store.vectors))
        t = time.perf_counter()
        moved.commit()
        seconds = time.perf_counter() - t
        count = backend.count()
        backend.close()
    return {"chunks": len(store.chunks), "in_engine": count, "seconds": seconds, "to": backend.describe()}
