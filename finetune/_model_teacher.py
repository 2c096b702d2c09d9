"""A language model as teacher: the self-instruct prompt (statement + background), JSON lines back.

Any generator works: the offline default model, a Hugging Face model, or an OpenAI-compatible
server. A reply that yields no usable item is asked again a bounded number of times; after that
the chunk counts as unparseable and generation goes on.
"""
from __future__ import annotations

import json
import logging
import re

from finetune._teacher import Candidate
from ragqa.generators import greedy_replies
from retrieval.context import prompt_text

log = logging.getLogger("ragqa")

SYSTEM = "You write exam questions about a passage of a research paper, with answers copied from the passage."
KIND_TEXT = {
    "factual": "factual: an open question answered by the statement",
    "judgmental": "judgmental: a yes/no question; about half of them must have the answer no",
    "definition": "definition: what a specialized term of the statement means",
    "numeric": "numeric: a number with its unit reported in the statement",
    "comparison": "comparison: how two things in the statement differ",
}
_OBJECT = re.compile(r"\{[^{}]*\}", re.S)


def teacher_prompt(chunk, background: list, kinds: list[str]) -> list[dict]:
    """The self-instruct prompt: the chunk as the statement, its terms' background, the kinds asked."""
    parts = [f"Statement (from {chunk.title}, {chunk.location}):\n{prompt_text(chunk.text)}"]
    if background:
        parts.append("Background on specialized terms:\n" + "\n".join(f"- {b.term.text}: {b.text}" for b in background))
    parts.append("Write one question of each kind:\n" + "\n".join(f"- {KIND_TEXT[k]}" for k in kinds))
    parts.append('Reply with one JSON object per line: {"kind": "...", "question": "...", "answer": "short answer", '
                 '"quote": "exact words copied from the statement", "rating": 1-5 (how useful the question is)}')
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


_QA = re.compile(r"^\s*(?:\d+[.)]\s*)?(?:Q|Question)\s*\d*\s*[:.]\s*(?P<q>.+?)\s*\n+\s*(?:A|Answer)\s*\d*\s*[:.]\s*(?P<a>.+?)\s*$",
                 re.I | re.M)


def parse_reply(text: str, kinds: list[str], statement: str = "") -> list[Candidate]:
    """Candidates from the JSON objects of a reply (objects missing a field are ignored); failing
    those, from "Question: … / Answer: …" lines whose answer is found verbatim in the statement —
    the layout small models fall back to."""
    return _from_json(text, kinds) or _from_lines(text, kinds, statement)


def _from_lines(text: str, kinds: list[str], statement: str) -> list[Candidate]:
    from ragqa.citations import normalize
    from ragqa.text import split_sentences

    out = []
    for m in _QA.finditer(text):
        answer = m["a"].strip().strip('"“”').rstrip(".")
        if len(answer.split()) < 2:
            continue
        quote = next((s for s in split_sentences(statement) if normalize(answer).lower() in normalize(s).lower()), "")
        kind = "numeric" if re.search(r"\d", answer) else "definition" if re.match(r"what (is|are) ", m["q"], re.I) \
            else "factual"
        if quote and kind in kinds:
            out.append(Candidate(kind, m["q"].strip(), "", quote))
    return out


def _from_json(text: str, kinds: list[str]) -> list[Candidate]:
    out = []
    for raw in _OBJECT.findall(text):
        try:
            item = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if not isinstance(item, dict):
            continue
        q, a, quote = (str(item.get(k) or "").strip() for k in ("question", "answer", "quote"))
        kind = str(item.get("kind") or "").strip().lower()
        if q and quote and kind in kinds:
            out.append(Candidate(kind, q, _lead(a), quote.strip(" \"“”"), rating=_rating(item.get("rating"))))
    return out


def _lead(answer: str) -> str:
    answer = answer.strip().strip('"“”')
    return answer if not answer or answer[-1] in ".!?" else answer + "."


def _rating(value) -> float | None:
    try:
        return min(5.0, max(1.0, float(value)))
    except (TypeError, ValueError):
        return None


ANSWER_FIRST = ("Write one question that the sentence below answers. The question must be answerable "
                "from the sentence alone and must not copy it. Reply with the question only.")
_QUESTION = re.compile(r"^[\s\"“*\d.)-]*(?:Question\s*\d*\s*[:.]\s*)?(?P<q>[A-Z][^?\n]{10,200}\?)", re.M)


