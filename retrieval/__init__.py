"""Embeddings, the FAISS-backed index and hybrid search."""
from retrieval.search import Hit, Retriever, open_retriever

__all__ = ["Retriever", "Hit", "open_retriever"]
