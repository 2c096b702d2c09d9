"""Vector backends side by side: FAISS files (default) and Milvus through llama-index, in one run.

    python bench/backends.py [--sizes 100000,300000] [--step 4000] [--milvus-uri URI] [--corpus DIR]

For each size, a synthetic index (real MiniLM chunk vectors of the bundled guide plus Gaussian
noise, as in bench/query_latency.py; the seeds are the ARAGOG papers' chunks) is written through the same store code ingest uses:
  - bulk: one commit of all chunks (vectors in, generation written, made live), chunks/s;
  - step: one more commit adding ``--step`` chunks (one ingest step of ~100 papers) to that index;
  - query p50/p95 (dense search alone, the query vector given; embedding it costs the same on both)
    and recall@10 against exact NumPy search, over 50 real query embeddings.
The Milvus rows use milvus-lite (a file) unless ``--milvus-uri http://HOST:19530`` names a server;
the same collection is searched at each ``--ef`` (HNSW breadth, ``index.ef``).
Prints a table, writes bench/results/backends.json.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import EVALCORPUS, ROOT, table, write_result
from query_latency import QUERIES, percentiles, synthetic

CHUNKS_PER_DOC = 40  # a paper is ~40 chunks of 256 tokens


def base_vectors(embedder, corpus: Path) -> np.ndarray:
    """Real chunk vectors to build synthetic corpora around (a few hundred distinct passages: with
    too few, the synthetic index is a handful of blobs and every ANN index looks worse than it is)."""
    from ingest import ingest
    from retrieval.store import IndexStore

    ingest([corpus], index="bench-base", embedder=embedder, progress=False)
    return IndexStore.open("bench-base").vectors


def synthetic_add(x: np.ndarray, start: int) -> list:
    """``x`` as store additions: documents of CHUNKS_PER_DOC chunks with unique ids."""
    from retrieval.store import Chunk

    add = []
    for d in range(0, len(x), CHUNKS_PER_DOC):
        doc = f"doc{start + d:09d}"
        chunks = [Chunk(id=f"c{start + i:011d}", doc_id=doc, text="", title=doc, path=f"{doc}.pdf", page=1,
                        page_end=1, section="", start=0, end=0, tokens=0)
                  for i in range(d, min(d + CHUNKS_PER_DOC, len(x)))]
        add.append(({"doc_id": doc, "title": doc, "kind": "pdf", "pages": 1, "paths": [f"{doc}.pdf"]},
                    chunks, x[d:d + len(chunks)], [""]))
    return add


def time_search(store, queries: np.ndarray, exact: np.ndarray) -> dict:
    ms, found = [], []
    for q in queries:
        t = time.perf_counter()
        found.append([r for r, _ in store.dense_search(q[None, :], 10)])
        ms.append(1000 * (time.perf_counter() - t))
    return {**percentiles(ms), "recall@10": float(np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)]))}


def run_backend(kind: str, x: np.ndarray, extra: np.ndarray, queries: np.ndarray, exact: np.ndarray,
                uri: str, efs: list[int]) -> list[dict]:
    from ragqa.config import IndexConfig
    from retrieval.backends import new_record
    from retrieval.store import IndexStore, remove_index

    name = f"bench-{kind}-{len(x)}"
    config = IndexConfig(backend=kind, uri=uri if kind == "milvus" else "")
    store = IndexStore.empty(name, "bench/synthetic", x.shape[1], {}, new_record(config, name), config)
    t = time.perf_counter()
    store = store.replace(set(), synthetic_add(x, 0), {})
    store.commit()
    bulk = time.perf_counter() - t
    t = time.perf_counter()
    store = store.replace(set(), synthetic_add(extra, len(x)), {})
    store.commit()
    step = time.perf_counter() - t
    store.close()
    t = time.perf_counter()
    store = IndexStore.open(name)
    store.dense_search(queries[:1], 10)  # first search: a collection loads (and builds its index) lazily
    opened = time.perf_counter() - t
    what = type(store.faiss).__name__ if kind == "faiss" else ("milvus-lite" if "://" not in uri else "milvus server")
    row = {"chunks": len(x), "backend": f"{kind} ({what})", "bulk_chunks_per_s": len(x) / bulk,
           f"step_{len(extra)}_s": step, "open_s": opened}
    rows = []
    for ef in efs if kind == "milvus" else [None]:  # the same collection searched at each HNSW breadth
        if ef:
            store.backend.ef = ef
        rows.append({**row, "ef": ef or "", **time_search(store, queries, exact)})
    store.close()
    remove_index(name)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,300000")
    ap.add_argument("--corpus", type=Path, default=EVALCORPUS / "aragog" / "pdfs",
                    help="documents whose chunk vectors seed the synthetic index (default: the 12 ARAGOG papers)")
    ap.add_argument("--step", type=int, default=4000, help="chunks added by the incremental commit (~100 papers)")
    ap.add_argument("--backends", default="faiss,milvus")
    ap.add_argument("--milvus-uri", default="", help="http://HOST:19530 for a server (default: a milvus-lite file)")
    ap.add_argument("--ef", default="64,128,256", help="Milvus HNSW search breadths to measure (index.ef)")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="ragqa-bench-backends-"))
    os.environ["RAGQA_HOME"] = str(home)
    from retrieval.embed import load_embedder

    embedder = load_embedder()
    base = base_vectors(embedder, args.corpus if args.corpus.is_dir() else ROOT / "ragqa" / "guide")
    queries = embedder.embed_batch(QUERIES)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        rng = np.random.default_rng(0)
        x, extra = synthetic(base, n, rng), synthetic(base, args.step, rng)
        exact = np.argsort(-(queries @ np.concatenate([x, extra]).T), axis=1)[:, :10]
        for kind in args.backends.split(","):
            uri = args.milvus_uri or str(home / f"bench-{n}.db")
            rows += run_backend(kind, x, extra, queries, exact, uri, [int(e) for e in args.ef.split(",")])
            print(rows[-1], flush=True)
    table(rows)
    write_result("backends", {"base_vectors": len(base), "queries": len(QUERIES), "rows": rows,
                              "note": "dense search only, query vector given; milvus-lite 3 is Python over faiss"})
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
