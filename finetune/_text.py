"""Small text measures for data generation and selection: ROUGE-L, token F1, script detection.

Token F1 is the evaluation's own (``ragqa.metrics``, base layer), with citation markers removed;
ROUGE-L on token lists and the near-duplicate index are what generation needs beyond it.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict

from ragqa.text import CJK_RUN, STOPWORDS, cjk_share

_WORD = re.compile(r"\w+", re.UNICODE)
_MARKER = re.compile(r"\[\d+(?:\s*[,;]\s*\d+)*\]")


def words(text: str) -> list[str]:
    """Lowercased word tokens; each CJK character counts as one word."""
    out = []
    for w in _WORD.findall(text.lower()):
        out += list(w) if CJK_RUN.search(w) else [w]
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
    """SQuAD-style token F1 (the evaluation's own), citation markers removed from both sides."""
    from ragqa.metrics import token_f1 as f1

    lang = "zh" if CJK_RUN.search(reference) else "en"  # Chinese is compared character by character
    return f1(_MARKER.sub("", prediction), _MARKER.sub("", reference), lang)


def script(text: str) -> str:
    """'cjk', 'latin' or 'other': enough to catch a teacher answering in the wrong language."""
    chars = [c for c in text if c.isalpha()]
    if not chars:
        return "other"
    if cjk_share(text) > 0.2:
        return "cjk"
    latin = sum(c.isascii() for c in chars)
    return "latin" if latin / len(chars) > 0.8 else "other"


class NearDuplicates:
    """Questions kept so far; ``is_near(q)`` when ROUGE-L to any of them exceeds ``threshold``.

    Exact, but not quadratic: ROUGE-L is bounded by the bag-of-words overlap, so only questions
    sharing a content word (found through an inverted index), or short enough for stopwords alone
    to pass the bound, get the LCS computed. Thousands of kept questions stay fast.
    """

    def __init__(self, threshold: float = 0.7):
        self.threshold, self.kept = threshold, []
        self.postings: dict[str, list[tuple[int, int]]] = defaultdict(list)  # content word -> (id, count)
        self.by_length: dict[int, list[int]] = defaultdict(list)

    def is_near(self, question: str) -> bool:
        toks = words(question)
        if not toks:
            return False
        bag, candidates = Counter(toks), set()
        for token in bag:
            if token not in STOPWORDS:
                candidates.update(i for i, _ in self.postings.get(token, ()))
        # sharing stopwords only: the bound 2*stopwords/(la+lb) > threshold needs a short lb
        stop = sum(c for t, c in bag.items() if t in STOPWORDS)
        for length in range(1, int(2 * stop / self.threshold - len(toks)) + 1):
            candidates.update(self.by_length.get(length, ()))
        for i in candidates:
            other, other_bag = self.kept[i]
            if rouge_upper_bound(bag, other_bag, len(toks), len(other)) > self.threshold \
                    and rouge_l(toks, other) > self.threshold:
                return True
        return False

    def add(self, question: str) -> None:
        toks = words(question)
        i = len(self.kept)
        self.kept.append((toks, Counter(toks)))
        self.by_length[len(toks)].append(i)
        for token, count in Counter(toks).items():
            if token not in STOPWORDS:
                self.postings[token].append((i, count))
