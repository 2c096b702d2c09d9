"""Reranking retrieved passages by the question they would make (UPR, Sachan et al., 2022).

A language model scores each passage by the likelihood of the question given the passage: the
passage that most makes a reader ask this question comes first. No training, no extra model: the
answer model itself scores, so it works with whatever causal LM the user runs in-process.
"""
from __future__ import annotations

from typing import Callable

from retrieval.context import prompt_text

# the UPR paper's instruction
INSTRUCTION = "Please write a question based on this passage."
PASSAGE_CHARS = 1500  # a chunk is at most 256 embedder tokens (~1,100 characters); longer texts are cut

Scorer = Callable[[list[list[dict]], str], list[float]]  # chats, question -> mean log-prob per question token


def rerank(question: str, hits: list, score: Scorer) -> list:
    """``hits`` reordered by the likelihood of ``question`` after each passage, ties in their order."""
    if len(hits) < 2:
        return list(hits)
    chats = [[{"role": "user", "content": f"Passage: {_titled(h.chunk)}\n\n{INSTRUCTION}"}]
             for h in hits]
    likelihoods = score(chats, question)
    order = sorted(range(len(hits)), key=lambda i: (-likelihoods[i], i))
    return [hits[i] for i in order]


def _titled(chunk) -> str:
    """The passage as UPR reads Wikipedia's: its document's title, then its text."""
    text = prompt_text(chunk.text)[:PASSAGE_CHARS]
    return f"{chunk.title}. {text}" if chunk.title and not text.startswith(chunk.title) else text
