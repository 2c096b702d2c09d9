"""File discovery and text extraction: PDF (pypdfium2 or pypdf), Markdown, HTML, plain text.

Every failure becomes a ``SkippedFile`` naming the file, the reason and the fix.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ragqa.errors import SkippedFile

KINDS = {".pdf": "pdf", ".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html",
         ".txt": "text", ".rst": "text"}


@dataclass
class RawDocument:
    path: Path
    kind: str  # pdf | markdown | html | text
    title: str  # from metadata or the first heading; '' when the file has none
    pages: list[str]  # raw extracted text per page (one page for non-PDF files)


def discover(paths: list[Path]) -> tuple[list[Path], list[SkippedFile]]:
    """Supported files under ``paths`` (folders recursively, hidden entries skipped), sorted."""
    found, problems = [], []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in KINDS and (p.is_file() or p.is_symlink())
                            and not any(part.startswith(".") for part in p.relative_to(path).parts))
        elif path.is_file() or path.is_symlink():
            if path.suffix.lower() in KINDS:
                found.append(path)
            else:
                problems.append(SkippedFile(path, f"unsupported file type '{path.suffix}'",
                                            f"convert it to one of {', '.join(sorted(KINDS))}"))
        else:
            problems.append(SkippedFile(path, "no such file or folder", "check the path"))
    # abspath, not resolve(): a dangling link must be reported under its own name
    return list(dict.fromkeys(Path(os.path.abspath(p)) for p in found)), problems


def read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SkippedFile(path, f"cannot read ({exc.strerror or exc.__class__.__name__})",
                          "check the file exists and is readable") from None
    if not data:
        raise SkippedFile(path, "empty file (0 bytes)", "re-download or re-export it")
    return data


def read_document(path: Path, data: bytes, pdf_parser: str = "pypdfium2") -> RawDocument:
    kind = KINDS[path.suffix.lower()]
    if kind == "pdf":
        if not data.lstrip()[:5] == b"%PDF-":
            raise SkippedFile(path, "not a PDF (no %PDF header)", "rename it to its real type or re-export as PDF")
        pages, title = (_pdfium_pages if pdf_parser == "pypdfium2" else _pypdf_pages)(path, data)
        return RawDocument(path, kind, _pdf_title(title), pages)
    text = _decode(path, data)
    if kind == "html":
        text = html_to_text(text)
    return RawDocument(path, kind, _first_heading(text), [text])


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        if b"\x00" in data[:4096]:
            raise SkippedFile(path, "binary content, not text", "check the file type") from None
        return data.decode("latin-1")


def _pdfium_pages(path: Path, data: bytes) -> tuple[list[str], str]:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise _pdf_error(path, str(exc)) from None
    try:
        pages = []
        for i in range(len(pdf)):
            page = pdf[i]
            textpage = page.get_textpage()
            pages.append(textpage.get_text_range())
            textpage.close()
            page.close()
        title = pdf.get_metadata_dict().get("Title", "")
    finally:
        pdf.close()
    return pages, title


def _pypdf_pages(path: Path, data: bytes) -> tuple[list[str], str]:
    import io

    import pypdf

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise _pdf_error(path, "password")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata or {}).get("/Title", "") or ""
    except pypdf.errors.PyPdfError as exc:
        raise _pdf_error(path, str(exc)) from None
    return pages, str(title)


def _pdf_error(path: Path, message: str) -> SkippedFile:
    if "password" in message.lower() or "encrypt" in message.lower():
        return SkippedFile(path, "encrypted PDF", "decrypt it (e.g. qpdf --decrypt in.pdf out.pdf) and ingest the copy")
    return SkippedFile(path, f"corrupt or truncated PDF ({message.strip()[:80]})",
                       "re-download it or repair it (e.g. qpdf in.pdf out.pdf)")


def _pdf_title(meta_title: str) -> str:
    """The metadata title when it looks like one (LaTeX often leaves it empty or a file name)."""
    meta_title = (meta_title or "").strip()
    if 8 <= len(meta_title) <= 200 and not re.search(r"\.(docx?|tex|dvi|pdf)$|^untitled|^microsoft", meta_title, re.I):
        return meta_title
    return ""


def guess_title(first_page: str) -> str:
    """First line of the cleaned first page that reads like a title (running heads already gone)."""
    for line in first_page.splitlines()[:8]:
        line = line.strip()
        if 8 <= len(line) <= 200 and sum(ch.isalpha() for ch in line) > 0.6 * len(line) and "arxiv" not in line.lower():
            return line
    return ""


def _first_heading(text: str) -> str:
    match = re.search(r"^#{1,2}\s+(.+?)\s*#*\s*$", text, re.M)
    return match.group(1).strip() if match else ""


def html_to_text(html: str) -> str:
    """Visible text of an HTML page, headings turned into Markdown '#' lines."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "nav", "footer", "header", "aside", "noscript", "svg", "form"]):
        tag.decompose()
    for level in range(1, 7):
        for h in soup.find_all(f"h{level}"):
            h.replace_with(f"\n\n{'#' * level} {h.get_text(' ', strip=True)}\n\n")
    title = soup.title.get_text(strip=True) if soup.title else ""
    body = soup.find("article") or soup.find("main") or soup.body or soup
    text = body.get_text("\n")
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r"\n\s*\n\s*(\n\s*)+", "\n\n", text).strip()
    if title and not _first_heading(text):
        text = f"# {title}\n\n{text}"
    return text
