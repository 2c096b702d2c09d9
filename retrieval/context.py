"""The context a model reads: retrieved passages under a token budget, numbered as sources.

One builder for answering (``ragqa.answer``) and for training data (``finetune``), so a tuned
model sees at training time exactly the layout it gets at answer time.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from ragqa.citations import content_words
from ragqa.text import (SYSTEM_RAG, YES_NO_HINT, as_request, cjk_count, is_chinese, is_yes_no,  # noqa: F401 (re-exported)
                        opens_list, split_sentences)
from retrieval.embed import reads

# SYSTEM_RAG (ragqa.text, where replies are checked against it too) is the instruction with sources
SYSTEM_BARE = "You answer questions about research papers and technical topics accurately and concisely."
ABSTAIN = "I could not find this in the indexed documents."
ABSTAIN_ZH = "在已索引的文档中没有找到答案。"
IN_CHINESE = " Answer in Chinese."  # added to the instruction for a question written in Chinese


def abstain_text(question: str) -> str:
    """The abstention sentence, in the question's language."""
    return ABSTAIN_ZH if is_chinese(question) else ABSTAIN


_HEADING = re.compile(r"^#{1,6}\s+[^\n]*\n?", re.MULTILINE)


@dataclass
class Source:
    n: int  # the number the prompt and citations use
    chunk: object  # retrieval.store.Chunk
    text: str  # what the prompt showed (the passage, possibly cut to the budget)
    score: float = 0.0  # retrieval score (RRF in hybrid mode)
    dense: float | None = None  # cosine similarity to the retrieval query
    term: str = ""  # for background sources: the specialized term it explains

    @property
    def label(self) -> str:
        return self.chunk.location


def fit_sources(hits, generator, budget: int) -> list[Source]:
    """Retrieved passages in rank order, the last one cut at a sentence to fit ``budget`` tokens."""
    sources, used = [], 0
    for hit in hits:
        text = prompt_text(hit.chunk.text)
        tokens = generator.count_tokens(text)
        if used + tokens > budget:
            text = cut(text, budget - used, generator)
            if not text:
                break
            tokens = generator.count_tokens(text)
        sources.append(Source(len(sources) + 1, hit.chunk, text, hit.score, hit.dense))
        used += tokens
    return sources


def prompt_text(text: str) -> str:
    """A passage as the model sees it: one line, without Markdown heading marks (the section is
    in the source header already, and small models copied the '##' lines into their answers)."""
    return " ".join(_HEADING.sub("", text).split())


def cut(text: str, budget: int, generator) -> str:
    """The longest run of whole sentences from the start of ``text`` within ``budget`` tokens."""
    if budget < 24:
        return ""
    out = ""
    for part in split_sentences(text):
        candidate = f"{out} {part}".strip()
        if generator.count_tokens(candidate) > budget:
            break
        out = candidate
    return out


# One worked example, shown before the real question when the answer has sources (`answer.example`): a
# question answered in a sentence that restates it in the sources' own words. On a topic no paper is about,
# so that nothing of it can pass for an answer about the user's documents.
EXAMPLE = [{"role": "user", "content": """Sources:

[1] (heat-pumps.pdf, p. 3)
A heat pump moves heat from a cold place to a warm one by compressing a refrigerant. The ratio of heat \
delivered to electricity used is its coefficient of performance (COP). Typical air-source units reach a COP \
of 3 to 4 in mild weather.

[2] (boilers.pdf, p. 7)
A gas boiler burns fuel to heat water, with efficiencies of about 90%.

Question: How efficient are air-source heat pumps in mild weather?"""},
           {"role": "assistant", "content": "In mild weather, air-source heat pumps reach a coefficient of "
            "performance (COP) of 3 to 4, so they deliver three to four times as much heat as the electricity "
            "they use."}]


