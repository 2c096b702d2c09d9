"""The one answer pipeline behind ``ragqa ask``, ``ragqa chat``, the web UI and evaluation.

retrieve (with the conversation folded into follow-up questions) → abstain if nothing is
relevant enough → rerank by the likelihood of the question (UPR) → background for the question's
specialized terms → prompt in the model's chat template, under token budgets → streamed generation
→ the passage sentence backing the reply, quoted after it → citation check and evidence.
"""
from __future__ import annotations

import math
import re
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, Iterator

from ragqa.citations import Citation, Evidence, check_citations, find_evidence, without_markers
from ragqa.config import AnswerConfig
from ragqa.errors import RagqaError
from ragqa.generators import BatchGenerator, ScoringGenerator
from ragqa.reply import (NO_REPLY, NO_REPLY_ZH, held_words, reply_complete, shape,  # noqa: F401 (shape re-exported)
                         before_refused_figure, unheld_figures)
from ragqa.text import CJK_RUN, figures
from retrieval.context import (ABSTAIN, Source, abstain_text, best_sentences, build_messages, fit_sources, focus_sources,
                               is_chinese)

_FOLLOW_UP = re.compile(r"\b(it|its|they|them|their|this|that|these|those|he|she|his|her|the former|"
                        r"the latter|the same|above|previous|earlier)\b|^(and|but|also|what about|how about|why)\b",
                        re.IGNORECASE)


@dataclass
class Answer:
    question: str
    text: str
    sources: list[Source] = field(default_factory=list)  # retrieved first, then background
    citations: list[Citation] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    terms: list[dict] = field(default_factory=list)  # {term, kind, source} for each term detected
    abstained: bool = False
    # the quoted source sentence the answer rests on (answer.lead_quote), cited: after the reply, backing it
    # (answer.quote_backs_reply), or opening the answer
    lead: str = ""
    quote: str = ""  # that sentence alone, as the source has it (reply sentences repeating it are dropped)
    retrieval: bool = True
    query: str = ""  # what retrieval searched for (the question, or its follow-up rewrite)
    model: str = ""
    timings: dict = field(default_factory=dict)  # retrieval_ms, prompt_tokens, ttft_s, tokens, tokens_per_s

    def timing_line(self) -> str:
        """Retrieval ms, prompt size, first token and speed, as shown under every answer."""
        t = self.timings
        if self.abstained:
            return f"retrieval {t.get('retrieval_ms', 0):.0f} ms · nothing relevant enough: the model was not called"
        if t.get("quote_only"):
            return (f"retrieval {t.get('retrieval_ms', 0):.0f} ms · {self.model} barely reads this script "
                    f"({t['quote_only']} tokens per character): the answer is the best passage sentence, "
                    "the model was not called")
        fallback = " (its adapter's reply said nothing: answered untuned)" if t.get("untuned_fallback") else ""
        looped = " · the reply began repeating itself and was stopped" if t.get("loop_stops") else ""
        looped += (" · the reply ends before a sentence giving a figure its sources do not hold"
                   if t.get("figure_cut") else "")
        reranked = f" (reranking {t['rerank_ms']:.0f} ms)" if t.get("rerank_ms") else ""
        return (f"retrieval {t.get('retrieval_ms', 0):.0f} ms{reranked} · prompt {t.get('prompt_tokens', 0)} tokens · "
                f"first token {t.get('ttft_s') or 0:.2f} s · {t.get('tokens_per_s') or 0:.1f} tokens/s · "
                f"{t.get('tokens', 0)} tokens · {self.model}{fallback}{looped}")

    @property
    def display(self) -> str:
        """What a reader is shown: the text, or a notice when the model's whole reply was left out as
        empty (``answer.drop_empty``) and no lead quote stands in for it; ``text`` stays empty, so
        evaluation scores nothing rather than the notice."""
        return self.text or (NO_REPLY_ZH if is_chinese(self.question) else NO_REPLY)

    @property
    def reply(self) -> str:
        """The model's own words: the text without the quote."""
        return self.text.replace(self.lead, "").strip() if self.lead else self.text

    def source(self, n: int) -> Source | None:
        return next((s for s in self.sources if s.n == n), None)

    @property
    def primary_source(self) -> Source | None:
        """The source the answer rests on: its first sound citation, else its first evidence."""
        for c in self.citations:
            if c.ok:
                return self.source(c.n)
        return self.source(self.evidence[0].source) if self.evidence else None

    def to_dict(self) -> dict:
        return {"question": self.question, "answer": self.text, "abstained": self.abstained,
                "retrieval": self.retrieval, "query": self.query, "model": self.model,
                "citations": [vars(c) for c in self.citations], "evidence": [vars(e) for e in self.evidence],
                "terms": self.terms, "timings": self.timings,
                "sources": [{"n": s.n, "label": s.label, "score": s.score, "dense": s.dense, "term": s.term,
                             "doc_id": s.chunk.doc_id, "chunk_id": s.chunk.id, "path": s.chunk.path,
                             "page": s.chunk.page, "section": s.chunk.section, "text": s.text}
                            for s in self.sources]}


