"""Markdown shown beside the chat: citations, sources, timings, upload results, documents."""
from __future__ import annotations

import os

# plain words, not emoji: headless and minimal systems often lack the emoji font
_MARK = {"verified quote": "**verified quote**", "supported": "**supported** by the passage",
         "quote not found": "**FLAGGED: quote not found in this source**",
         "unsupported": "**FLAGGED: not supported by this source**", "no such source": "**FLAGGED: no such source**"}


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def citations(result) -> str:
    if result.abstained:
        return ""
    from ragqa.citations import for_display

    lines = ["**Citations**"]
    shown, unknown = for_display(result.citations)
    for c in shown:
        src = result.source(c.n)
        where = src.label if src else "not among the sources"
        quote = f' — "{_clip(c.quote, 200)}"' if c.quote else ""
        extra = f" (the quote is in [{c.found_in}])" if c.found_in else ""
        lines.append(f"- [{c.n}] {where}{quote} · {_MARK.get(c.status, c.status)}{extra}")
    if unknown:
        lines.append(f"- {unknown} · **FLAGGED: no such source** (the answer cites sources that were not given)")
    if not result.citations:
        lines.append("- the answer cites no source")
    if result.evidence:
        lines.append("\n**Evidence** (source sentences matched to the answer by word overlap, not cited by the model)")
        for e in result.evidence:
            lines.append(f'- "{_clip(e.sentence, 90)}" ← [{e.source}] {result.source(e.source).label}: '
                         f'"{_clip(e.text, 220)}"')
    return "\n".join(lines)


def sources(result) -> str:
    if not result.sources:
        return "No passages were retrieved." if result.retrieval else "Retrieval was off for this answer."
    lines = []
    for s in result.sources:
        kind = f'background for **{s.term}**' if s.term else (s.chunk.section or s.chunk.title)
        score = "" if s.term else f" · score {s.score:.4f}" + (f" · cosine {s.dense:.2f}" if s.dense is not None else "")
        lines.append(f"**[{s.n}] {s.label}** — {kind}{score}\n\n> {_clip(s.text, 700)}\n")
    if result.terms:
        found = ", ".join(t["term"] + (f" → [{t['source']}]" if t["source"] else " (already in the sources)")
                          for t in result.terms)
        lines.append(f"**Specialized terms:** {found}")
    return "\n".join(lines)


def upload_status(report, rejected: list[str]) -> str:
    lines = []
    if report is not None:
        lines.append(f"Ingested into **{report.index}**: {len(report.added)} added, {len(report.unchanged)} unchanged, "
                     f"{len(report.aliased)} duplicate content; {report.chunks_added} passages embedded.")
    lines += [f"- rejected: {r}" for r in rejected]
    return "\n".join(lines) or "Nothing to ingest."


def documents(index: str, manifest) -> str:
    rows = sorted(manifest.docs.values(), key=lambda d: d["title"].lower())
    lines = [f"**{index}**: {len(rows)} documents", ""]
    lines += [f"- {os.path.basename(d['paths'][0])} — {_clip(d['title'], 60)} ({d['pages']} p.)" for d in rows]
    return "\n".join(lines)