def build_messages(question: str, sources: list[Source], history: list[tuple[str, str]],
                   turns: int, use_retrieval: bool, system: str | None = None,
                   yes_no_hint: bool = False, example: bool = False) -> list[dict]:
    """System prompt, recent turns, then the sources block and the question.

    ``system`` replaces the default instruction (``answer.system`` in the config); ``yes_no_hint``
    asks a yes/no question to be answered "Yes" or "No" first; ``example`` shows the worked
    ``EXAMPLE`` first (with retrieval, and not before a Chinese question: it is in English).
    """
    question = as_request(question)
    if yes_no_hint and is_yes_no(question):
        question += " " + YES_NO_HINT
    instruction = system or (SYSTEM_RAG if use_retrieval else SYSTEM_BARE)
    messages = [{"role": "system", "content": instruction + (IN_CHINESE if is_chinese(question) else "")}]
    if example and use_retrieval and not is_chinese(question):
        messages += EXAMPLE
    for q, a in history[-turns:] if turns > 0 else []:
        messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    if not use_retrieval:
        return messages + [{"role": "user", "content": question}]
    retrieved = [s for s in sources if not s.term]
    blocks = ["Sources:"] + [f"[{s.n}] ({s.label})\n{s.text}" for s in retrieved]
    if terms := [s for s in sources if s.term]:
        blocks += ["Background on terms in the question:"]
        blocks += [f"[{s.n}] {s.term} ({s.label})\n{s.text}" for s in terms]
    return messages + [{"role": "user", "content": "\n\n".join(blocks) + f"\n\nQuestion: {question}"}]


def rank_sentences(question: str, sentences: list[str], embedder=None, hybrid: bool = True,
                   cosine=None, unreadable: bool = False) -> list[tuple[int, float]]:
    """Indexes of ``sentences`` best first, with their cosine to ``question`` (computed with
    ``embedder`` unless given as ``cosine``; ``unreadable``: the given cosines came from an embedder
    that cannot read the question, and are left out).

    ``hybrid`` fuses the embedder's cosine ranking with a lexical one (question words the sentence
    shares, weighted by how rare they are among the candidates) by reciprocal rank, as retrieval
    fuses dense and BM25: MiniLM alone ranked "the BERT model is first initialized with the
    pre-trained parameters" above "we pre-train BERT using two unsupervised tasks".
    """
    if cosine is None:
        vectors = embedder.embed_batch([question] + sentences)
        cosine = vectors[1:] @ vectors[0]
        unreadable = not reads(embedder, question)  # mostly [UNK]: its cosines are noise
    dense = sorted(range(len(sentences)), key=lambda i: -cosine[i])
    if not hybrid and not unreadable:
        return [(i, float(cosine[i])) for i in dense]
    words = [content_words(s) for s in sentences]
    df = Counter(w for ws in words for w in ws)
    asked = content_words(question)
    lexical = [sum(math.log(1 + len(sentences) / df[w]) for w in asked & ws) for ws in words]
    by_words = sorted(range(len(sentences)), key=lambda i: -lexical[i])
    if unreadable:  # shared words alone rank (Chinese under MiniLM)
        return [(i, float(cosine[i])) for i in by_words]
    fused = Counter()
    for ranking in (dense, by_words):
        for rank, i in enumerate(ranking):
            fused[i] += 1 / (60 + rank + 1)
    return [(i, float(cosine[i])) for i, _ in fused.most_common()]


