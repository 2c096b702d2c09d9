"""RAFT assembly and the record filters.

A record's context is the oracle chunk among hard negatives from *other* documents (retrieved for
the question), cut to the answer-time budget by ``fit_sources``, focused to its sentences closest to
the question by ``focus_sources`` as answer time does, and followed by the background for
the question's specialized terms, numbered exactly as ``ragqa.answer`` numbers them. A share of
records leave the oracle out and teach the abstention sentence instead.
"""
from __future__ import annotations

import re

import numpy as np

from ragqa.citations import check_citations, normalize
from retrieval.context import Source, abstain_text, fit_sources, focus_sources, prompt_text
from retrieval.search import Hit
from retrieval.terms import background, find_terms
from finetune._records import Record, shown_sources
from finetune._sample import is_boilerplate
from finetune._text import script, words


class WordCounter:
    """Token estimate when no model is loaded (the deterministic teacher): 1.3 tokens per word,
    the estimate ``retrieval.terms.background`` uses too."""

    name = "word-estimate"

    @staticmethod
    def count_tokens(text: str) -> int:
        return int(len(text.split()) * 1.3) + 1


class CachedEmbedder:
    """The index's embedder, remembering every text it embedded: records share distractor passages,
    so focusing each record's context (below) embeds most sentences once instead of per record."""

    def __init__(self, embedder):
        self.embedder, self.cache = embedder, {}

    def __getattr__(self, name):  # unknown_share, dim, id: the wrapped embedder's
        return getattr(self.embedder, name)

    def embed_batch(self, texts, progress: bool = False) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if todo:
            self.cache.update(zip(todo, self.embedder.embed_batch(todo)))
        return np.stack([self.cache[t] for t in texts])


class Helper:
    """What teachers and assembly ask of the index: vocabulary, companions, distractors, background."""

    def __init__(self, retriever, answer_config, counter):
        self.retriever, self.answer, self.counter = retriever, answer_config, counter
        self.vocab = retriever.vocabulary()
        self.embedder = CachedEmbedder(retriever.embedder) if answer_config.focus_tokens else None

    def companion(self, chunk, term: str):
        """Another passage of the same document that mentions ``term`` (for comparisons)."""
        pattern = re.compile(rf"\b{re.escape(term)}\b", re.I)
        for hit in self.retriever.search(term, k=8, doc=chunk.doc_id):
            c = hit.chunk
            if c.id != chunk.id and c.section != chunk.section and pattern.search(c.text) and not is_boilerplate(c):
                return c
        return None

    def distractors(self, question: str, exclude_docs: set[str], n: int) -> list:
        hits = self.retriever.search(question, k=max(20, 6 * n))
        return [h.chunk for h in hits if h.chunk.doc_id not in exclude_docs][:n]

    def background(self, text: str, skip: set[str]) -> list:
        terms = find_terms(text, self.vocab, self.answer.max_terms)
        return background(text, self.retriever, self.answer.background_tokens, self.answer.max_terms,
                          self.counter.count_tokens, skip_chunks=skip, terms=terms), terms

    def chunk_background(self, chunk) -> list:
        return self.background(prompt_text(chunk.text), {chunk.id})[0]


def context(question: str, passages: list, helper: Helper, skip: set[str] = frozenset()) -> list[Source]:
    """Passages fitted to the budget and cut to their sentences closest to the question (when
    ``answer.focus_tokens`` is on), then background sources: numbered and sized as at answer time,
    so the model trains on prompts of the length and layout it will answer from."""
    sources = fit_sources([Hit(c, 0.0) for c in passages], helper.counter, helper.answer.context_tokens)
    if helper.embedder is not None:
        sources, _ = focus_sources(question, sources, helper.embedder, helper.answer.focus_tokens,
                                   helper.counter.count_tokens)
    extra, terms = helper.background(question, {s.chunk.id for s in sources} | set(skip))
    by_term = {b.term.text: b for b in extra}
    for term in terms:
        if (b := by_term.get(term.text)) is not None:
            sources.append(Source(len(sources) + 1, b.chunk, b.text, term=term.text))
    return sources


def assemble(cand, oracle, helper: Helper, config, rng, abstain: bool, teacher: str) -> tuple[Record | None, str]:
    """The RAFT record for a candidate, or None and the filter that rejected it."""
    oracles = [oracle] + ([cand.second] if cand.second is not None else [])
    n = config.distractors + (len(oracles) if abstain else 0)  # abstention contexts keep their size
    passages = helper.distractors(cand.question, {c.doc_id for c in oracles}, n)
    if abstain and not passages:
        return None, "no_distractors"
    distractor_ids = [c.id for c in passages]
    if not abstain:
        for o in oracles:  # early enough to survive the budget cut, at a random rank as retrieval would put it
            passages.insert(rng.randint(0, min(2, len(passages))), o)
    sources = context(cand.question, passages, helper, {c.id for c in oracles} if abstain else set())
    answer = abstain_text(cand.question) if abstain else compose(cand, oracles, sources)
    if abstain and any(normalize(cand.quote) in normalize(s.text) for s in sources):
        return None, "oracle_leak"
    record = Record(cand.question, answer, cand.kind, teacher, oracle.doc_id, oracle.path, oracle.title, oracle.id,
                    [c.id for c in oracles], distractor_ids, abstain, cand.quote, cand.rating, shown_sources(sources))
    return record, ("" if abstain or supported(record) else "unsupported")


def compose(cand, oracles: list, sources: list[Source]) -> str:
    """The target: the candidate's lead, then the oracle's words in quotes with their [n]."""
    number = {s.chunk.id: s.n for s in sources if not s.term}
    if any(o.id not in number for o in oracles):
        return ""
    if cand.second is not None:
        return f'"{cand.quote}" [{number[oracles[0].id]}], whereas "{cand.second_quote}" [{number[oracles[1].id]}]'
    return f'{cand.short} "{cand.quote}" [{number[oracles[0].id]}]'.strip()


def supported(record: Record) -> bool:
    """Every citation is a quote found verbatim in the source as shown, and the oracle is cited."""
    if not record.answer:
        return False
    shown = {s["n"]: s["text"] for s in record.sources}
    citations = check_citations(record.answer, shown)
    oracle_ns = {s["n"] for s in record.sources if s["chunk_id"] in record.oracle_ids and not s["term"]}
    return bool(citations) and all(c.status == "verified quote" for c in citations) \
        and oracle_ns <= {c.n for c in citations}


def shape_problem(cand, oracle_text: str, config) -> str:
    """The length and language filters: '' when the candidate passes."""
    q_words = len(words(cand.question))  # CJK characters count as words
    if q_words < config.min_question_words or not cand.quote.strip():
        return "too_short"
    answer_words = len(words(f"{cand.short} {cand.quote} {cand.second_quote}"))
    if q_words > config.max_question_words or answer_words > config.max_answer_words:
        return "too_long"
    expected = script(oracle_text)
    if script(cand.question) != expected or script(cand.short + " " + cand.quote) not in (expected, "other"):
        return "wrong_language"
    return ""
