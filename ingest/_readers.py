"""File discovery and text extraction: PDF (pypdfium2 or pypdf), Markdown, HTML, plain text.

Every failure becomes a ``SkippedFile`` naming the file, the reason and the fix.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import warnings
import zlib
from dataclasses import dataclass, field
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
    problems: list[tuple[str, str]] = field(default_factory=list)  # (what was left out, fix), for warnings


def discover(paths: list[Path], max_bytes: float = float("inf")) -> tuple[list[Path], list[SkippedFile]]:
    """Supported files under ``paths`` (folders recursively, hidden entries skipped), sorted.

    Only regular files go on: a link to /dev/zero or to a FIFO would hang the reader while it
    holds the index's write lock. Files over ``max_bytes`` are reported, not read.
    """
    found, problems = [], []
    for path in paths:
        if path.is_dir():
            candidates = _walk(path, problems)
        elif path.exists() or path.is_symlink():
            candidates = [path]
            if path.suffix.lower() not in KINDS:
                problems.append(SkippedFile(path, f"unsupported file type '{path.suffix}'",
                                            f"convert it to one of {', '.join(sorted(KINDS))}"))
                candidates = []
        else:
            problems.append(SkippedFile(path, "no such file or folder", "check the path"))
            candidates = []
        for p in candidates:
            if problem := _not_readable(p, max_bytes):
                problems.append(problem)
            else:
                found.append(p)
    # abspath, not resolve(): a dangling link must be reported under its own name
    return list(dict.fromkeys(Path(os.path.abspath(p)) for p in found)), problems


def _walk(root: Path, problems: list[SkippedFile]) -> list[Path]:
    """Supported, non-hidden entries under ``root``; an unreadable subfolder is reported, not silently missed."""
    def unreadable(exc: OSError):
        problems.append(SkippedFile(exc.filename, f"cannot read folder ({exc.strerror})",
                                    "check its permissions (e.g. chmod u+rx)"))

    found = []
    for folder, dirs, files in os.walk(root, onerror=unreadable):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(folder) / f for f in files if not f.startswith(".") and Path(f).suffix.lower() in KINDS]
    return sorted(found)


def _not_readable(path: Path, max_bytes: float) -> SkippedFile | None:
    try:
        st = path.stat()  # follows links: what matters is what a read would hit
    except OSError as exc:
        if path.is_symlink():
            return SkippedFile(path, f"cannot read (a link to missing {os.readlink(path)})", "fix or remove the link")
        return SkippedFile(path, f"cannot read ({exc.strerror})", "check the file exists and is readable")
    return _stat_problem(path, st, max_bytes)


def _stat_problem(path: Path, st: os.stat_result, max_bytes: float) -> SkippedFile | None:
    if not stat.S_ISREG(st.st_mode):
        return SkippedFile(path, "not a regular file (a device, FIFO or socket)", "ingest regular files only")
    if st.st_size > max_bytes:
        return SkippedFile(path, f"{st.st_size / 1e6:.1f} MB is over the ingest.max_file_mb limit "
                                 f"of {max_bytes / 1e6:g} MB", "split it or raise ingest.max_file_mb in the config")
    return None


def read_bytes(path: Path, max_bytes: float = float("inf")) -> bytes:
    try:
        # O_NONBLOCK: a FIFO swapped in since discovery must not block the open
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            if problem := _stat_problem(path, os.fstat(f.fileno()), max_bytes):
                raise problem
            data = f.read()
    except OSError as exc:
        raise SkippedFile(path, f"cannot read ({exc.strerror or exc.__class__.__name__})",
                          "check the file exists and is readable") from None
    if not data:
        raise SkippedFile(path, "empty file (0 bytes)", "re-download or re-export it")
    return data


def read_document(path: Path, data: bytes, pdf_parser: str = "pypdfium2", limits=None) -> RawDocument:
    """Text of one file; ``limits`` (an ``IngestConfig``) bounds pages, characters and inflated size."""
    kind = KINDS[path.suffix.lower()]
    if kind == "pdf":
        # readers accept a BOM or up to 1 KB of junk before the header, so we do too
        if data.find(b"%PDF-", 0, 1024 + 5) < 0:
            raise SkippedFile(path, "not a PDF (no %PDF header)", "rename it to its real type or re-export as PDF")
        if limits is not None:
            _check_inflation(path, data, limits.max_inflate_ratio)
        max_pages = limits.max_pages if limits is not None else None
        raw = (_pdfium_pages if pdf_parser == "pypdfium2" else _pypdf_pages)(path, data, max_pages)
        raw.title = _pdf_title(raw.title)
    else:
        text, problems = _decode(path, data), []
        if kind == "html":
            # the HTML parser holds ~10x its input: cut first (markup is most of a page's bytes)
            if limits is not None and len(text) > 4 * limits.max_file_chars:
                text = text[:4 * limits.max_file_chars]
                problems.append((f"HTML cut at {4 * limits.max_file_chars:,} characters before parsing",
                                 "split the file or raise ingest.max_file_chars"))
            text = html_to_text(text)
        raw = RawDocument(path, kind, _first_heading(text), [text], problems)
    if limits is not None:
        _limit_chars(raw, limits)
    return raw


def _decode(path: Path, data: bytes) -> str:
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16 with a byte-order mark (Windows editors)
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise SkippedFile(path, "broken UTF-16 text", "re-save it as UTF-8") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        if b"\x00" in data[:4096]:
            raise SkippedFile(path, "binary content, not text", "check the file type") from None
        return data.decode("latin-1")


def _limit_chars(raw: RawDocument, limits) -> None:
    """Cut runaway pages and files: a 50 MB text file would otherwise take hours and gigabytes."""
    if raw.kind == "pdf":
        long = [i + 1 for i, p in enumerate(raw.pages) if len(p) > limits.max_page_chars]
        if long:
            raw.pages = [p[:limits.max_page_chars] for p in raw.pages]
            raw.problems.append((f"{_page_list(long)} cut at {limits.max_page_chars:,} characters",
                                 "raise ingest.max_page_chars if the text is real"))
    total = 0
    for i, page in enumerate(raw.pages):
        if total + len(page) > limits.max_file_chars:
            raw.pages = raw.pages[:i] + [page[:limits.max_file_chars - total]]
            raw.problems.append((f"text cut at {limits.max_file_chars:,} characters",
                                 "split the file or raise ingest.max_file_chars"))
            break
        total += len(page)


def _check_inflation(path: Path, data: bytes, ratio: float) -> None:
    """Refuse a flate bomb before a parser inflates it in memory: inflate each stream here in
    bounded pieces, counting bytes and keeping none. Small files get a 32 MB floor."""
    limit = max(ratio * len(data), 32e6)
    total = 0
    for match in _STREAM.finditer(data):
        inflater = zlib.decompressobj()
        pending = data[match.end():match.end() + (1 << 16)]
        offset = match.end() + len(pending)
        try:
            while pending:
                total += len(inflater.decompress(pending, 1 << 20))
                pending = inflater.unconsumed_tail
                if not pending and not inflater.eof and offset < len(data):
                    pending, offset = data[offset:offset + (1 << 16)], offset + (1 << 16)
                if total > limit:
                    raise SkippedFile(path, f"compressed streams inflate past {ratio:g}x the file size "
                                            "(a decompression bomb?)",
                                      "leave it out, or raise ingest.max_inflate_ratio if you trust it")
                if inflater.eof:
                    break
        except zlib.error:  # not a flate stream (JPEG, plain text): the parser deals with it
            continue


_STREAM = re.compile(rb"stream\r?\n")


def _page_list(numbers: list[int]) -> str:
    """'page 3' or 'pages 3, 5-9': ranges keep a 50,000-page list on one line."""
    ranges, start = [], numbers[0]
    for prev, n in zip(numbers, numbers[1:] + [None]):
        if n != prev + 1:
            ranges.append(str(start) if start == prev else f"{start}-{prev}")
            start = n
    return ("page " if len(numbers) == 1 else "pages ") + ", ".join(ranges)


def _bad_pages(raw: RawDocument, bad: list[int], error: str, total: int, max_pages: int | None) -> RawDocument:
    """A document whose every page failed is skipped; one with some bad pages keeps the rest."""
    if bad and len(bad) == len(raw.pages):
        raise _pdf_error(raw.path, f"no page could be read: {error}")
    if bad:
        raw.problems.append((f"{_page_list(bad)} of {total} unreadable ({error.strip()[:60]}), left out",
                             "repair it (e.g. qpdf in.pdf out.pdf) and ingest it again"))
    if max_pages is not None and total > max_pages:
        raw.problems.append((f"only the first {max_pages} of {total} pages read (ingest.max_pages)",
                             "split it or raise ingest.max_pages"))
    return raw


def _pdfium_pages(path: Path, data: bytes, max_pages: int | None = None) -> RawDocument:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise _pdf_error(path, str(exc)) from None
    try:
        total = len(pdf)
        pages, bad, error = [], [], ""
        for i in range(min(total, max_pages or total)):
            try:  # one broken page (a lying /Count, a bad /Kids entry) must not cost the others
                page = pdf[i]
                textpage = page.get_textpage()
                pages.append(textpage.get_text_range())
                textpage.close()
                page.close()
            except Exception as exc:  # noqa: BLE001 - PdfiumError mostly; any page failure costs that page only
                pages.append("")  # keeps page numbers, and so citations, right
                bad.append(i + 1)
                error = str(exc)
        title = _pdfium_title(pdf)
    finally:
        pdf.close()
    return _bad_pages(RawDocument(path, "pdf", title, pages), bad, error, total, max_pages)


def _pdfium_title(pdf) -> str:
    try:  # a damaged info dictionary costs the title, not the document
        return pdf.get_metadata_dict().get("Title", "")
    except Exception:  # noqa: BLE001
        return ""


def _pypdf_pages(path: Path, data: bytes, max_pages: int | None = None) -> RawDocument:
    with _quiet("pypdf"):
        return _pypdf_read(path, data, max_pages)


@contextlib.contextmanager
def _quiet(logger: str):
    """Silence a parser's own log lines and warnings ("incorrect startxref pointer", dozens per
    damaged file): the one skip or warning line per file says what matters."""
    log = logging.getLogger(logger)
    level, log.level = log.level, logging.CRITICAL + 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def _pypdf_read(path: Path, data: bytes, max_pages: int | None) -> RawDocument:
    import io

    import pypdf

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise _pdf_error(path, "password")
        total = len(reader.pages)
        title = (reader.metadata or {}).get("/Title", "") or ""
    except pypdf.errors.DependencyError:
        raise SkippedFile(path, "AES-encrypted PDF needs the 'cryptography' package",
                          "pip install cryptography, or use --pdf-parser pypdfium2") from None
    except (pypdf.errors.PyPdfError, RecursionError, KeyError, ValueError, TypeError, AttributeError) as exc:
        raise _pdf_error(path, str(exc) or exc.__class__.__name__) from None
    pages, bad, error = [], [], ""
    for i in range(min(total, max_pages or total)):
        try:  # pypdf raises many types on broken page objects
            pages.append(reader.pages[i].extract_text() or "")
        except Exception as exc:  # noqa: BLE001 - any page failure leaves only that page out
            pages.append("")
            bad.append(i + 1)
            error = str(exc) or exc.__class__.__name__
    return _bad_pages(RawDocument(path, "pdf", str(title), pages), bad, error, total, max_pages)


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
    """First line of the cleaned first page that reads like a title (running heads already gone), with
    the lines a wrapped title goes on to ("BERT: Pre-training of Deep Bidirectional Transformers for" /
    "Language Understanding"); a ResearchGate cover's "See discussions, stats, and author profiles for
    this publication at: https://www.researchgate.net/..." is no title."""
    lines = [line.strip() for line in first_page.splitlines()[:10]]
    for i, line in enumerate(lines[:8]):
        if _title_like(line) and not _COVER.search(line):
            return _wrapped(line, lines[i + 1:i + 3])
    return ""


