"""The on-disk index: chunks, vectors, FAISS index, page texts and a manifest.

Layout of ``indexes/<name>/``::

    CURRENT            name of the live generation (replaced atomically)
    gen-000007/        manifest.json, chunks.jsonl, vectors.npy, faiss.index, pages.jsonl
    .lock              held by the one writer

Every update writes a complete new generation and then flips ``CURRENT``; a process killed
at any point leaves the previous generation live. ``vectors.npy`` is the source of truth and
the FAISS index is rebuilt from it, so removing a document is exact.

An index on a vector engine (``manifest.backend``, see ``retrieval.backends``) has no
``vectors.npy``/``faiss.index``: its vectors sit in the engine under their chunk ids, new ones are
inserted before the flip, and only the chunk ids of the live generation count as search results,
so an interrupted ingest shows no half-document. ``engine-journal.json`` names the ids whose
presence in the engine may disagree with the live generation; the next commit deletes the strays.
"""
from __future__ import annotations

import dataclasses
import fcntl
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ragqa.config import indexes_dir
from ragqa.errors import ConfigError, EmbedderMismatch, IndexBusy, IndexNotFound
from retrieval import _atomic
from retrieval.backends import FaissBackend, open_backend
from retrieval.faiss_index import build_faiss, load_faiss, save_faiss

FORMAT_VERSION = 1


@dataclass
class Chunk:
    """One embedded passage and where it came from."""

    id: str
    doc_id: str
    text: str
    title: str
    path: str
    page: int  # first page (1-based); 1 for Markdown/HTML/text
    page_end: int  # last page the chunk reaches
    section: str  # heading the chunk sits under ('' before the first heading)
    start: int  # character offset of the chunk in page ``page``'s cleaned text
    end: int  # character offset of the chunk's end in page ``page_end``'s cleaned text
    tokens: int  # embedder tokens of the embedded text, special tokens included

    @property
    def location(self) -> str:
        """How people cite it: "bert.pdf, p. 3" or "bert.pdf, p. 3-4"."""
        pages = f"p. {self.page}" + (f"-{self.page_end}" if self.page_end != self.page else "")
        return f"{Path(self.path).name}, {pages}"


@dataclass
class Manifest:
    name: str
    embedder: str
    dim: int
    normalized: bool = True
    metric: str = "inner_product"
    chunking: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)  # path -> {sha256, size, mtime_ns, doc_id}
    docs: dict = field(default_factory=dict)  # doc_id -> {title, kind, pages, paths, chunk_ids}
    faiss: str = "Flat"
    version: int = FORMAT_VERSION
    probe: list = field(default_factory=list)  # the embedder's vector for PROBE_TEXT: same name, same weights?
    lexical: str = ""  # BM25 analyser the index was built for (retrieval.lexical.ANALYSER); "" before it was recorded
    backend: dict = field(default_factory=dict)  # where the vectors live (retrieval.backends); {} = faiss


def validate_name(name: str) -> str:
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise ConfigError(f"index name {name!r}: use letters, digits, '-', '_' or '.'")
    return name


def index_path(name: str) -> Path:
    return indexes_dir() / validate_name(name)


def list_indexes() -> list[str]:
    root = indexes_dir()
    return sorted(p.name for p in root.iterdir() if (p / "CURRENT").exists()) if root.is_dir() else []


