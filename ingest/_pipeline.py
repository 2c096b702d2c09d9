"""files -> cleaned, chunked, embedded documents -> a new index generation."""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ingest import _clean, _readers
from ingest._chunk import chunk_document, embed_text
from ragqa.config import Config
from ragqa.errors import IndexNotFound, SkippedFile
from retrieval.store import IndexStore, WriteLock


@dataclass
class IngestReport:
    index: str
    added: list[str] = field(default_factory=list)  # files whose content was new
    unchanged: list[str] = field(default_factory=list)
    aliased: list[str] = field(default_factory=list)  # same content already stored under another path
    skipped: list[SkippedFile] = field(default_factory=list)
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_total: int = 0
    embedded: int = 0  # embeddings computed in this run
    truncated: int = 0  # chunks longer than the embedder's window (should stay 0)
    seconds: dict = field(default_factory=dict)  # read, chunk, embed, write

    @property
    def ok(self) -> bool:
        """Anything usable came out: new, unchanged or aliased files (skips are warnings)."""
        return bool(self.added or self.unchanged or self.aliased)


@dataclass
class _Plan:
    read: list  # (path, doc_id) of files whose content is new
    new_files: dict  # the file map after this run: path -> sha256, size, mtime_ns, doc_id
    drop: set  # doc ids whose only file changed content
    files_changed: bool  # the file map differs (a touched or renamed file needs a commit too)


@dataclass
class _Parsed:
    path: str
    record: dict
    pages: list[str]
    chunks: list


def ingest(paths: list[str | Path], index: str = "default", config: Config | None = None,
           embedder=None, progress: bool = True, before_flip=None) -> IngestReport:
    """Add or update ``paths`` (files or folders) in ``index``.

    Unchanged files are skipped without embedding, changed ones replace their old chunks,
    identical content under two paths is stored once. Unreadable files are reported in
    ``IngestReport.skipped`` and the rest of the batch goes on.
    """
    from retrieval.embed import load_embedder

    config = config or Config()
    report = IngestReport(index)
    files, report.skipped = _readers.discover([Path(p) for p in paths])
    embedder = embedder or load_embedder(config.embedder)
    with WriteLock(index):
        store = _open_or_create(index, embedder, config)
        plan = _plan(store, files, report)
        parsed = _parse_all(plan.read, store, config, embedder, report, progress)
        store = _update(store, plan, parsed, embedder, report, progress)
        if plan.read or plan.drop or plan.files_changed:
            t = time.perf_counter()
            store.commit(before_flip=before_flip)
            report.seconds["write"] = time.perf_counter() - t
    report.chunks_total = len(store.chunks)
    return report


