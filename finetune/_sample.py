"""Which chunks become questions: spread over documents and sections, boilerplate left out.

Taking chunks in index order would ask about the first pages of the first papers; instead
documents take turns, and within a document its sections take turns, in a seeded order.
"""
from __future__ import annotations

import random
import re
from collections import defaultdict

_BOILER_SECTION = re.compile(
    r"acknowledg|^\W*(\d+\W*)?references?\b|bibliograph|author|contribution|funding|disclosure|conflicts? of interest|"
    r"ethics statement|checklist|broader impact|table of contents", re.I)
_EMAIL = re.compile(r"\S+@\S+\.\w+")
_AFFILIATION = re.compile(r"\b(universit\w*|institute|laborator\w*|department|inc\.|corporation|google|"
                          r"microsoft|meta|openai|deepmind|research)\b", re.I)


def is_boilerplate(chunk) -> bool:
    """Author lists, affiliations, acknowledgements, references, tables of numbers."""
    if _BOILER_SECTION.search(chunk.section or ""):
        return True
    text = chunk.text
    words = text.split()
    if len(words) < 25:
        return True
    if len(_EMAIL.findall(text)) >= 1 and chunk.page <= 1:
        return True
    capitalized = sum(w[:1].isupper() for w in words) / len(words)
    if chunk.page <= 1 and capitalized > 0.45 and len(_AFFILIATION.findall(text)) >= 2:
        return True
    letters = sum(c.isalpha() for c in text) / max(1, len(text))
    return letters < 0.55  # tables, equations, number dumps


def sample_chunks(chunks, seed: int = 0) -> list:
    """Every non-boilerplate chunk, ordered so that documents and their sections take turns."""
    rng = random.Random(seed)
    by_doc: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for chunk in chunks:
        if not is_boilerplate(chunk):
            by_doc[chunk.doc_id][chunk.section].append(chunk)
    per_doc = []
    for doc_id in sorted(by_doc):
        sections = [list(v) for _, v in sorted(by_doc[doc_id].items())]
        for section in sections:
            rng.shuffle(section)
        rng.shuffle(sections)
        per_doc.append(_round_robin(sections))
    rng.shuffle(per_doc)
    return _round_robin(per_doc)


def _round_robin(lists: list[list]) -> list:
    out, i = [], 0
    while any(i < len(x) for x in lists):
        out += [x[i] for x in lists if i < len(x)]
        i += 1
    return out