def _pool(sources: list[Source], min_words: int = 5) -> list[tuple[int, str]]:
    """(source number, sentence) for the sentences of the retrieved passages long enough to quote
    (Chinese has no spaces: two characters count as a word)."""
    return [(s.n, sentence) for s in sources if not s.term for sentence in split_sentences(s.text)
            if len(sentence.split()) + cjk_count(sentence) // 2 >= min_words]


def _quotes(sources: list[Source], pool: list[tuple[int, str]]) -> list[str]:
    """Each ``pool`` sentence as it would be quoted: ranked with its glued heading (the heading's words
    match questions: "Task #1: Masked LM Intuitively, ..."), quoted without it."""
    chunk = {s.n: getattr(s, "chunk", None) for s in sources}
    return [unglue(sentence, chunk[n]) for n, sentence in pool]


def unglue(sentence: str, chunk) -> str:
    """``sentence`` without what PDF layout glued to its front: the section heading a section's first
    sentence follows ("3 A MULTITASK TEST We create ...", a heading wrapped onto short lines included)
    or a footnote mark on a line of its own ("3\nWe primarily report ..."); 8 of 99 dev lead quotes
    opened so. Only what stood on lines of its own goes; the rest stays verbatim."""
    section, text = getattr(chunk, "section", ""), getattr(chunk, "text", "")
    mark = re.match(r"\d{1,2}(?= )", sentence)
    for head in (section, mark[0] if mark else ""):
        at = re.search(rf"(^|\n){re.escape(head)}[ \t]*\n", text) if head and sentence.startswith(head + " ") else None
        if at:
            sentence = _after_lines(sentence[len(head) + 1:], text[at.end():]) or sentence
    return sentence


def _after_lines(rest: str, following: str) -> str:
    """``rest`` past the short unpunctuated lines that open ``following`` (a heading's second line);
    "" unless the line after them opens ``rest`` (the heading stood right before this sentence)."""
    for line in (line.strip() for line in following.split("\n")):
        if len(line.split()) >= 5 or line.endswith((".", "!", "?", ":")) or not rest.startswith(line + " "):
            return rest if line and rest.split(" ", 1)[0] == line.split(" ", 1)[0] else ""
        rest = rest[len(line) + 1:]
    return ""


_POINTER = re.compile(r"^(?:Table|Figure|Fig\.|Tab\.)\s*\S+\s+(?:\S+\s+){0,2}?(?:shows?|presents?|lists?|reports?|"
                      r"summari[sz]es|illustrates?|gives?|depicts?|displays?|compares?)\b", re.IGNORECASE)


# a sentence that announces what the text will say rather than saying it ("In the rest of this paper, we
# present an overview of the modifications we made to the transformer architecture.")
_ANNOUNCE = re.compile(r"\b(?:the (?:rest|remainder) of (?:this|the) (?:paper|section|article)|in this section"
                       r"|in the following(?: sections?)?|as follows)\b.*\b(?:present|describ|discuss|introduc|outlin"
                       r"|detail|explain|review|summari[sz]|overview)", re.IGNORECASE)


def quotable(sentence: str) -> bool:
    """Whether a sentence can stand alone as a quote: not the tail of a sentence cut at a chunk's start
    (", can be viewed as the task of ..."), not a pointer to a table or figure with nothing of its
    content ("Table TABREF13 presents statistics on our dataset."), nor an announcement of what follows
    (``_ANNOUNCE``) or the opening of a list ("We make the following changes:"), and prose (``prose``)."""
    word = sentence.lstrip("\"“'(").split(" ", 1)[0]
    if not word or not (word[0].isalnum() or cjk_count(word[0])):
        return False
    bare = word.rstrip(",;:.")
    if bare.isalpha() and bare.islower():  # "can", "domains,": a tail; "word2vec", "fastText" start sentences
        return False
    if opens_list(sentence) or _ANNOUNCE.search(sentence):
        return False
    return not (_POINTER.match(sentence) and len(sentence.split()) <= 12) and prose(sentence)


_FUNCTION = frozenset("a an the of to in on for with by as at from and or but is are was were be been this that "
                      "these those it its we our their which can not than into such also has have".split())
_NUMBER = re.compile(r"[(\[]?[-+±]?\d[\d.,/:±×x%]*[)\],;:.%]*")
_EMAIL = re.compile(r"\w@\w+\.\w|\}@\w")  # "{htouvron, thibautlav}@meta.com"


def prose(sentence: str) -> bool:
    """Whether an English sentence reads as prose rather than what PDF text extraction also yields
    between sentences: a title with its author list ("LLaMA: Open and Efficient Foundation Language
    Models Hugo Touvron∗ , Thibaut Lavril∗ , ..."), an affiliation or e-mail line, a table row of
    numbers ("8% 71.4% 83.0% 28.0% ..."), or a question the text asks itself ("Is PAL better because of
    the Python prompt or because of the interpreter?"). Such sentences led 5 of 71 ARAGOG dev answers.
    Text in other scripts is left alone."""
    words = sentence.split()
    if cjk_count(sentence) or len(words) < 5:
        return True
    if sentence.rstrip("\"”')").endswith("?") or _EMAIL.search(sentence):
        return False
    function = sum(w.lower().strip(",.;:()\"“”") in _FUNCTION for w in words) / len(words)
    is_number = [bool(_NUMBER.fullmatch(w)) for w in words]  # "71.4%", "2018)," (not "GPT-3")
    # a table's cells run into the caption after them ("8% 71.4% 83.0% 28.0% ... Accuracy of the filtering model")
    opens_with_cells = all(is_number[:4])
    return sum(is_number) / len(words) < 0.4 and not opens_with_cells and (function >= 0.05 or len(words) < 8)


def best_sentences(question: str, sources: list[Source], embedder, n: int = 1,
                   hybrid: bool = False) -> list[tuple[int, str, float]]:
    """The ``n`` sentences of the retrieved sources closest to ``question`` by the embedder's cosine
    (``hybrid``: and its words), as (source number, sentence, cosine), best first.

    This is the copy-one-sentence yardstick every answer is measured against, and the quote an
    answer can lead with: a sentence from the passage, verbatim, that a reader can check.
    """
    pool = _pool(sources)
    quotes = _quotes(sources, pool)
    keep = [i for i, quote in enumerate(quotes) if quotable(quote)]
    if not keep:
        return []
    ranked = rank_sentences(question, [pool[i][1] for i in keep], embedder, hybrid)[:n]
    return [(pool[keep[i]][0], quotes[keep[i]], score) for i, score in ranked]


def focus_sources(question: str, sources: list[Source], embedder, budget: int,
                  count_tokens) -> tuple[list[Source], tuple[int, str] | None]:
    """The retrieved passages cut down to their sentences that best match the question, within
    ``budget`` tokens in all, each kept in its passage's order; passages left with nothing are
    dropped and the rest renumbered 1..m. Also returns the best of the kept sentences as
    (new source number, sentence): the lead quote, ranked without embedding anything again.

    A 135M model reads a few relevant sentences better than three whole passages, and the prompt
    it must read first shrinks about threefold.
    """
    pool = _pool(sources)
    if not pool:
        return sources, None
    ranked = rank_sentences(question, [sentence for _, sentence in pool], embedder)
    chosen, used = [], 0
    for idx, _ in ranked:
        tokens = count_tokens(pool[idx][1])
        if used + tokens <= budget or not chosen:
            chosen.append(idx)
            used += tokens
    renumber, out = {}, []
    for s in (s for s in sources if not s.term):
        kept = [pool[i][1] for i in sorted(chosen) if pool[i][0] == s.n]
        if kept:
            renumber[s.n] = len(out) + 1
            out.append(Source(len(out) + 1, s.chunk, " ".join(kept), s.score, s.dense))
    # the lead is ranked among the kept quotable sentences alone, with the cosines already computed
    cosine = dict(ranked)
    quotes = _quotes(sources, pool)
    kept = [i for i in sorted(chosen) if quotable(quotes[i])]
    if not kept:
        return out, None
    top = rank_sentences(question, [pool[i][1] for i in kept], cosine=[cosine[i] for i in kept],
                         unreadable=not reads(embedder, question))[0][0]
    return out, (renumber[pool[kept[top]][0]], quotes[kept[top]])