def _open_or_create(index: str, embedder, config: Config) -> IndexStore:
    try:
        return IndexStore.open(index, embedder_id=embedder.id)
    except IndexNotFound:
        chunking = {"chunk_tokens": min(config.ingest.chunk_tokens, embedder.max_tokens),
                    "overlap_tokens": config.ingest.overlap_tokens, "pdf_parser": config.ingest.pdf_parser,
                    "embedded_text": "title — section, newline, chunk"}
        return IndexStore.empty(index, embedder.id, embedder.dim, chunking)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _plan(store: IndexStore, files: list[Path], report: IngestReport) -> _Plan:
    """Sort files into unchanged / aliased / to read, using size+mtime before hashing."""
    old_files = store.manifest.files
    new_files = dict(old_files)
    read, sha_of_new = [], {}
    for path in files:
        key = str(path)
        try:
            st = path.stat()
            known = old_files.get(key)
            if known and known["size"] == st.st_size and known["mtime_ns"] == st.st_mtime_ns:
                report.unchanged.append(key)
                continue
            sha = file_sha256(path)
        except OSError as exc:
            report.skipped.append(SkippedFile(path, f"cannot read ({exc.strerror})", "check permissions"))
            continue
        doc_id = sha[:16]
        entry = {"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "doc_id": doc_id}
        if known and known["sha256"] == sha:  # touched, not changed
            report.unchanged.append(key)
        elif doc_id in store.manifest.docs or doc_id in sha_of_new.values():
            report.aliased.append(key)
        else:
            read.append((path, doc_id))
        sha_of_new[key] = doc_id
        new_files[key] = entry
    drop = {old_files[k]["doc_id"] for k in sha_of_new if k in old_files and old_files[k]["doc_id"] != sha_of_new[k]}
    return _Plan(read, new_files, drop, new_files != old_files)


def _parse_all(paths, store, config, embedder, report, progress) -> list[_Parsed]:
    parsed, t_read, t_chunk = [], 0.0, 0.0
    for path, doc_id in tqdm(paths, desc="reading", unit="file", disable=not progress or not paths):
        try:
            t = time.perf_counter()
            raw = _readers.read_document(path, _readers.read_bytes(path), config.ingest.pdf_parser)
            pages = _clean.clean_pages(raw.pages)
            if sum(len(p.strip()) for p in pages) < config.ingest.min_chars:
                reason = "no text layer (scanned or image-only PDF)" if raw.kind == "pdf" else "no text"
                raise SkippedFile(path, reason, "run OCR first (e.g. ocrmypdf in.pdf out.pdf)" if raw.kind == "pdf"
                                  else "add text to it or leave it out")
            t_read += time.perf_counter() - t
            t = time.perf_counter()
            parsed.append(_chunk(path, doc_id, raw, pages, store, embedder))
            t_chunk += time.perf_counter() - t
        except SkippedFile as exc:
            report.skipped.append(exc)
    report.seconds.update(read=t_read, chunk=t_chunk)
    return parsed


def _chunk(path: Path, doc_id: str, raw, pages: list[str], store: IndexStore, embedder) -> _Parsed:
    title = raw.title or _readers.guess_title(pages[0]) or path.stem
    spans = _clean.sections("\n".join(pages), markdown=raw.kind in ("markdown", "html"))
    max_tokens = min(store.manifest.chunking["chunk_tokens"], embedder.max_tokens)
    chunks = chunk_document(doc_id, title, str(path), pages, spans, embedder.token_offsets,
                            embedder.count_tokens, max_tokens, store.manifest.chunking["overlap_tokens"])
    record = {"doc_id": doc_id, "title": title, "kind": raw.kind, "pages": len(pages), "paths": [str(path)]}
    return _Parsed(str(path), record, pages, chunks)


def _update(store: IndexStore, plan: _Plan, parsed: list[_Parsed], embedder, report, progress) -> IndexStore:
    ok_paths = {p.path for p in parsed}
    failed = {str(p) for p, _ in plan.read} - ok_paths
    files = {k: v for k, v in plan.new_files.items() if k not in failed}
    for key in failed:  # a file that now fails keeps its previous version, if any
        if key in store.manifest.files:
            files[key] = store.manifest.files[key]
    drop = {d for d in plan.drop if not any(v["doc_id"] == d for v in files.values())}
    texts = [embed_text(c.title, c.section, c.text) for p in parsed for c in p.chunks]
    t = time.perf_counter()
    vectors = embedder.embed_batch(texts, progress=progress) if texts else None
    report.seconds["embed"] = time.perf_counter() - t
    report.embedded = len(texts)
    add, row = [], 0
    for p in parsed:
        n = len(p.chunks)
        add.append((p.record, p.chunks, vectors[row:row + n], p.pages))
        row += n
    report.added = sorted(ok_paths)
    report.chunks_added = len(texts)
    report.chunks_removed = sum(len(store.manifest.docs[d]["chunk_ids"]) for d in drop)
    report.truncated = sum(c.tokens > embedder.max_tokens for p in parsed for c in p.chunks)
    new = store.replace(drop, add, files)
    for doc in new.manifest.docs.values():  # keep each document's path list in step with the file map
        doc["paths"] = sorted(k for k, v in files.items() if v["doc_id"] == doc["doc_id"])
    return new
