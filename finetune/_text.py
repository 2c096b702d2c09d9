"""Small text measures for data generation and selection: ROUGE-L, token F1, script detection.

Kept here rather than imported from ``ragqa.metrics`` because that module belongs to the evaluation
front end, which a stage must not import (tests/test_layers.py).
"""
from __future__ import annotations

import re
from collections import Counter

_WORD = re.compile(r"\w+", re.UNICODE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_MARKER = re.compile(r"\[\d+(?:\s*[,;]\s*\d+)*\]")


def words(text: str) -> list[str]:
    """Lowercased word tokens; each CJK character counts as one word."""
    out = []
    for w in _WORD.findall(text.lower()):
        out += list(w) if _CJK.search(w) else [w]
    return out


def _lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(a: list[str], b: list[str]) -> float:
    """ROUGE-L F1 of two token lists (the Self-Instruct near-duplicate measure)."""
    if not a or not b:
        return 0.0
    lcs = _lcs(a, b)
    return 2 * lcs / (len(a) + len(b))


def rouge_upper_bound(a: Counter, b: Counter, la: int, lb: int) -> float:
    """An upper bound of ROUGE-L from bags of words: skips the quadratic LCS for most pairs."""
    return 2 * sum((a & b).values()) / (la + lb) if la + lb else 0.0


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style token F1, citation markers removed from both sides."""
    p, r = words(_MARKER.sub("", prediction)), words(_MARKER.sub("", reference))
    common = sum((Counter(p) & Counter(r)).values())
    if not p or not r or not common:
        return float(p == r)
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


def script(text: str) -> str:
    """'cjk', 'latin' or 'other': enough to catch a teacher answering in the wrong language."""
    chars = [c for c in text if c.isalpha()]
    if not chars:
        return "other"
    cjk = sum(bool(_CJK.match(c)) for c in chars)
    if cjk / len(chars) > 0.2:
        return "cjk"
    latin = sum(c.isascii() for c in chars)
    return "latin" if latin / len(chars) > 0.8 else "other"


class NearDuplicates:
    """Questions kept so far; ``is_near(q)`` when ROUGE-L to any of them exceeds ``threshold``."""

    def __init__(self, threshold: float = 0.7):
        self.threshold, self.kept = threshold, []

    def is_near(self, question: str) -> bool:
        toks = words(question)
        bag = Counter(toks)
        for other, other_bag in self.kept:
            if rouge_upper_bound(bag, other_bag, len(toks), len(other)) > self.threshold \
                    and rouge_l(toks, other) > self.threshold:
                return True
        return False

    def add(self, question: str) -> None:
        toks = words(question)
        self.kept.append((toks, Counter(toks)))