def retrieval_query(question: str, history: list[tuple[str, str]], turns: int = 2) -> str:
    """The question, with recent user turns prepended when it reads as a follow-up."""
    if not history or turns <= 0:
        return question
    content = [w for w in re.findall(r"\w+", question.lower()) if len(w) > 2]
    if not _FOLLOW_UP.search(question) and len(content) >= 4:
        return question
    previous = [q for q, _ in history[-turns:]]
    return " ".join(previous + [question])


def check_question(question: str, config: AnswerConfig) -> str:
    question = question.strip()
    if not question:
        raise RagqaError("empty question — type a question, e.g. ragqa ask \"What is LoRA?\"")
    if len(question) > config.max_question_chars:
        raise RagqaError(f"question of {len(question)} characters is too long — keep it under "
                         f"{config.max_question_chars} (answer.max_question_chars)")
    return question


def stream_answer(question: str, generator, retriever=None, config: AnswerConfig | None = None,
                  history: list[tuple[str, str]] | None = None, use_retrieval: bool = True,
                  k: int | None = None, doc: str | None = None) -> Iterator[str | Answer]:
    """Yield the answer's text pieces as they are generated, then the finished ``Answer``.

    ``doc`` restricts retrieval to one document (id, file name or title), as QASPER asks.
    """
    result, messages = prepare(question, generator, retriever, config, history, use_retrieval, k, doc)
    config = config or AnswerConfig()
    if messages is None:  # abstained or quote-only: nothing to generate
        yield result.text
    elif _backs_reply(result, config):  # the quote is chosen once the reply is written, and follows it
        shown = False
        for piece in _generate(result, generator, messages, config):
            shown = True
            yield piece
        quote = back_quote(result, retriever.embedder, config)
        # a reply that showed and was then left out whole (a figure its sources lack) is set apart from the quote
        yield quote if not shown or quote.startswith("\n\n") else f"\n\n{quote}"
    else:
        if result.lead:  # known before the model runs: the reader sees the evidence at once
            yield result.lead + "\n\n"
        yield from _generate(result, generator, messages, config)
    yield finish(result)


def prepare(question: str, generator, retriever=None, config: AnswerConfig | None = None,
            history: list[tuple[str, str]] | None = None, use_retrieval: bool = True,
            k: int | None = None, doc: str | None = None) -> tuple[Answer, list[dict] | None]:
    """Everything before generation: the ``Answer`` so far and the chat to send (None when the model is not
    asked: abstained, or answered by the lead quote alone)."""
    config, history = config or AnswerConfig(), history or []
    question = check_question(question, config)
    result = Answer(question, "", retrieval=use_retrieval and retriever is not None, model=generator.name)
    started = time.perf_counter()
    ask_model = _retrieve(result, retriever, generator, config, history, k, doc) if result.retrieval else True
    result.timings["retrieval_ms"] = round(1000 * (time.perf_counter() - started), 1)
    if not ask_model:
        return result, None
    messages = build_messages(question, result.sources, history, config.history_turns, result.retrieval,
                              (config.system if result.retrieval else "") or None, config.yes_no_hint, config.example)
    result.timings["prompt_tokens"] = generator.count_tokens("\n".join(m["content"] for m in messages))
    return result, messages


def finish(result: Answer) -> Answer:
    """Prefix the lead quote (unless it is in the text already), check the text's citations and attach evidence."""
    if result.lead and result.lead not in result.text:
        result.text = f"{result.lead}\n\n{result.text}".strip()
    if not result.abstained:
        full = {s.n: s.chunk.text for s in result.sources}
        result.citations = check_citations(result.text, full)
        result.evidence = find_evidence(result.text, full)
    return result


