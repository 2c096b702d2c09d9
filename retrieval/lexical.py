"""What BM25 counts as a term: English words, and for Chinese/Japanese/Korean text (no spaces
between words) overlapping character bigrams, chosen per run of script, so mixed documents and
queries work.

English text is analysed exactly as ``bm25s.tokenize(stopwords="en")`` did before (lowercase words
of two or more characters, English stopwords dropped). A CJK run becomes its character bigrams
("深度学习" → 深度 度学 学习), the analyser of Lucene's CJKAnalyzer: it needs no dictionary, and a
query shares bigrams with the passage that answers it whatever segmentation a dictionary would pick.
"""
from __future__ import annotations

import re
from functools import lru_cache

from ragqa.text import CJK_RUN, cjk_bigrams

ANALYSER = "words+cjk-bigrams/1"
_WORD = re.compile(r"(?u)\b\w\w+\b")


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def analyse(text: str) -> list[str]:
    """The BM25 terms of ``text``, in order."""
    stop, terms = _stopwords(), []
    for i, piece in enumerate(CJK_RUN.split(text)):
        if i % 2:  # a CJK run (split keeps the captured runs at odd positions)
            terms += cjk_bigrams(piece)
        elif piece:
            terms += [w for w in _WORD.findall(piece.lower()) if w not in stop]
    return terms
