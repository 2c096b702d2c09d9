"""Specialized terms in a question, and background passages that explain them.

A term is specialized when general English rarely uses it (``wordfreq`` Zipf frequency)
yet the indexed corpus does: acronyms (BERT, LoRA, GPT-3), rare words (perplexity) and
multi-word terms built around them (masked language model). For each, the passage of the
corpus that best *defines* it is found and cut to the sentences around the definition, so a
small model gets the meaning of the words it is asked about. Used at answer time and when
generating training questions (one function, ``background``).
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from ragqa.text import STOPWORDS, split_sentences

RARE_ZIPF = 3.5  # below this Zipf frequency (~3 uses per million words) a word counts as rare
PHRASE_ZIPF = 4.0  # a multi-word term needs one word below this (masked: 3.65; tasks: 4.23)
_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-'][A-Za-z0-9]+)*")
_ACRONYM = re.compile(r"^(?:[A-Z][A-Za-z0-9]*[A-Z][A-Za-z0-9-]*|[A-Z]+-?[0-9]+[A-Za-z0-9-]*)$")


@dataclass
class Term:
    text: str  # as written in the question
    kind: str  # 'acronym', 'phrase' or 'rare'
    score: float  # higher = more specialized
    corpus_df: int  # passages of the corpus containing it


@dataclass
class Background:
    term: Term
    chunk: object  # retrieval.store.Chunk the excerpt comes from
    text: str  # the defining sentences, cut to the budget
    defines: bool  # the excerpt matches a definition pattern, not just a mention


class Vocabulary:
    """Passage frequencies of the corpus's words and its lowercased text, built once per index."""

    def __init__(self, texts: list[str]):
        self.df: Counter = Counter()
        for text in texts:
            self.df.update({w.lower() for w in _TOKEN.findall(text)})
        self.blob = "\n".join(t.lower() for t in texts)
        self.n = max(1, len(texts))

    def phrase_count(self, phrase: str) -> int:
        return self.blob.count(phrase.lower())


def find_terms(question: str, vocab: Vocabulary, max_terms: int = 3) -> list[Term]:
    """The most specialized terms of ``question`` that the corpus contains, best first."""
    tokens = [t[:-2] if t.endswith("'s") else t for t in _TOKEN.findall(question)]
    terms: dict[str, Term] = {}
    for phrase in _phrases(tokens):
        words = phrase.split()
        special = sum(_specialness(w, vocab, PHRASE_ZIPF) for w in words)
        if special > 0 and not any(w.lower() in terms_words(terms) for w in words):
            if (count := vocab.phrase_count(phrase)) > 0:
                terms[phrase.lower()] = Term(phrase, "phrase", special + 1.0, count)
    covered = terms_words(terms)
    for token in tokens:
        if token.lower() in covered or token.lower() in STOPWORDS or len(token) < 2:
            continue
        df = vocab.df.get(token.lower(), 0)
        special = _specialness(token, vocab)
        if df and special > 0:
            kind = "acronym" if _ACRONYM.match(token) else "rare"
            terms.setdefault(token.lower(), Term(token, kind, special, df))
    return sorted(terms.values(), key=lambda t: -t.score)[:max_terms]


def terms_words(terms: dict) -> set[str]:
    return {w.lower() for t in terms.values() for w in t.text.split()}


def _specialness(word: str, vocab: Vocabulary, rare_zipf: float = RARE_ZIPF) -> float:
    """Rarity in general English, boosted for acronyms; 0 for common words."""
    from wordfreq import zipf_frequency

    if _ACRONYM.match(word):
        return 3.0 + math.log(vocab.n / (1 + vocab.df.get(word.lower(), 0)) + 1) / 10
    if word.lower() in STOPWORDS or len(word) < 4:
        return 0.0
    return max(0.0, rare_zipf - zipf_frequency(word, "en"))