def answer(question: str, generator, retriever=None, **kwargs) -> Answer:
    """``stream_answer`` without the streaming: the finished ``Answer``."""
    *_, result = stream_answer(question, generator, retriever, **kwargs)
    return result


def answer_batch(questions: list[str], generator, retriever=None, batch_size: int = 8,
                 docs: list[str | None] | None = None, **kwargs) -> list[Answer]:
    """Many questions at once (evaluation, data generation): prompts are generated in batches.

    Decoding reads every weight once per step whatever the batch: 8 answers without retrieval took
    3.6 s batched against 27.6 s one by one (18.8 vs 11.7 s with retrieval's longer prompts).
    Generators without ``generate_batch`` answer one by one. ``docs`` scopes each question's retrieval.
    """
    docs = docs or [None] * len(questions)
    config = kwargs.get("config") or AnswerConfig()
    prepared = [prepare(q, generator, retriever, doc=d, **kwargs) for q, d in zip(questions, docs)]
    todo = [(r, m) for r, m in prepared if m is not None]
    _reply_batches(todo, generator, config, batch_size)
    if empty := [(r, m) for r, m in todo if not r.text and _falls_back(generator, config)]:
        with generator.untuned():
            _reply_batches(empty, generator, config, batch_size, fallback=True)
    for result in (r for r, _ in todo if _backs_reply(r, config)):
        back_quote(result, retriever.embedder, config)
    return [finish(r) for r, _ in prepared]


def _backs_reply(result: Answer, config: AnswerConfig) -> bool:
    """Whether the answer's quote is chosen after its reply (``answer.quote_backs_reply``); a retrieved answer
    has a quote to replace only when ``answer.lead_quote`` found one."""
    return config.quote_backs_reply and bool(result.quote)


def _lead_while_generating(result: Answer, config: AnswerConfig) -> str:
    """The quote reply sentences are compared with while generating (said again, they say nothing): none yet
    when the quote is chosen after the reply."""
    return "" if _backs_reply(result, config) else result.quote


def back_quote(result: Answer, embedder, config: AnswerConfig) -> str:
    """Make the answer's quote the passage sentence closest to the question and the reply together, placed
    after the reply; returns what a stream has still to show.

    The sentence closest to the question alone is often on the topic without saying what the reply says
    ("How big is the dataset?": the paper's aim, where the reply gives 14,100 tweets); ranked with the reply, the
    quote is the evidence for it, as a reader checking the answer wants. A reply sentence saying the quote again
    is left out (a stream showed it already; the chat's final message and the result leave it out); a reply left
    empty, the quote closest to the question answers alone.
    """
    said = bool(result.text)
    if said:
        query = f"{result.question} {without_markers(result.text)}"  # a marker has no words to match by
        best = best_sentences(query, result.sources, embedder, 1, hybrid=True)  # quotes no term background
        if best:
            n, quote, _ = best[0]
            result.quote, result.lead = quote, f'"{quote}" [{n}]'
            result.text = shape(result.text, result.question, config, lead=quote)
    result.text = f"{result.text}\n\n{result.lead}".strip()
    return f"\n\n{result.lead}" if said else result.lead


def _reply_batches(todo: list[tuple[Answer, list[dict]]], generator, config: AnswerConfig, batch_size: int,
                   fallback: bool = False) -> None:
    for start in range(0, len(todo), batch_size):
        part = todo[start:start + batch_size]
        began, held = time.perf_counter(), [_held(r, config) for r, _ in part]
        if isinstance(generator, BatchGenerator):
            # each row stops where streaming would: the reply complete (answer.max_sentences) or echoing sources
            done = [lambda raw, r=r, h=h: reply_complete(raw, r.question, config, _lead_while_generating(r, config), h)
                    for (r, _), h in zip(part, held)]
            with _numbers_from_sources(generator, [r for r, _ in part], config):
                texts = generator.generate_batch([m for _, m in part], done=done)
            looped = getattr(generator, "looped", [False] * len(part))
            cuts = getattr(generator, "number_cuts", None) or [[]] * len(part)
        else:
            texts, looped, cuts = [], [], []
            for result, m in part:
                with _numbers_from_sources(generator, [result], config):
                    reply = generator.generate(m)
                texts.append("".join(reply))
                looped += getattr(generator, "looped", [False])
                cuts.append(_cuts_of(reply, generator))
        share = (time.perf_counter() - began) / len(part)
        for (result, _), text, cut, refused, words in zip(part, texts, looped, cuts, held):
            _count_loop(result, cut)
            kept = _before_refused_figure(result, text, _figure_cuts(result, generator, config)(text, refused))
            result.text = shape(kept, result.question, config, lead=_lead_while_generating(result, config), held=words)
            tokens = generator.count_tokens(text) if text else 0
            if fallback:  # the tuned reply's cost counts too
                result.timings.update(untuned_fallback=True, tokens=result.timings["tokens"] + tokens,
                                      total_s=round(result.timings["total_s"] + share, 3))
            else:
                result.timings.update(tokens=tokens, total_s=round(share, 3), batched=len(part))


