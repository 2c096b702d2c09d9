"""Token-exact chunking inside sections, measured in the embedder's own tokenizer.

Each chunk plus its "title — section" prefix fits the embedder's window, so no text is
silently truncated at embedding time. Chunks end at a sentence or paragraph boundary when
one lies in the last 40% of the window, and neighbours overlap by ``overlap`` tokens.
"""
from __future__ import annotations

import bisect
import hashlib

from retrieval.store import Chunk

Offsets = list[tuple[int, int]]


def embed_text(title: str, section: str, text: str) -> str:
    """What the embedder sees: the chunk with its document title and section as context."""
    head = f"{title} — {section}" if section else title
    return f"{head}\n{text}"


def _boundary(text: str, offsets, i: int, j: int) -> int:
    """Best end token in (i, j]: the last sentence/paragraph end in the window's tail, else j."""
    floor = i + max(1, int((j - i) * 0.6))
    for t in range(j, floor, -1):
        end = offsets[t - 1][1]
        gap = text[end:offsets[t][0]] if t < len(offsets) else "\n"
        if "\n\n" in gap or (text[end - 1] in ".?!" and gap[:1] in (" ", "\n")):
            return t
    return j


def split_span(text: str, offsets, lo: int, hi: int, budget: int, overlap: int) -> list[tuple[int, int]]:
    """Token windows [i, j) over tokens lo..hi of ``text`` of at most ``budget`` tokens."""
    windows, i = [], lo
    while i < hi:
        j = min(i + budget, hi)
        if j < hi:
            j = _boundary(text, offsets, i, j)
        windows.append((i, j))
        if j >= hi:
            break
        i = max(i + 1, j - overlap)
    return windows


def chunk_document(doc_id: str, title: str, path: str, pages: list[str], spans: list[tuple[int, int, str]],
                   offsets: Offsets, count_tokens, max_tokens: int, overlap: int) -> list[Chunk]:
    """Chunks for one document whose cleaned page texts are ``pages``.

    ``spans`` are (start, end, section) ranges of the joined text ``"\\n".join(pages)``, ``offsets``
    the character span of each of its tokens in the embedder's tokenizer (``Embedder.token_offsets``).
    ``max_tokens`` bounds the whole embedded text, special tokens included.
    """
    text = "\n".join(pages)
    page_starts = [0]
    for p in pages[:-1]:
        page_starts.append(page_starts[-1] + len(p) + 1)
    starts = [s for s, _ in offsets]
    windows = []  # (section, first token, end token)
    for s, e, section in spans:
        lo, hi = bisect.bisect_left(starts, s), bisect.bisect_left(starts, e)
        budget = max_tokens - count_tokens([embed_text(title, section, "")])[0]
        windows += [(section, i, j) for i, j in split_span(text, offsets, lo, hi, max(16, budget), overlap)]
    counts = _fit(windows, text, offsets, title, count_tokens, max_tokens)
    chunks = []
    for (section, i, j), n in zip(windows, counts):
        chunk = _make_chunk(doc_id, title, path, text, page_starts, section, offsets[i][0], offsets[j - 1][1])
        chunk.tokens = n
        chunks.append(chunk)
    return chunks


def _fit(windows: list, text: str, offsets, title: str, count_tokens, max_tokens: int) -> list[int]:
    """Token count of each embedded chunk; shortens the rare window whose joined text overflows.

    Token counts of pieces do not always add up exactly (the prefix/text seam), so every
    embedded text is measured once more as a whole.
    """
    def count(w):
        return count_tokens([embed_text(title, w[0], text[offsets[w[1]][0]:offsets[w[2] - 1][1]])])[0]

    counts = count_tokens([embed_text(title, sec, text[offsets[i][0]:offsets[j - 1][1]]) for sec, i, j in windows])
    for k, n in enumerate(counts):
        while n > max_tokens:
            sec, i, j = windows[k]
            windows[k] = (sec, i, max(i + 1, j - (n - max_tokens)))
            n = counts[k] = count(windows[k])
    return counts


def _make_chunk(doc_id, title, path, text, page_starts, section, start, end) -> Chunk:
    first = bisect.bisect_right(page_starts, start) - 1
    last = bisect.bisect_right(page_starts, max(start, end - 1)) - 1
    cid = hashlib.sha1(f"{doc_id}:{start}:{end}".encode()).hexdigest()[:16]
    return Chunk(id=cid, doc_id=doc_id, text=text[start:end], title=title, path=path, page=first + 1,
                 page_end=last + 1, section=section, start=start - page_starts[first],
                 end=end - page_starts[last], tokens=0)
