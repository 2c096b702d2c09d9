"""FAISS index by size: exact flat search when small, IVF when large.

Flat inner product over normalised vectors is exact and, below ~50k vectors, already fast
enough (a 384-d scan of 10k rows is well under a millisecond). Past that an IVF index scans
only ``nprobe`` of its ``nlist`` cells; bench/query_latency.py measures its recall@10.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

FLAT_MAX = 50_000  # above this many vectors, build IVF
TRAIN_POINTS_PER_CELL = 64  # k-means sample size per IVF cell (faiss warns below 39)


def ivf_params(n: int) -> tuple[int, int]:
    """(nlist, nprobe) for ``n`` vectors: ~4*sqrt(n) cells, ~1.5% of them probed."""
    nlist = int(4 * math.sqrt(n))
    return nlist, max(16, nlist // 64)


def build_faiss(vectors: np.ndarray):
    import faiss

    n, dim = vectors.shape
    if n <= FLAT_MAX:
        index = faiss.IndexFlatIP(dim)
    else:
        nlist, nprobe = ivf_params(n)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).choice(n, min(n, nlist * TRAIN_POINTS_PER_CELL), replace=False)
        index.train(vectors[np.sort(sample)])
        index.nprobe = nprobe
    if n:
        index.add(vectors)
    return index


def save_faiss(index, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))


def load_faiss(path: Path):
    import faiss

    return faiss.read_index(str(path)) if path.exists() else None