def _figure_cuts(result: Answer, generator, config: AnswerConfig) -> Callable[[str, list[str]], list[str]]:
    """Where a reply (so far) was refused a figure, from it and the cuts its generator recorded: those cuts, or
    for a generator that cannot hold digits back (a server) the reply read against the figures of the sources and
    question (read once, not at every piece streamed): before each one they lack."""
    if not (_from_sources(config, [result]) and not hasattr(generator, "numbers_from")):
        return lambda raw, recorded: recorded
    held = figures(_given(result))
    return lambda raw, recorded: unheld_figures(raw, held)


def _cuts_of(stream, generator) -> list[str]:
    """The refused figures of a streamed reply: its own ``number_cuts`` (an in-process model's stream, filled as
    it is written), else the generator's last call's (a reply that came whole)."""
    rows = getattr(stream, "number_cuts", None) or getattr(generator, "number_cuts", None) or []
    return [cut for row in rows for cut in row]


def _before_refused_figure(result: Answer, raw: str, cuts: list[str]) -> str:
    """``ragqa.reply.before_refused_figure``, noted in the timings (the line under the answer says a sentence
    the stream began to show was left out)."""
    kept = before_refused_figure(raw, cuts)
    if kept != raw:
        result.timings["figure_cut"] = result.timings.get("figure_cut", 0) + 1
    return kept


def _count_loop(result: Answer, looped: bool) -> None:
    """Count a reply the generator's loop stop cut (``timings["loop_stops"]``: the tuned reply's and
    the untuned fallback's), so evaluation and the line under an answer can say which answers looped."""
    if looped:
        result.timings["loop_stops"] = result.timings.get("loop_stops", 0) + 1


def _falls_back(generator, config: AnswerConfig) -> bool:
    """Whether an empty reply is asked again of the untuned model (``answer.untuned_fallback``)."""
    return config.untuned_fallback and getattr(generator, "tuned", False)


def _retrieve(result: Answer, retriever, generator, config: AnswerConfig, history, k: int | None,
              doc: str | None) -> bool:
    """Sources, lead quote and background into ``result``; False when the model is not to be asked
    (nothing relevant: abstained; a script the model barely reads: answered by the lead quote)."""
    question = result.question
    result.query = retrieval_query(question, history, config.history_turns)
    k = k or config.k
    hits = retriever.search(result.query, k=max(k, config.rerank_depth), doc=doc)
    if _nothing_relevant(hits[:k], config, doc):
        hits = hits[:k]
        result.sources = fit_sources(hits, generator, config.context_tokens)
        _abstain(result)
        return False
    quote_only = _unread_script(question, generator, config.quote_only_above) if config.lead_quote else 0.0
    # a model that barely reads the question's script would rerank by noise
    hits = hits[:k] if quote_only else _reranked(result, hits, generator, config, k)
    # the model reads no source of a quote-only answer: the lead is sought in the whole passages
    result.sources, best = _sources_and_lead(question, hits, generator, retriever.embedder, config,
                                             math.inf if quote_only else config.context_tokens)
    if quote_only and not best:  # nothing quotable: the model answers after all, from sources within its budget
        quote_only = 0.0
        result.sources, best = _sources_and_lead(question, hits, generator, retriever.embedder, config,
                                                 config.context_tokens)
    if config.lead_quote and best:  # the passage sentence the answer rests on, quoted and cited
        result.quote, result.lead = best[1], f'"{best[1]}" [{best[0]}]'
    if quote_only:
        result.text, result.timings["quote_only"] = result.lead, quote_only
        return False
    _add_background(result, retriever, generator, config, doc)
    return True


