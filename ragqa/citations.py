"""Citations you can check: parse [n] markers and quotes, verify them, attach evidence.

A quote counts as verified only when it occurs verbatim in the cited passage after
whitespace (and Unicode compatibility) normalisation; a citation without a quote is
"supported" when its sentence shares enough content words with the passage. Everything
else is flagged. Evidence sentences are found independently of what the model cited,
because small models cite poorly.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

from ragqa.text import CJK_RUN, STOPWORDS, cjk_bigrams, cjk_count
from ragqa.text import split_sentences as sentences

_MARKER = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_QUOTE = re.compile(r"[\"“”「」『』]([^\"“”「」『』]{5,400}?)[\"“”「」『』]")
_WORD = re.compile(r"[a-z0-9]+")
SUPPORT_OVERLAP = 0.5  # content words of a citing sentence found in the passage, for "supported"
EVIDENCE_OVERLAP = 0.6  # least overlap for an evidence sentence to be shown (0.5 let fabrications through)


@dataclass
class Citation:
    n: int  # the number the answer used
    status: str  # 'verified quote', 'quote not found', 'supported', 'unsupported', 'no such source'
    quote: str = ""  # the quoted words, when the answer quoted
    sentence: str = ""  # the answer sentence holding the marker
    found_in: int | None = None  # for a quote not in the cited source: the source that has it

    @property
    def ok(self) -> bool:
        return self.status in ("verified quote", "supported")


@dataclass
class Evidence:
    sentence: str  # a sentence of the answer
    source: int  # the source number holding the evidence
    text: str  # the source sentence sharing the most content words with it
    overlap: float  # share of the answer sentence's content words found in ``text``


def normalize(text: str) -> str:
    """Compare text as a reader would: ligatures unfolded, quotes/dashes unified, spaces collapsed."""
    text = unicodedata.normalize("NFKC", text)
    text = text.translate(str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "「": '"', "」": '"', "『": '"',
                                         "』": '"', "–": "-", "—": "-"}))
    text = re.sub(r"(\w)-\s+(\w)", r"\1\2", text)  # a word hyphenated across a line break
    return " ".join(text.split())


def content_words(text: str) -> set[str]:
    text = normalize(text).lower()
    words = {_stem(w) for w in _WORD.findall(text) if w not in STOPWORDS and len(w) > 1}
    return words | {b for run in CJK_RUN.findall(text) for b in cjk_bigrams(run)}  # Chinese has no spaces


def _stem(word: str) -> str:
    """Crude plural folding, enough to match 'models' with 'model'."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def word_stems(text: str) -> set[str]:
    """``content_words`` as Snowball stems, so a word matches its other forms ("trained" and "training",
    "improve" and "improved"): what a reply's later sentences may say (``ragqa.reply.shape``, ``held``)."""
    return {_snowball(w) for w in content_words(text)}


@functools.lru_cache(maxsize=65536)
def _snowball(word: str) -> str:
    return _english().stem(word) if word.isascii() else word  # a Chinese bigram stays as it is


@functools.cache
def _english():
    from nltk.stem.snowball import EnglishStemmer  # pure code: no data to download

    return EnglishStemmer()


def overlap(claim: str, passage_words: set[str]) -> float:
    words = content_words(claim)
    return len(words & passage_words) / len(words) if words else 0.0


def check_citations(answer: str, sources: dict[int, str]) -> list[Citation]:
    """Every [n] of ``answer``, checked against ``sources`` (number -> full passage text)."""
    normalized = {n: normalize(t) for n, t in sources.items()}
    words = {n: content_words(t) for n, t in sources.items()}
    out = []
    for sentence in sentences(answer):
        start = 0
        for marker in _MARKER.finditer(sentence):
            # a marker vouches for the quotes written since the previous marker:
            # 'BERT uses "X" [1] while LoRA "Y" [2]' checks X against [1] and Y against [2]
            quotes = [q.strip() for q in _QUOTE.findall(sentence[start:marker.start()]) if _quote_like(q)]
            start = marker.end()
            for n in (int(x) for x in re.split(r"[,;]", marker.group(1))):
                out.append(_check(n, sentence, quotes, normalized, words))
    return out


def without_markers(text: str) -> str:
    """``text`` without its citation markers and the space before each ("cheap [1, 2]." → "cheap.")."""
    return re.sub(r"\s*" + _MARKER.pattern, "", text)


