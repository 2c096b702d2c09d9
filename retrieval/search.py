"""Hybrid search: dense (FAISS or the index's vector engine) + BM25 lexical, fused by reciprocal rank fusion."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ragqa.config import RetrievalConfig
from retrieval.embed import reads
from retrieval.store import Chunk, IndexStore


@dataclass
class Hit:
    chunk: Chunk
    score: float  # fused score (RRF) in hybrid mode, else the retriever's own score
    dense: float | None = None  # cosine similarity, when dense search saw this chunk
    bm25: float | None = None

    def snippet(self, width: int = 240) -> str:
        text = re.sub(r"\s+", " ", self.chunk.text).strip()
        return text if len(text) <= width else text[: width - 1].rsplit(" ", 1)[0] + "…"


_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:-[0-9]+)?")


def lexical_text(chunk: Chunk) -> str:
    """What BM25 indexes: file name, title and section carry strong signals for paper questions."""
    return f"{Path(chunk.path).stem.replace('_', ' ')} {chunk.title} {chunk.section} {chunk.text}"


class Retriever:
    """Search one opened index. Build once, query many times (BM25 is built lazily)."""

    def __init__(self, store: IndexStore, embedder, config: RetrievalConfig | None = None):
        from retrieval.store import check_same_model

        check_same_model(store.manifest, embedder)  # one short embedding, before any wrong answer
        self.store, self.embedder, self.config = store, embedder, config or RetrievalConfig()
        self._bm25 = self._vocab = self._titles = None

    def search(self, query: str, k: int | None = None, doc: str | None = None,
               mode: str | None = None) -> list[Hit]:
        """Top-``k`` chunks for ``query``; ``doc`` (id, file name or title) restricts to one document."""
        k, mode = k or self.config.k, mode or self.config.mode
        if not self.store.chunks or not query.strip():
            return []
        rows = self.store.doc_rows(self.store.find_doc(doc)) if doc else None
        n = max(k, self.config.candidates)
        if mode == "hybrid" and not self.reads(query):
            mode = "bm25"  # the embedder sees mostly unknown tokens: its ranking would be noise
        dense = self.dense(query, n, rows) if mode in ("dense", "hybrid") else []
        lexical = self.lexical(query, n, rows) if mode in ("bm25", "hybrid") else []
        if mode == "dense":
            return [Hit(self.store.chunks[r], s, dense=s) for r, s in dense[:k]]
        if mode == "bm25":
            return [Hit(self.store.chunks[r], s, bm25=s) for r, s in lexical[:k]]
        named = self.named(query, dense) if self.config.title_boost and rows is None else []
        return self._fuse(dense, lexical, k, named)

    def reads(self, query: str) -> bool:
        """Whether the embedder represents ``query`` (``retrieval.max_unknown_share``)."""
        return reads(self.embedder, query, self.config.max_unknown_share)

    def named(self, query: str, dense: list[tuple[int, float]]) -> list[tuple[int, float]]:
        """The dense candidates from documents whose title or file name the query names ("How does
        LLaMA ...", "RoBERTa's ..."), in dense order: a third ranking for the fusion.

        A name is a query word written with inner capitals or in capitals (LLaMA, BERT, RoBERTa,
        GPT-2) that occurs, whole, in the titles of at most two documents.
        """
        names = {w.lower() for w in _NAME.findall(query) if any(c.isupper() for c in w[1:])}
        docs = set().union(*(self._title_index().get(n, set()) for n in names)) if names else set()
        return [(row, s) for row, s in dense if self.store.chunks[row].doc_id in docs]

    def _title_index(self) -> dict[str, set[str]]:
        """Title and file-name words -> documents, for the words that name at most two documents."""
        if self._titles is None:
            index: dict[str, set[str]] = {}
            for doc_id, doc in self.store.manifest.docs.items():
                text = " ".join([doc["title"]] + [Path(p).stem for p in doc["paths"]])
                for word in {w.lower() for w in re.findall(r"[A-Za-z0-9]+(?:-[0-9]+)?", text)}:
                    index.setdefault(word, set()).add(doc_id)
            self._titles = {w: d for w, d in index.items() if len(d) <= 2}
        return self._titles

    def dense(self, query: str, n: int, rows: np.ndarray | None = None) -> list[tuple[int, float]]:
        return self.store.dense_search(self.embedder.embed_batch([query]), n, rows)

    def lexical(self, query: str, n: int, rows: np.ndarray | None = None) -> list[tuple[int, float]]:
        from retrieval.lexical import analyse

        tokens = analyse(query)
        if not tokens:
            return []
        scores = self._bm25_index().get_scores(tokens)
        if rows is not None:
            masked = np.full_like(scores, -np.inf)
            masked[rows] = scores[rows]
            scores = masked
        top = np.argpartition(-scores, min(n, len(scores) - 1))[:n]
        top = top[np.argsort(-scores[top])]
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]

    def _bm25_index(self):
        if self._bm25 is None:
            import bm25s

            from retrieval.lexical import analyse

            corpus = [analyse(lexical_text(c)) or [""] for c in self.store.chunks]  # bm25s wants no empty doc
            self._bm25 = bm25s.BM25()
            self._bm25.index(corpus, show_progress=False)
        return self._bm25

    def vocabulary(self):
        """Word statistics of the corpus, for specialized-term detection (built lazily)."""
        if self._vocab is None:
            from retrieval.terms import Vocabulary

            self._vocab = Vocabulary([lexical_text(c) for c in self.store.chunks])
        return self._vocab

    def _fuse(self, dense, lexical, k: int, named=()) -> list[Hit]:
        fused: dict[int, Hit] = {}
        for ranking, field in ((dense, "dense"), (lexical, "bm25"), (named, None)):
            for rank, (row, score) in enumerate(ranking):
                hit = fused.setdefault(row, Hit(self.store.chunks[row], 0.0))
                hit.score += 1.0 / (self.config.rrf_k + rank + 1)
                if field:
                    setattr(hit, field, score)
        return sorted(fused.values(), key=lambda h: -h.score)[:k]


def open_retriever(index: str, config=None, embedder=None) -> Retriever:
    """Open index ``index`` with ``embedder`` (default: the configured one, loaded once per process),
    refusing an embedder other than the one the index was built with."""
    from ragqa.config import Config
    from retrieval.embed import load_embedder

    config = config or Config()
    embedder = embedder or load_embedder(config.embedder)
    return Retriever(IndexStore.open(index, embedder_id=embedder.id, config=config.index), embedder, config.retrieval)
