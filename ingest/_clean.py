"""Paper-aware cleaning: ligatures, running headers/footers, page numbers, hyphenation,
section headings and the references section."""
from __future__ import annotations

import re
import unicodedata
from collections import Counter

_SECTION_NAMES = (r"abstract|introduction|related work|background|preliminaries|method|methods|methodology|"
                  r"approach|model|experiments?|experimental setup|evaluation|results|analysis|discussion|"
                  r"conclusions?|limitations|future work|acknowledge?ments?|references|bibliography|"
                  r"appendix|appendices|supplementary material")
_NUMBERED = re.compile(r"^(?:\d{1,2}(?:\.\d{1,2}){0,3}|[A-H](?:\.\d{1,2}){0,2})\.?\s+([A-Z][^\n]{1,80})$")
_NAMED = re.compile(rf"^(?:[IVX]{{1,4}}\.?\s+|\d{{1,2}}\.?\s+)?({_SECTION_NAMES})\s*:?$", re.I)
_MARKDOWN = re.compile(r"^(#{1,6})\s+(.+?)\s*#*$")
_REFERENCES = re.compile(r"^(?:\d{1,2}\.?\s+)?(references|bibliography|works cited)\s*$", re.I)
# an appendix after the bibliography: "Appendix ...", or "A Implementation Details" (no
# commas or dots, unlike a reference entry such as "A. Vaswani, N. Shazeer")
_AFTER_REFERENCES = re.compile(r"^(?:appendix|appendices|supplementary)|^[A-H](?:\.\d)?\s+[A-Z][A-Za-z-]+(?:\s+[A-Za-z-]+){0,8}$")
_PAGE_NUMBER = re.compile(r"^\s*(?:page\s*)?\d{1,4}(?:\s*(?:/|of)\s*\d{1,4})?\s*$", re.I)


def normalize(text: str) -> str:
    """NFKC (ligatures like 'ﬁ' become 'fi'), unified newlines, pdfium's soft-hyphen marks."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[\x02\ufffe]\n?", "", text)  # pdfium's mark for a word hyphenated at a line end
    text = text.replace("\u00ad\n", "-\n")
    text = unicodedata.normalize("NFKC", text).replace("\x00", "")
    text = re.sub(r"[ \t\u00a0]+", " ", text)
    return re.sub(r" *\n *", "\n", text)


def _line_key(line: str) -> str:
    return re.sub(r"\d+", "#", line.strip().lower())


def running_lines(pages: list[list[str]], edge: int = 3) -> set[str]:
    """Keys of lines (digits masked) recurring at the top or bottom of many pages."""
    if len(pages) < 3:
        return set()
    counts = Counter()
    for lines in pages:
        edges = {_line_key(l) for l in lines[:edge] + lines[-edge:] if l.strip()}
        counts.update(edges)
    # a fifth of the pages, not half: chapter-level running heads ("Chapter 4: ... 18") recur
    # only on their own chapter's pages
    return {key for key, n in counts.items() if n >= max(3, len(pages) // 5) and len(key) < 200}


def repair_hyphenation(text: str) -> str:
    """'trans-\\nformer' -> 'transformer\\n' keeping the line break so offsets of lines stay sensible."""
    return re.sub(r"(\w)-\n([a-z]\w*)([ \t]?)", r"\1\2\n", text)


def clean_pages(raw_pages: list[str]) -> list[str]:
    split = [normalize(p).split("\n") for p in raw_pages]
    running = running_lines(split)
    cleaned = []
    for lines in split:
        n = len(lines)
        keep = [l for i, l in enumerate(lines)
                if not ((i < 3 or i >= n - 3) and (_line_key(l) in running or _PAGE_NUMBER.match(l)))]
        cleaned.append(repair_hyphenation("\n".join(keep)).strip())
    return cleaned


def heading_of(line: str, markdown: bool) -> str | None:
    """The heading text if ``line`` looks like a section heading, else None."""
    line = line.strip()
    if markdown:
        m = _MARKDOWN.match(line)
        return m.group(2).strip() if m else None
    if len(line) > 90 or line.endswith((".", ",", ";")) and not _NAMED.match(line):
        return None
    if _NAMED.match(line):
        return line
    m = _NUMBERED.match(line)
    if m and len(m.group(1).split()) <= 12 and sum(c.isalpha() for c in m.group(1)) >= 0.7 * len(m.group(1).replace(" ", "")):
        return line
    return None


def sections(text: str, markdown: bool) -> list[tuple[int, int, str]]:
    """(start, end, heading) spans covering ``text``, with the references section left out."""
    marks: list[tuple[int, str]] = [(0, "")]
    offset, in_refs, spans = 0, False, []
    for line in text.split("\n"):
        heading = heading_of(line, markdown)
        if heading is not None:
            if _REFERENCES.match(heading):
                marks.append((offset, None))  # None: skip until an appendix heading
                in_refs = True
            elif not in_refs or _AFTER_REFERENCES.match(heading):
                marks.append((offset, heading))
                in_refs = False
        offset += len(line) + 1
    marks.append((len(text), ""))
    for (start, heading), (end, _) in zip(marks, marks[1:]):
        if heading is not None and text[start:end].strip():
            spans.append((start, end, heading))
    return spans
