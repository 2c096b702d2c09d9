"""Markdown shown beside the chat: citations, sources, timings, upload results, documents."""
from __future__ import annotations

import os


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def citations(result) -> str:
    if result.abstained:
        return ""
    from ragqa.citations import report_lines

    lines = ["**Citations**"]
    for text, ok in report_lines(result.citations, lambda n: (s := result.source(n)) and s.label):
        lines.append(f"- {text}" if ok else f"- **{text}**")
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