def cited_numbers(text: str) -> set[int]:
    """The source numbers ``text`` cites ("[2]", "[1, 3]")."""
    return {int(n) for m in _MARKER.finditer(text) for n in re.split(r"[,;]", m.group(1))}


def _quote_like(text: str) -> bool:
    """Long enough to be a quotation rather than a quoted word: 12 characters, or 5 in Chinese,
    where each character carries about a word."""
    return len(text.strip()) >= 12 or cjk_count(text) >= 5


def _check(n: int, sentence: str, quotes: list[str], normalized: dict, words: dict) -> Citation:
    claim = _MARKER.sub("", sentence)
    if n not in normalized:
        return Citation(n, "no such source", sentence=claim)
    if quotes:
        missing = [q for q in quotes if normalize(q) not in normalized[n]]
        if not missing:
            return Citation(n, "verified quote", " … ".join(quotes), claim)
        q = normalize(missing[0])
        found = next((m for m, t in normalized.items() if q in t), None)
        return Citation(n, "quote not found", missing[0], claim, found_in=found)
    supported = overlap(claim, words[n]) >= SUPPORT_OVERLAP
    return Citation(n, "supported" if supported else "unsupported", sentence=claim)


def find_evidence(answer: str, sources: dict[int, str]) -> list[Evidence]:
    """For each answer sentence, the source sentence that supports it best (if any does)."""
    candidates = [(n, s, content_words(s)) for n, text in sources.items() for s in sentences(text)]
    out, seen = [], set()
    for sentence in sentences(_MARKER.sub("", answer)):
        claim = content_words(sentence)
        if len(claim) < 3 or sentence.strip() in seen:
            continue
        seen.add(sentence.strip())
        best = max(candidates, key=lambda c: len(claim & c[2]), default=None)
        if best is None:
            continue
        score = len(claim & best[2]) / len(claim)
        if score >= EVIDENCE_OVERLAP:
            out.append(Evidence(sentence.strip(), best[0], " ".join(best[1].split()), round(score, 3)))
    return out


def for_display(citations: list[Citation]) -> tuple[list[Citation], str]:
    """Citations worth a line each (repeats dropped), and the unknown numbers as one range string.

    Small models sometimes enumerate "[1] [2] ... [31]"; thirty "no such source" lines would bury
    the citations that matter.
    """
    seen, shown, unknown = set(), [], []
    for c in citations:
        if c.status == "no such source":
            unknown.append(c.n)
        elif (key := (c.n, c.status, c.quote)) not in seen:
            seen.add(key)
            shown.append(c)
    return shown, _ranges(sorted(set(unknown)))


# how each status reads beside its citation, in the terminal and in the browser alike
STATUS_TEXT = {"verified quote": "verified quote", "supported": "supported by the passage",
               "quote not found": "FLAGGED: quote not found in this source",
               "unsupported": "FLAGGED: not supported by this source", "no such source": "FLAGGED: no such source"}


def report_lines(citations: list[Citation], label) -> list[tuple[str, bool]]:
    """The citation report as plain lines, each with whether it is sound; the CLI and the chat render
    these. ``label(n)`` names source ``n`` (None when there is no such source)."""
    shown, unknown = for_display(citations)
    lines = []
    for c in shown:
        quote = f' — "{_clip(c.quote, 200)}"' if c.quote else ""
        extra = f" (the quote is in [{c.found_in}])" if c.found_in else ""
        lines.append((f"[{c.n}] {label(c.n) or 'not among the sources'}{quote} · {STATUS_TEXT[c.status]}{extra}", c.ok))
    if unknown:
        lines.append((f"{unknown} · FLAGGED: no such source (the answer cites sources that were not given)", False))
    if not citations:
        lines.append(("the answer cites no source", False))
    return lines


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _ranges(numbers: list[int]) -> str:
    """[4, 5, 6, 9] -> "[4]-[6], [9]"."""
    parts, start = [], None
    for i, n in enumerate(numbers):
        start = n if start is None else start
        if i + 1 == len(numbers) or numbers[i + 1] != n + 1:
            parts.append(f"[{start}]" if start == n else f"[{start}]-[{n}]")
            start = None
    return ", ".join(parts)