def _title_like(line: str) -> bool:
    return 8 <= len(line) <= 200 and sum(ch.isalpha() for ch in line) > 0.6 * len(line) and "arxiv" not in line.lower()


_COVER = re.compile(r"researchgate\.net|^See discussions, stats, and author profiles", re.I)
# a line that stops where a title cannot: on a colon or comma, a word that needs what follows, or a hyphen
_GOES_ON = re.compile(r"(?:[:,\-–]|\b(?:for|of|by|from|and|or|the|to|in|via|with|a|an|on|at|into|towards?|through|"
                      r"without|versus|vs\.?|using|under|over|across|between|as|is|are))$", re.I)


def _wrapped(title: str, following: list[str]) -> str:
    """``title`` with the next lines it wraps onto: after a line that stops mid-phrase (``_GOES_ON``), a
    line that opens in lower case ("the Meaning of Their Prompts?"), or an all-capitals line after one
    ("ON THE VARIANCE OF THE ADAPTIVE LEARNING" / "RATE AND BEYOND"); never an author or e-mail line."""
    for line in following:
        if not _title_like(line) or "@" in line or len(title) + len(line) > 200:
            break
        shouting = title.isupper() and line.isupper()
        if not (_GOES_ON.search(title) or line[0].islower() or shouting):
            break
        title = f"{title} {line}"
    return title


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