class IndexStore:
    """An opened index generation: read it, or derive the next one with ``commit``."""

    def __init__(self, root: Path, manifest: Manifest, chunks: list[Chunk], vectors: np.ndarray | None,
                 pages: dict[str, list[str]], faiss_index=None, backend=None):
        self.root, self.manifest, self.chunks, self.vectors = root, manifest, chunks, vectors
        self.pages = pages  # doc_id -> cleaned text of each page
        self._faiss = faiss_index
        self.row_of = {c.id: i for i, c in enumerate(chunks)}
        self.backend = backend or FaissBackend()
        # engine only: vectors of chunks added since the last commit, and the ids live in the engine then
        self.pending: dict[str, np.ndarray] = {}
        self.base_ids: set[str] = set(self.row_of)

    @property
    def on_engine(self) -> bool:
        return not isinstance(self.backend, FaissBackend)

    def close(self) -> None:
        """Let go of the engine, if any (a milvus-lite file serves one process at a time)."""
        if self.on_engine:
            self.backend.close()

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def faiss(self):
        if self._faiss is None:
            self._faiss = build_faiss(self.vectors)
        return self._faiss

    @classmethod
    def open(cls, name: str, embedder_id: str | None = None, config=None) -> "IndexStore":
        root = index_path(name)
        current = root / "CURRENT"
        if not current.exists():
            known = ", ".join(list_indexes()) or "none yet"
            raise IndexNotFound(f"index {name!r} not found in {indexes_dir()} (known: {known}) — "
                                f"build it with: ragqa ingest PATH --index {name}")
        for attempt in range(3):
            try:
                return cls._load(root, root / current.read_text().strip(), embedder_id, config)
            except FileNotFoundError:
                # two commits finished while we were loading: our generation is gone, the live
                # one is complete (a commit keeps the previous generation for exactly this reader)
                if not current.exists():
                    raise IndexNotFound(f"index {name!r} was removed while it was being opened — "
                                        "see: ragqa index list") from None
                if attempt == 2:
                    raise

    @classmethod
    def _load(cls, root: Path, gen: Path, embedder_id: str | None, config=None) -> "IndexStore":
        manifest = _manifest_in(gen)
        check_embedder(manifest, embedder_id)
        check_analyser(manifest)
        backend = open_backend(manifest.backend, root, config)
        if not isinstance(backend, FaissBackend):  # reachable, ours, loaded: before any search
            backend.check(manifest.dim, manifest.embedder, manifest.name, new=False)
            backend.load()
        with open(gen / "chunks.jsonl", encoding="utf-8") as f:
            chunks = [Chunk(**json.loads(line)) for line in f]
        pages: dict[str, list[str]] = {}
        with open(gen / "pages.jsonl", encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                pages[rec["doc_id"]] = rec["pages"]
        if not isinstance(backend, FaissBackend):
            return cls(root, manifest, chunks, None, pages, backend=backend)
        return cls(root, manifest, chunks, np.load(gen / "vectors.npy"), pages, load_faiss(gen / "faiss.index"))

    @classmethod
    def empty(cls, name: str, embedder_id: str, dim: int, chunking: dict, backend: dict | None = None,
              config=None) -> "IndexStore":
        """A new index; ``backend`` is its ``retrieval.backends.new_record`` (default FAISS). An engine is
        checked here (reachable, credentials, no foreign vectors in the collection), before any write."""
        from retrieval.backends import same_place
        from retrieval.lexical import ANALYSER

        left = read_journal(index_path(name)).get("backend", {})
        if backend and same_place(left, backend):  # the first ingest into this collection was interrupted: its vectors
            backend = left                        # are ours, named by the journal, and go at the first commit
        manifest = Manifest(name=validate_name(name), embedder=embedder_id, dim=dim, chunking=chunking,
                            lexical=ANALYSER, backend=backend or {})
        store = open_backend(manifest.backend, index_path(name), config)
        if isinstance(store, FaissBackend):
            return cls(index_path(name), manifest, [], np.zeros((0, dim), np.float32), {})
        store.check(dim, embedder_id, name, new=True)
        return cls(index_path(name), manifest, [], None, {}, backend=store)

    def vectors_of(self, rows) -> np.ndarray:
        """The stored vectors of chunk rows ``rows`` (vector reuse at ingest, migration)."""
        if not self.on_engine:
            return self.vectors[rows]
        ids = [self.chunks[r].id for r in rows]
        out = self.backend.get([i for i in ids if i not in self.pending], self.manifest.dim)
        fetched = iter(out)
        return np.array([self.pending[i] if i in self.pending else next(fetched) for i in ids],
                        np.float32).reshape(len(ids), self.manifest.dim)

    def dense_search(self, qvec: np.ndarray, n: int, rows: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The ``n`` rows nearest the query vector ``qvec`` (shape 1 x dim), optionally among ``rows``."""
        if not self.on_engine:
            if rows is not None:  # one document: exact scan of its rows is cheaper than a filtered ANN
                scores = self.vectors[rows] @ qvec[0]
                order = np.argsort(-scores)[:n]
                return [(int(rows[i]), float(scores[i])) for i in order]
            scores, ids = self.faiss.search(qvec, min(n, len(self.chunks)))
            return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
        docs = sorted({self.chunks[r].doc_id for r in rows}) if rows is not None else None
        want = min(n, len(self.chunks) if rows is None else len(rows))
        for ask in (n, 4 * n):  # vectors an interrupted ingest left behind may take places: ask once more
            hits = self.backend.search(qvec[0], ask, docs)
            found = list(dict.fromkeys((self.row_of[i], float(s)) for i, s in hits if i in self.row_of))
            if len(found) >= want or len(hits) < ask:
                break
        return found[:n]

    def doc_rows(self, doc_id: str) -> np.ndarray:
        ids = self.manifest.docs.get(doc_id, {}).get("chunk_ids", [])
        return np.array([self.row_of[i] for i in ids], dtype=np.int64)

    def find_doc(self, name: str) -> str:
        """Resolve a document by id, file name, path or title (case-insensitive)."""
        key = name.lower()
        for doc_id, doc in self.manifest.docs.items():
            names = [doc_id, doc["title"]] + [n for p in doc["paths"] for n in (p, Path(p).name, Path(p).stem)]
            if key in (n.lower() for n in names):
                return doc_id
        raise IndexNotFound(f"document {name!r} is not in index {self.name!r} — "
                            f"see: ragqa index stats --index {self.name}")

    def replace(self, remove_docs: set[str], add: list[tuple[dict, list[Chunk], np.ndarray, list[str]]],
                files: dict) -> "IndexStore":
        """A new in-memory generation without ``remove_docs`` and with ``add`` appended.

        ``add`` holds (doc record, chunks, vectors, page texts); ``files`` is the new file map.
        """
        keep = [i for i, c in enumerate(self.chunks) if c.doc_id not in remove_docs]
        chunks = [self.chunks[i] for i in keep] + [c for _, cs, _, _ in add for c in cs]
        vectors = None if self.on_engine else \
            np.concatenate([self.vectors[keep]] + [v for _, _, v, _ in add]).astype(np.float32)
        docs = {d: r for d, r in self.manifest.docs.items() if d not in remove_docs}
        pages = {d: p for d, p in self.pages.items() if d not in remove_docs}
        for rec, cs, _, page_texts in add:
            docs[rec["doc_id"]] = {**rec, "chunk_ids": [c.id for c in cs]}
            pages[rec["doc_id"]] = page_texts
        manifest = dataclasses.replace(self.manifest, files=files, docs=docs)
        new = IndexStore(self.root, manifest, chunks, vectors, pages, backend=self.backend)
        if self.on_engine:
            new.base_ids = self.base_ids
            new.pending = {i: v for i, v in self.pending.items() if i in new.row_of}
            new.pending.update((c.id, v) for _, cs, vs, _ in add for c, v in zip(cs, vs))
        return new

    def commit(self, before_flip=None) -> None:
        """Write this generation next to the live one, then make it live atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self.on_engine:
            return self._commit_engine(before_flip)
        self._write_generation(before_flip)

    def _commit_engine(self, before_flip) -> None:
        """Insert the new vectors, flip, then delete the vectors no generation names. A crash at any
        point leaves strays the journal names (invisible to search) and the next commit deletes."""
        journal, live = self.root / JOURNAL, set(self.row_of)
        self.backend.create(self.manifest.dim, self.manifest.embedder)  # a new index's collection
        strays = set(read_journal(self.root).get("ids", [])) - self.base_ids
        if strays:  # before inserting: an id re-added now must not end up in the engine twice
            self.backend.delete(sorted(strays))
        gone = self.base_ids - live
        _atomic.write_bytes(journal, json.dumps({"backend": self.manifest.backend,
                                                 "ids": sorted(set(self.pending) | gone)}).encode())
        if self.pending:
            ids = list(self.pending)
            self.backend.add(ids, np.stack([self.pending[i] for i in ids]),
                             [self.chunks[self.row_of[i]].doc_id for i in ids])
            self.backend.flush()
        self.manifest.faiss = ""
        self._write_generation(before_flip)
        if gone:
            self.backend.delete(sorted(gone))
        journal.unlink()
        self.pending, self.base_ids = {}, live

    def _write_generation(self, before_flip) -> None:
        number = 1 + max([int(p.name[4:]) for p in self.root.glob("gen-[0-9]*") if p.name[4:].isdigit()],
                         default=0)
        gen, tmp = self.root / f"gen-{number:06d}", self.root / f".gen-{number:06d}.tmp"
        live = (self.root / "CURRENT").read_text().strip() if (self.root / "CURRENT").exists() else ""
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            if not self.on_engine:
                self._faiss = build_faiss(self.vectors)
                self.manifest.faiss = type(self._faiss).__name__
            self._write(tmp)
            _atomic.fsync_tree(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # nothing half-written is left behind
            raise
        tmp.rename(gen)
        _atomic.fsync_dir(self.root)
        if before_flip:  # test hook: lets a test kill -9 the process at the worst moment
            before_flip(gen)
        _atomic.write_bytes(self.root / "CURRENT", gen.name.encode())
        # the generation live until now stays: a reader that read CURRENT a moment ago may still be
        # loading it; it goes at the next commit
        self._drop_old_generations(keep={gen.name, live})

    def _write(self, folder: Path) -> None:
        (folder / "manifest.json").write_text(json.dumps(dataclasses.asdict(self.manifest), indent=1))
        with open(folder / "chunks.jsonl", "w", encoding="utf-8") as f:
            for c in self.chunks:
                f.write(_json_line(dataclasses.asdict(c)))
        with open(folder / "pages.jsonl", "w", encoding="utf-8") as f:
            for doc_id, pages in self.pages.items():
                f.write(_json_line({"doc_id": doc_id, "pages": pages}))
        if not self.on_engine:
            np.save(folder / "vectors.npy", self.vectors)
            save_faiss(self._faiss, folder / "faiss.index")

    def _drop_old_generations(self, keep: set[str]) -> None:
        for p in self.root.iterdir():
            if p.is_dir() and p.name not in keep and (p.name.startswith("gen-") or p.name.startswith(".gen-")):
                shutil.rmtree(p, ignore_errors=True)


def _json_line(obj) -> str:
    """JSON that UTF-8 can hold: a file name that is not UTF-8 (latin-1 ``café.md``) reaches us
    with lone surrogates (``os.fsdecode``); as ``\\udce9`` escapes they round-trip losslessly,
    so the file can be found again under its exact bytes."""
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(obj, ensure_ascii=False)) + "\n"


_SURROGATE = re.compile("[\ud800-\udfff]")
JOURNAL = "engine-journal.json"


PROBE_TEXT = "ragqa probe: attention heads retrieve passages about transformers."


def embedder_probe(embedder) -> list[float]:
    return [round(float(x), 5) for x in embedder.embed_batch([PROBE_TEXT])[0]]


def check_same_model(manifest: Manifest, embedder) -> None:
    """Names are not enough: a model folder replaced in place keeps its name and changes the
    vectors (or their size, which FAISS answers with an AssertionError)."""
    rebuild = (f"rebuild it: ragqa index remove --index {manifest.name} -y, then ragqa ingest PATH "
               f"--index {manifest.name}")
    if embedder.dim != manifest.dim:
        raise EmbedderMismatch(f"index {manifest.name!r} holds {manifest.dim}-dimensional vectors but embedder "
                               f"{embedder.id!r} now gives {embedder.dim} (its model changed) — {rebuild}")
    if manifest.probe:
        now = np.asarray(embedder_probe(embedder), np.float32)
        if float(now @ np.asarray(manifest.probe, np.float32)) < 0.99:  # bf16 and thread noise stay far above
            raise EmbedderMismatch(f"index {manifest.name!r} was built with other weights under the name "
                                   f"{embedder.id!r} (its model folder changed) — {rebuild}")


def check_analyser(manifest: Manifest) -> None:
    """Refuse an index recorded for another BM25 analyser (a later version's segmenter, say): its
    keyword search would not match what it was built and evaluated with."""
    from retrieval.lexical import ANALYSER

    if manifest.lexical and manifest.lexical != ANALYSER:
        raise EmbedderMismatch(f"index {manifest.name!r} was built for the BM25 analyser {manifest.lexical!r}; this "
                               f"ragqa analyses text with {ANALYSER!r} — rebuild it: ragqa index remove --index "
                               f"{manifest.name} -y, then ragqa ingest PATH --index {manifest.name}")


def check_embedder(manifest: Manifest, embedder_id: str | None) -> None:
    if embedder_id and embedder_id != manifest.embedder:
        raise EmbedderMismatch(
            f"index {manifest.name!r} was built with embedder {manifest.embedder!r}, not {embedder_id!r} — "
            f"set model = \"{manifest.embedder}\" under [embedder] in your config file (ragqa.toml or --config), "
            f"or rebuild into a new index: ragqa ingest PATH --index NEW_NAME")


class WriteLock:
    """Exclusive writer lock on an index; a second ingest fails fast instead of racing."""

    def __init__(self, name: str):
        self.path = index_path(name) / ".lock"

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "w")
        try:
            fcntl.flock(self._f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._f.close()
            raise IndexBusy(f"index {self.path.parent.name!r} is being written by another process — "
                            "wait for it to finish") from None
        return self

    def __exit__(self, *exc):
        fcntl.flock(self._f, fcntl.LOCK_UN)
        self._f.close()


def remove_index(name: str) -> None:
    root = index_path(name)
    # a folder without CURRENT is what a killed remove leaves: not listed, but removable
    if not root.is_dir():
        raise IndexNotFound(f"index {name!r} not found in {indexes_dir()} — see: ragqa index list")
    with WriteLock(name):
        manifest = read_manifest(name) if (root / "CURRENT").exists() else None
        if manifest and manifest.backend.get("kind", "faiss") != "faiss":  # the engine's copy first: it may refuse
            backend = open_backend(manifest.backend, root)
            backend.drop()
            backend.close()
        (root / "CURRENT").unlink(missing_ok=True)  # first, so a crash mid-delete leaves no half-index that looks live
    shutil.rmtree(root)


def read_journal(root: Path) -> dict:
    """What an engine-backed index's last commit was doing: {} when it finished."""
    path = root / JOURNAL
    return json.loads(path.read_text()) if path.exists() else {}


def read_manifest(name: str) -> Manifest:
    """The live manifest alone, without connecting to an engine (``ragqa index list``)."""
    root = index_path(name)
    if not (root / "CURRENT").exists():
        raise IndexNotFound(f"index {name!r} not found in {indexes_dir()} — see: ragqa index list")
    return _manifest_in(root / (root / "CURRENT").read_text().strip())


def _manifest_in(gen: Path) -> Manifest:
    return Manifest(**json.loads((gen / "manifest.json").read_text(encoding="utf-8")))


def check_backend_choice(name: str, config) -> None:
    """``--backend``/``--uri``/``--collection`` name where a new index lives; for an existing index that
    lives elsewhere they are a mistake, not a move."""
    from retrieval.backends import new_record, same_place

    if not (index_path(name) / "CURRENT").exists():
        return
    have = read_manifest(name).backend or {"kind": "faiss"}
    want = new_record(config, name)
    if have.get("kind") != want["kind"] or (want["kind"] != "faiss" and not same_place(have, want)):
        where = have.get("kind") if have.get("kind") == "faiss" else f"{have['kind']} {have['uri']} {have['collection']}"
        raise ConfigError(f"index {name!r} keeps its vectors in {where}; --backend, --uri and --collection choose "
                          f"where a new index lives — move this one with: ragqa index migrate --index {name} "
                          f"--to milvus --uri URI, or ingest into a new index")


def reach_new_backend(name: str, config) -> None:
    """For a new index on an engine server: reachable, credentials accepted — checked before the embedder
    takes its seconds to load, writing nothing (an existing index is checked when it is opened; a
    milvus-lite file has nothing to reach)."""
    from retrieval.backends import new_record, open_backend

    if (index_path(name) / "CURRENT").exists() or config.backend == "faiss" or "://" not in (config.uri or ""):
        return
    backend = open_backend(new_record(config, name), index_path(name), config)
    try:
        backend.exists()
    finally:
        backend.close()


def remove_document(name: str, doc: str) -> None:
    """Drop one document (all its paths and chunks) from index ``name``."""
    with WriteLock(name):
        store = IndexStore.open(name)
        doc_id = store.find_doc(doc)
        files = {k: v for k, v in store.manifest.files.items() if v["doc_id"] != doc_id}
        store.replace({doc_id}, [], files).commit()