def _reranked(result: Answer, hits: list, generator, config: AnswerConfig, k: int) -> list:
    """The first ``k`` of ``hits`` after ``rerank_by_model`` (``answer.rerank_depth``), timed."""
    if not config.rerank_depth or not isinstance(generator, ScoringGenerator):
        return hits[:k]
    started = time.perf_counter()
    hits = rerank_by_model(result.query, hits, generator)
    result.timings["rerank_ms"] = round(1000 * (time.perf_counter() - started), 1)
    return hits[:k]


def rerank_by_model(question: str, hits: list, generator: ScoringGenerator) -> list:
    """``hits`` reordered by the likelihood of ``question`` after each (``retrieval.rerank``), scored by
    ``generator`` with its adapter off: the reranker is the base model, whatever adapter answers."""
    from retrieval.rerank import rerank

    with generator.untuned():
        return rerank(question, hits, generator.loglik_batch)


def _sources_and_lead(question: str, hits, generator, embedder, config: AnswerConfig,
                      budget: float) -> tuple[list[Source], tuple[int, str] | None]:
    """The passages within ``budget`` generator tokens, focused on the question (``answer.focus_tokens``),
    and the sentence a lead quote would be, as (source number, sentence)."""
    sources = fit_sources(hits, generator, budget)
    if config.focus_tokens:
        return focus_sources(question, sources, embedder, config.focus_tokens, generator.count_tokens)
    if config.lead_quote:
        return sources, next(iter(best_sentences(question, sources, embedder, 1, hybrid=True)), None)
    return sources, None


def _unread_script(question: str, generator, limit: float) -> float:
    """The model's tokens per CJK character of ``question`` when above ``limit`` (its tokenizer, hence its
    training, barely covers the script: it would answer noise), else 0."""
    cjk = "".join(CJK_RUN.findall(question))
    if not limit or len(cjk) < 4:
        return 0.0
    per_char = generator.count_tokens(cjk) / len(cjk)
    return round(per_char, 2) if per_char > limit else 0.0


def _nothing_relevant(hits, config: AnswerConfig, doc: str | None) -> bool:
    """Abstain when the best cosine is below the threshold; a query the embedder cannot read (no
    cosine: search used BM25 alone) abstains only when no passage shares a term with it."""
    cosines = [h.dense for h in hits if h.dense is not None]
    if not cosines:
        return not any(h.bm25 for h in hits)
    return max(cosines) < (config.abstain_below_scoped if doc else config.abstain_below)


def _abstain(result: Answer) -> None:
    result.abstained = True
    closest = "; ".join(f"[{s.n}] {s.label}" for s in result.sources[:3])
    result.text = abstain_text(result.question) + (f" Closest sources: {closest}." if closest
                                                   else " The index holds no passages.")


def _add_background(result: Answer, retriever, generator, config: AnswerConfig, doc: str | None = None) -> None:
    from retrieval.terms import background, find_terms

    terms = find_terms(result.question, retriever.vocabulary(), config.max_terms)
    extra = background(result.question, retriever, config.background_tokens, config.max_terms,
                       generator.count_tokens, skip_chunks={s.chunk.id for s in result.sources}, terms=terms,
                       doc=doc)
    by_term = {b.term.text: b for b in extra}
    for term in terms:
        n = None
        if (b := by_term.get(term.text)) is not None:
            n = len(result.sources) + 1
            result.sources.append(Source(n, b.chunk, b.text, term=term.text))
        result.terms.append({"term": term.text, "kind": term.kind, "source": n, "corpus_df": term.corpus_df})


def _generate(result: Answer, generator, messages: list[dict], config: AnswerConfig) -> Iterator[str]:
    """Stream the shaped reply; one the tuned model left empty is asked again of the untuned model
    (``answer.untuned_fallback``): nothing of the first was shown, since empty sentences are held back."""
    start, shown = time.perf_counter(), False
    for piece in _stream_reply(result, generator, messages, config):
        shown = True
        yield piece
    if not result.text and _falls_back(generator, config):
        tokens, ttft = result.timings["tokens"], result.timings["ttft_s"]
        if shown:  # a sentence that turned out empty only once complete stays on screen: set apart
            yield "\n\n"
        with generator.untuned():
            yield from _stream_reply(result, generator, messages, config)
        # both replies count: the reader waited for the first token of the first, and for all tokens of both
        tokens, total = tokens + result.timings["tokens"], time.perf_counter() - start
        result.timings.update(untuned_fallback=True, tokens=tokens, ttft_s=ttft, total_s=round(total, 3),
                              tokens_per_s=round((tokens - 1) / (total - ttft), 2) if tokens > 1 and total > ttft else None)


