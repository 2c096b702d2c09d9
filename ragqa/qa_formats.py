"""Question sets for evaluation: ARAGOG, QASPER, CMRC2018 (SQuAD layout) and `ragqa gen-data` splits.

Every format becomes a list of ``QAItem``; a line that cannot be read is reported with its
line number and skipped, never silently dropped.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ragqa.errors import ConfigError
from ragqa.text import CJK_RUN


@dataclass
class QAItem:
    id: str
    question: str
    answers: list[str] = field(default_factory=list)  # gold answers; metrics take the best match
    doc: str = ""  # gold document (file name or doc id) when the set names one
    scoped: bool = False  # QASPER: retrieval is restricted to ``doc``
    choices: list[str] = field(default_factory=list)  # multiple choice options
    gold_choice: int | None = None
    lang: str = "en"  # 'zh' switches F1/EM to characters
    kind: str = ""  # QASPER's answer_type: 'yes_no' items are scored on the answer's yes or no


def load_qa(path: str | Path) -> tuple[list[QAItem], list[str]]:
    """Items of a .jsonl or .json question file, and one line per problem found."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: question file not found — pass --qa FILE (.jsonl or .json)")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return _from_json(json.loads(text), path)
    items, problems = [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            items += _from_record(json.loads(line), f"{path.stem}-{n}")
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            problems.append(f"{path}:{n}: skipped ({exc.__class__.__name__}: {str(exc)[:80]})")
    return items, problems


def _from_json(data, path: Path) -> tuple[list[QAItem], list[str]]:
    if isinstance(data, dict) and "data" in data:  # SQuAD / CMRC2018 layout
        records = [dict(qa, context=p.get("context", "")) for art in data["data"]
                   for p in art.get("paragraphs", []) for qa in p.get("qas", [])]
    elif isinstance(data, list):
        records = data
    else:
        raise ConfigError(f"{path}: expected a list of questions or a SQuAD-style {{'data': ...}} file")
    items, problems = [], []
    for n, rec in enumerate(records, 1):
        try:
            items += _from_record(rec, f"{path.stem}-{n}")
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"{path}: record {n}: skipped ({exc.__class__.__name__}: {str(exc)[:80]})")
    return items, problems


def _from_record(rec: dict, default_id: str) -> list[QAItem]:
    question = rec["question"].strip()
    if not question:
        raise ValueError("empty question")
    item = QAItem(str(rec.get("id") or rec.get("question_id") or default_id), question)
    item.answers = _answers(rec)
    # CMRC2018 as shipped in the eval corpus names its passage (ingested as one document per passage,
    # e.g. TRIAL_800.md); its questions are pooled: asked of the whole index, the passage is the doc hit
    # gen-data records (oracle_id marks them) carry the index's hash of their document as doc_id and its
    # path as source: the file name is what a retrieved source matches
    gen_data = "oracle_id" in rec
    source = Path(str(rec["source"])).name if gen_data and rec.get("source") else ""
    item.doc = str(rec.get("source_pdf") or source or rec.get("doc_id") or rec.get("source") or rec.get("doc")
                   or rec.get("passage_id") or "")
    # QASPER names its paper in doc_id and is asked of it alone; gen-data questions are asked of the
    # whole index, as a user would
    item.scoped = "doc_id" in rec and "source_pdf" not in rec and not gen_data
    if choices := rec.get("choices") or rec.get("options"):
        item.choices = [str(c) for c in choices]
        gold = rec.get("answer_index", rec.get("label"))
        item.gold_choice = int(gold) if gold is not None else item.choices.index(item.answers[0])
    item.lang = "zh" if CJK_RUN.search(question) else "en"
    item.kind = str(rec.get("answer_type") or "")
    return [item]


def _answers(rec: dict) -> list[str]:
    """Gold answers from the many shapes the sets use."""
    raw = rec.get("answers", rec.get("answer", rec.get("gold", [])))
    if isinstance(raw, dict):  # SQuAD: {"text": [...], "answer_start": [...]}
        raw = raw.get("text", [])
    if isinstance(raw, str):
        raw = [raw]
    out = []
    for a in raw:
        if isinstance(a, dict):  # SQuAD list form, or QASPER annotations
            a = a.get("text") or a.get("free_form_answer") or " ".join(a.get("extractive_spans") or []) \
                or ({True: "Yes", False: "No"}.get(a.get("yes_no")) if a.get("yes_no") is not None else "") \
                or ("unanswerable" if a.get("unanswerable") else "")
        if str(a).strip():
            out.append(str(a).strip())
    return list(dict.fromkeys(out))
