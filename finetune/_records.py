"""The training record: a RAFT item (question, oracle, distractors, cited answer) and its chat form.

Every record stores the sources exactly as its prompt showed them, so the ``messages`` column is
``retrieval.context.build_messages`` output plus the target answer: the layout of answer time.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields

from ragqa.errors import RagqaError
from retrieval.context import build_messages


@dataclass
class Record:
    question: str
    answer: str  # the target: quotes from the oracle, cited as [n], or the abstention sentence
    kind: str  # factual, judgmental, definition, numeric or comparison
    teacher: str  # who wrote the question: 'deterministic' or the model's name
    doc_id: str  # the source document; the split unit
    source: str  # the document's file path
    title: str  # the document's title
    oracle_id: str  # chunk the answer comes from
    oracle_ids: list[str] = field(default_factory=list)  # all oracle chunks (two for a comparison)
    distractor_ids: list[str] = field(default_factory=list)  # hard negatives from other documents
    abstain: bool = False  # the context lacks the oracle; the target is the abstention sentence
    quote: str = ""  # the oracle's words the answer quotes
    rating: float | None = None  # teacher self-rating, 1-5, when the teacher gave one
    sources: list[dict] = field(default_factory=list)  # {n, chunk_id, title, label, text, term} as shown
    id: str = ""

    def __post_init__(self):
        self.id = self.id or hashlib.sha1(f"{self.oracle_id}\n{self.question}".encode()).hexdigest()[:16]

    def messages(self) -> list[dict]:
        """The chat for supervised fine-tuning: the answer-time prompt, then the target."""
        shown = [_Shown(**s) for s in self.sources]
        # the yes/no hint as ``answer.yes_no_hint`` adds it at answer time
        chat = build_messages(self.question, shown, [], 0, use_retrieval=True, yes_no_hint=True)
        return chat + [{"role": "assistant", "content": self.answer}]

    def to_dict(self) -> dict:
        return asdict(self)

    def row(self) -> dict:
        """One dataset row: the raw fields and the ``messages`` column."""
        return {**self.to_dict(), "messages": self.messages()}


class _ChunkView:
    """What ``build_messages`` reads from a chunk: its title and location label."""

    def __init__(self, title: str, label: str):
        self.title, self.location = title, label


class _Shown:
    """A stored source, shaped like ``retrieval.context.Source`` for the prompt builder."""

    def __init__(self, n, chunk_id, title, label, text, term=""):
        self.n, self.chunk_id, self.text, self.term = n, chunk_id, text, term
        self.chunk = _ChunkView(title, label)
        self.label = label


def shown_sources(sources) -> list[dict]:
    """``Source`` objects as stored in a record."""
    return [{"n": s.n, "chunk_id": s.chunk.id, "title": s.chunk.title, "label": s.label, "text": s.text,
             "term": s.term} for s in sources]


FIELDS = {f.name for f in fields(Record)}
REQUIRED = ("question", "answer", "kind", "doc_id", "oracle_id", "sources")


def from_dict(data: dict, where: str = "") -> Record:
    """A record from JSON, or a ``RagqaError`` naming the place and what is missing."""
    if not isinstance(data, dict):
        raise RagqaError(f"{where}: not a JSON object")
    missing = [k for k in REQUIRED if not data.get(k) and not (k == "sources" and "sources" in data)]
    if missing:
        raise RagqaError(f"{where}: malformed record, missing {', '.join(missing)}")
    try:
        return Record(**{k: v for k, v in data.items() if k in FIELDS})
    except TypeError as exc:
        raise RagqaError(f"{where}: malformed record ({exc})") from None


def read_jsonl(path) -> tuple[list[Record], list[str]]:
    """Records of a JSONL file and one problem line per malformed record (which is skipped)."""
    records, problems = [], []
    for i, line in enumerate(open(path, encoding="utf-8"), 1):
        if not line.strip():
            continue
        try:
            records.append(from_dict(json.loads(line), f"{path}:{i}"))
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{i}: not JSON ({exc.msg}) — skipped")
        except RagqaError as exc:
            problems.append(f"{exc} — skipped")
    return records, problems