_OPEN_NUMBER = re.compile(r"\d[\d.,]*$")  # the number a stream is still writing


def _stream_reply(result: Answer, generator, messages: list[dict], config: AnswerConfig) -> Iterator[str]:
    start, first, raw, shown = time.perf_counter(), None, "", ""
    lead, held = _lead_while_generating(result, config), _held(result, config)
    stream = _reply_stream(result, generator, messages, config, held)
    refused = _figure_cuts(result, generator, config)
    for piece in stream:
        if first is None:
            first = time.perf_counter()
        raw += piece
        # a sentence whose figure was refused (or, from a server, is not the sources') shows no further, and a
        # number shows once whole: "has 17" was about to be refused, to become "175 billion"
        text = _OPEN_NUMBER.sub("", shape(before_refused_figure(raw, refused(raw, _cuts_of(stream, generator))),
                                          result.question, config, final=False, lead=lead, held=held))
        if text.startswith(shown) and len(text) > len(shown):
            yield text[len(shown):] if shown else text
            shown = text
        if reply_complete(raw, result.question, config, lead, held):
            stream.close()  # the answer is complete: stop the model rather than generate what is cut
            break
    end = time.perf_counter()
    _count_loop(result, any(getattr(generator, "looped", [])))
    # the reply ends before a sentence whose figure was refused (the stream showed its start: the text has it not)
    result.text = shape(_before_refused_figure(result, raw, refused(raw, _cuts_of(stream, generator))),
                        result.question, config, lead=lead, held=held)
    if result.text.startswith(shown) and len(result.text) > len(shown):
        yield result.text[len(shown):]
    tokens = generator.count_tokens(raw) if raw else 0  # what the model generated, shown or not
    since = start if _comes_whole(generator) else first  # a reply that came whole: its speed is over the wait
    result.timings.update(ttft_s=round((first or end) - start, 3), tokens=tokens, total_s=round(end - start, 3),
                          tokens_per_s=round((tokens - 1) / (end - since), 2) if since and tokens > 1 and end > since else None)


def _reply_stream(result: Answer, generator, messages: list[dict], config: AnswerConfig,
                  held: set[str] | None = None) -> Iterator[str]:
    """The model's reply as text pieces. A beam search (``generator.num_beams``) cannot stream: its reply
    comes whole, searched with the stop streaming would make (``reply_complete``), so the chat shows
    what ``answer_batch`` and evaluation score."""
    with _numbers_from_sources(generator, [result], config):  # read by the generator as the call is made
        if _comes_whole(generator):
            done = [lambda raw: reply_complete(raw, result.question, config, _lead_while_generating(result, config),
                                               held)]
            return (text for text in generator.generate_batch([messages], done=done) if text)
        return generator.generate(messages)


def _numbers_from_sources(generator, results: list[Answer], config: AnswerConfig):
    """The context in which replies written from sources state only numbers their sources or question hold
    (``answer.numbers_from_sources``), for generators that can hold digits back (in-process models). Without
    retrieval the model answers from memory, unconstrained (a batch is all one or the other)."""
    if not (_from_sources(config, results) and hasattr(generator, "numbers_from")):
        return nullcontext()
    return generator.numbers_from([_given(r) for r in results])


def _from_sources(config: AnswerConfig, results: list[Answer]) -> bool:
    """Whether these replies may state only their sources' and question's figures (``answer.numbers_from_sources``)."""
    return config.numbers_from_sources and all(r.retrieval and r.sources for r in results)


def _held(result: Answer, config: AnswerConfig) -> set[str] | None:
    """``ragqa.reply.held_words`` of an answer's question and sources (none with retrieval off)."""
    return held_words(_asked(result), [s.text for s in result.sources] if result.retrieval else [], config)


def _given(result: Answer) -> str:
    """What a reply's figures must come from: the question and the sources as the model was shown them."""
    return "\n".join([_asked(result), *(s.text for s in result.sources)])


def _asked(result: Answer) -> str:
    """What the user asked: the question, and for a follow-up the earlier questions it builds on (the retrieval
    query folds them in: "And its size?" after "What is BERT?"), whose words and figures the reply may use."""
    return result.query or result.question


def _comes_whole(generator) -> bool:
    """The generator beam-searches its replies (``generator.num_beams``), which cannot stream."""
    return getattr(generator, "beams", 1) > 1 and isinstance(generator, BatchGenerator)
