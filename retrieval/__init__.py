"""Embeddings, the FAISS-backed index, hybrid search and specialized-term background."""
from retrieval.search import Hit, Retriever, open_retriever
from retrieval.terms import Background, Term, background, find_terms

__all__ = ["Retriever", "Hit", "open_retriever", "background", "find_terms", "Background", "Term"]