def answer_first_prompt(chunk, sentence: str) -> list[dict]:
    """The easy task a small model can do: a question for one given sentence of the passage."""
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Passage from {chunk.title}:\n{sentence}\n\n{ANSWER_FIRST}"}]


def parse_question(text: str, sentence: str) -> str:
    """The first question of a reply, unless it copies the sentence (then it teaches nothing)."""
    m = _QUESTION.search(text)
    if not m:
        return ""
    q = m["q"].strip()
    copied = set(re.findall(r"\w+", q.lower())) <= set(re.findall(r"\w+", sentence.lower())) | {
        "what", "which", "how", "why", "who", "when", "where", "does", "do", "is", "are", "the", "a"}
    return "" if copied and len(q.split()) > 6 else q


def _kind_of(question: str, sentence: str, kinds: list[str]) -> str:
    if re.match(r"(is|are|does|do|can|was|were|has|have|did|will|should)\b", question, re.I):
        kind = "judgmental"
    elif re.match(r"what (is|are) ", question, re.I):
        kind = "definition"
    elif re.search(r"\bhow (many|much)\b", question, re.I) or re.search(r"\d", sentence) and "number" in question.lower():
        kind = "numeric"
    else:
        kind = "factual"
    return kind if kind in kinds or kind == "judgmental" else ""


class ModelTeacher:
    """Wraps a ``Generator``; ``propose`` returns None when no reply could be parsed.

    The self-instruct prompt (JSON lines, every kind at once) is asked first. A small model that
    cannot answer it in a parseable way (SmolLM2-135M: 0 usable replies on real papers) is then
    asked the answer-first task instead: one question for each of a few quotable sentences of the
    chunk, so the quote is verbatim by construction and only the question is the model's. After
    ``give_up_after`` such chunks in a row, only the answer-first task is asked.
    """

    needs_background = True

    def __init__(self, generator, retries: int = 2, max_new_tokens: int = 384, give_up_after: int = 3):
        self.generator, self.retries, self.max_new_tokens = generator, retries, max_new_tokens
        self.name = generator.name
        # chunks in a row whose self-instruct replies held nothing parseable; at give_up_after (0 = never) the
        # model cannot write the format, and only the answer-first task is asked from then on
        self.give_up_after, self.misses = give_up_after, 0

    @property
    def answers_first(self) -> bool:
        """Whether the self-instruct prompt is no longer asked: SmolLM2-135M never writes the format, and asking
        it 1 + retries times per chunk took three quarters of a run (24 chunks: 273 s, 62 s without)."""
        return bool(self.give_up_after) and self.misses >= self.give_up_after

    def propose(self, chunk, helper, kinds: list[str]) -> list[Candidate] | None:
        if not self.answers_first and (found := self.self_instruct(chunk, helper, kinds)):
            return found
        return self.answer_first(chunk, kinds) or None

    def self_instruct(self, chunk, helper, kinds: list[str]) -> list[Candidate]:
        """The self-instruct prompt, asked up to 1 + ``retries`` times; a chunk with no parseable reply counts
        towards ``give_up_after``."""
        chat = teacher_prompt(chunk, helper.chunk_background(chunk), kinds)
        for _ in range(1 + self.retries):
            reply = "".join(self.generator.generate(chat, max_new_tokens=self.max_new_tokens))
            if found := parse_reply(reply, kinds, prompt_text(chunk.text)):
                self.misses = 0
                return found
        self.misses += 1
        if self.answers_first:
            log.info("%s wrote no parseable question for %d chunks in a row: asking it one question per "
                     "sentence from now on", self.name, self.misses)
        return []

    def answer_first(self, chunk, kinds: list[str], sentences: int = 2) -> list[Candidate]:
        from finetune._teacher import usable_sentences

        chosen = usable_sentences(chunk.text)[:sentences]
        out = []
        replies = greedy_replies(self.generator, [answer_first_prompt(chunk, s) for s in chosen], 48)  # one batch
        for sentence, reply in zip(chosen, replies):
            question = parse_question(reply, sentence)
            kind = _kind_of(question, sentence, kinds) if question else ""
            # a model's yes/no question may be asked the negative way: its answer is unknown, skip it
            if kind and kind != "judgmental":
                out.append(Candidate(kind, question, "", sentence))
        return out