def _phrases(tokens: list[str]) -> list[str]:
    """Runs of 2-4 content words holding a specialized word, longest first."""
    runs, run = [], []
    for token in tokens + ["the"]:
        if token.lower() in STOPWORDS:
            if len(run) > 1:
                runs.append(run)
            run = []
        else:
            run.append(token)
    out = []
    for run in runs:
        for size in range(min(4, len(run)), 1, -1):
            out += [" ".join(run[i:i + size]) for i in range(len(run) - size + 1)]
    return out


def _definition_pattern(term: str) -> re.Pattern:
    t = re.escape(term)
    return re.compile(
        rf"(\b{t}\b\s*(\(|,)?\s*(is|are|refers to|stands for|denotes|means|consists of|is defined as)\b"
        rf"|\(\s*{t}s?\s*\)|\b{t}\b\s*\([A-Z]|\bcalled\s+(an?\s+|the\s+)?{t}\b|\b(define|introduce|propose)\s+(an?\s+|the\s+)?{t}\b)",
        re.IGNORECASE)


def excerpt(text: str, term: str, budget: int, count_tokens: Callable[[str], int]) -> tuple[str, bool]:
    """The sentence defining (or else first mentioning) ``term`` plus what follows, within budget."""
    sentences = split_sentences(text)
    pattern, mention = _definition_pattern(term), re.compile(rf"\b{re.escape(term)}\b", re.IGNORECASE)
    start = next((i for i, s in enumerate(sentences) if pattern.search(s)), None)
    defines = start is not None
    if start is None:
        start = next((i for i, s in enumerate(sentences) if mention.search(s)), 0)
    out: list[str] = []
    for sentence in sentences[start:]:
        if out and count_tokens(" ".join(out + [sentence])) > budget:
            break
        out.append(sentence)
    text = " ".join(out)
    if count_tokens(text) > budget:  # one long sentence: cut at a word boundary
        words = text.split()
        while words and count_tokens(" ".join(words)) > budget:
            words = words[: max(1, int(len(words) * 0.8))]
            if len(words) == 1:
                break
        text = " ".join(words) + " …"
    return text, defines


def background(question: str, retriever, budget_tokens: int = 200, max_terms: int = 3,
               count_tokens: Callable[[str], int] | None = None,
               skip_chunks: set[str] = frozenset(), terms: list[Term] | None = None,
               doc: str | None = None) -> list[Background]:
    """Defining excerpts for the specialized terms of ``question``, within ``budget_tokens``.

    ``skip_chunks`` are chunk ids already in the prompt: a term they define needs no background.
    ``terms`` saves detecting them again when the caller already has them. ``doc`` keeps the search
    inside one document, as for a question scoped to it: "their activation function" means this
    paper's, not the definition in another paper of the index.
    """
    count_tokens = count_tokens or (lambda s: int(len(s.split()) * 1.3) + 1)
    if terms is None:
        terms = find_terms(question, retriever.vocabulary(), max_terms)
    if not terms or budget_tokens <= 0:
        return []
    per_term, out, used = budget_tokens // len(terms), [], set(skip_chunks)
    for term in terms:
        best = _defining_chunk(term, retriever, used, doc)
        if best is None:
            continue
        chunk, defines = best
        text, _ = excerpt(chunk.text, term.text, per_term, count_tokens)
        used.add(chunk.id)
        out.append(Background(term, chunk, text, defines))
    return out


def _defining_chunk(term: Term, retriever, used: set[str], doc: str | None = None):
    """Among passages retrieved for the term, the first that defines it, else that mentions it."""
    pattern, mention = _definition_pattern(term.text), re.compile(rf"\b{re.escape(term.text)}\b", re.I)
    hits = retriever.search(f"{term.text}: definition, what {term.text} is", k=10, doc=doc)
    mentions = [h.chunk for h in hits if mention.search(h.chunk.text)]
    for chunk in mentions:
        if pattern.search(" ".join(chunk.text.split())):
            return (None if chunk.id in used else (chunk, True))
    fresh = [c for c in mentions if c.id not in used]
    return (fresh[0], False) if fresh else None
