"""Query latency (embed + search) at the corpus size and on synthetic 10k/100k/1M indexes.

    python bench/query_latency.py [--index bench-corpus --corpus DIR] [--sizes 10000,100000,1000000]

Synthetic indexes are made of the corpus's real chunk vectors plus Gaussian noise (so they
keep the corpus's cluster structure) and searched with real query embeddings; recall@10 is
measured against exact NumPy search. Prints a table, writes bench/results/query_latency.json.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from _common import EVALCORPUS, table, write_result

QUERIES = ["What are the two pre-training tasks of BERT?", "How does retrieval augmented generation work?",
           "What is the effect of model size on loss?", "Which optimizer was used for training?",
           "How are documents split into chunks?", "What does LoRA change in the network?",
           "How is the attention computed?", "What datasets were used for evaluation?",
           "What is the role of the tokenizer?", "How are results reported?"] * 5


def percentiles(ms: list[float]) -> dict:
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


def time_queries(retriever, mode: str) -> dict:
    retriever.search(QUERIES[0], k=10, mode=mode)  # warm-up (BM25 build, first forward pass)
    ms = []
    for q in QUERIES:
        t = time.perf_counter()
        retriever.search(q, k=10, mode=mode)
        ms.append(1000 * (time.perf_counter() - t))
    return percentiles(ms)


def synthetic(base: np.ndarray, n: int, rng) -> np.ndarray:
    x = base[rng.integers(0, len(base), n)] + rng.normal(scale=0.04, size=(n, base.shape[1])).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def bench_synthetic(embedder, base: np.ndarray, n: int) -> dict:
    from retrieval.faiss_index import build_faiss

    x = synthetic(base, n, np.random.default_rng(0))
    t = time.perf_counter()
    index = build_faiss(x)
    build = time.perf_counter() - t
    qv = embedder.embed_batch(QUERIES[:10])
    exact = np.argsort(-(qv @ x.T), axis=1)[:, :10]
    _, approx = index.search(qv, 10)
    recall = float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)]))
    ms = []
    for q in QUERIES:
        t = time.perf_counter()
        index.search(embedder.embed_batch([q]), 10)
        ms.append(1000 * (time.perf_counter() - t))
    return {"chunks": n, "faiss": type(index).__name__, "build_s": build, **percentiles(ms), "recall@10": recall}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=EVALCORPUS)
    ap.add_argument("--index", default="bench-corpus")
    ap.add_argument("--sizes", default="10000,100000,1000000")
    args = ap.parse_args()
    os.environ.setdefault("RAGQA_HOME", str(Path(__file__).resolve().parents[1]))
    from _common import corpus_files

    from ingest import ingest
    from retrieval import Retriever
    from retrieval.embed import load_embedder
    from retrieval.store import IndexStore

    embedder = load_embedder()
    ingest(corpus_files(args.corpus), index=args.index, embedder=embedder, progress=False)
    retriever = Retriever(IndexStore.open(args.index), embedder)
    rows = [{"index": f"corpus ({len(retriever.store.chunks)} chunks)", "mode": m, **time_queries(retriever, m)}
            for m in ("dense", "bm25", "hybrid")]
    synth = [bench_synthetic(embedder, retriever.store.vectors, int(n)) for n in args.sizes.split(",")]
    rows += [{"index": f"synthetic {s['chunks']:,} ({s['faiss']})", "mode": "dense", "p50_ms": s["p50_ms"],
              "p95_ms": s["p95_ms"], "recall@10": s["recall@10"], "build_s": s["build_s"]} for s in synth]
    table(rows)
    write_result("query_latency", {"corpus": str(args.corpus), "rows": rows})


if __name__ == "__main__":
    main()
