"""Where an index's vectors live: FAISS files inside each generation (default), or a vector engine
reached through llama-index's vector-store integrations (Milvus: a server, a cluster or a
milvus-lite file; milvus-lite 3 is a Python implementation of the Milvus gRPC service over
faiss, so the client code that tests and CI run is the code that talks to a server).

Either way the generation folder stays the source of truth for the manifest, the chunks and the
page texts, so citations, BM25 and ``--doc`` scoping work the same on both. A backend only stores
vectors under chunk ids and searches them; the store (``retrieval.store``) decides which chunk ids
are live. Chunk ids hash the document's content and the chunk's span, so one id always names the
same text and, with the index's one embedder, the same vector.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Protocol

import numpy as np

from ragqa.config import IndexConfig
from ragqa.errors import ConfigError, EngineError

# collection properties: whose vectors these are (the index's name plus a random tag, so two ragqa installs with
# an index of the same name never take each other's collection for their own)
META_EMBEDDER, META_INDEX = "ragqa.embedder", "ragqa.index"


class EngineBackend(Protocol):
    """What the store asks of a vector engine (``MilvusBackend``; a Qdrant one would implement the same).
    FAISS is not behind it: the store keeps FAISS vectors in memory and searches rows itself."""

    kind: str

    def check(self, dim: int, embedder: str, index: str, new: bool) -> None:
        """Refuse, writing nothing, a collection holding other vectors (or a missing one, unless ``new``)."""

    def create(self, dim: int, embedder: str) -> None: ...
    def load(self) -> None: ...
    def add(self, ids: list[str], vectors: np.ndarray, doc_ids: list[str]) -> None: ...
    def flush(self) -> None: ...
    def delete(self, ids: list[str]) -> None: ...
    def get(self, ids: list[str], dim: int) -> np.ndarray: ...
    def drop(self) -> None: ...
    def close(self) -> None: ...

    def search(self, qvec: np.ndarray, n: int, doc_ids: list[str] | None = None) -> list[tuple[str, float]]:
        """The ``n`` chunk ids nearest ``qvec`` (inner product), optionally within ``doc_ids``."""


class FaissBackend:
    """Today's layout: ``vectors.npy`` and ``faiss.index`` written into every generation. The store
    keeps the vectors in memory and searches them itself (rows, not ids: no lookups on the hot path)."""

    kind = "faiss"
    record = {"kind": "faiss"}

    def describe(self) -> str:
        return "faiss (files in the index folder)"


class MilvusBackend:
    """Vectors in a Milvus collection through ``llama_index.vector_stores.milvus.MilvusVectorStore``.

    The same client code talks to a milvus-lite file (tests, CI, one machine) and to a server or
    cluster (``http://host:19530`` plus a token read from ``IndexConfig.token_env``).
    """

    kind = "milvus"

    def __init__(self, record: dict, root: Path, token: str = "", timeout_s: float = 10.0, ef: int = 256):
        self.record, self.root, self._token, self._timeout, self.ef = record, root, token, timeout_s, ef
        self.token_env = record.get("token_env", "RAGQA_MILVUS_TOKEN")
        self._vs = self._mc = None

    @property
    def uri(self) -> str:
        """A relative uri is a milvus-lite file inside the index folder (moves with it)."""
        uri = self.record["uri"]
        return uri if "://" in uri or Path(uri).is_absolute() else str(self.root / uri)

    @property
    def collection(self) -> str:
        return self.record["collection"]

    def describe(self) -> str:
        return f"milvus {self.record['uri']} collection {self.collection}"

    # --- connecting and checking, before anything is written -------------------------------------------------

    @property
    def lite(self) -> bool:
        return "://" not in self.uri

    def _admin(self):
        """A bare pymilvus client for checks and housekeeping: llama-index's store would create the
        collection on construction, and a check must write nothing."""
        if self._mc is None:
            with engine_errors(self):
                from pymilvus import MilvusClient

                self._mc = MilvusClient(uri=self.uri, token=self._token, timeout=self._timeout)
                if self.lite:
                    _LITE_USERS[self.uri] = _LITE_USERS.get(self.uri, 0) + 1
        return self._mc

    def _client(self):
        """The llama-index vector store on the existing collection (made once per backend)."""
        self._admin()  # counts this backend among the file's users
        if self._vs is None:
            with engine_errors(self):
                from llama_index.vector_stores.milvus import MilvusVectorStore
                from llama_index.vector_stores.milvus.base import IndexManagement

                self._vs = MilvusVectorStore(uri=self.uri, token=self._token, collection_name=self.collection,
                                             similarity_metric="IP", consistency_level="Strong",
                                             index_management=IndexManagement.NO_VALIDATION,
                                             use_async_client=False, timeout=self._timeout)
        return self._vs

    def exists(self) -> bool:
        with engine_errors(self):
            return self.collection in self._admin().list_collections()

    @property
    def owner(self) -> str:
        return self.record.get("owner", "")

    def check(self, dim: int, embedder: str, index: str, new: bool) -> None:
        """Refuse a collection that holds other vectors: another size, another embedder, another index's.
        Writes nothing."""
        if not self.exists():
            if new:
                return
            raise EngineError(f"{self.describe()}: the collection is missing on the engine — the index's vectors "
                              f"are gone; rebuild: ragqa index remove --index {index} -y, then ragqa ingest PATH "
                              f"--index {index} --backend milvus")
        with engine_errors(self):
            info = self._admin().describe_collection(self.collection)
        have = next((f["params"]["dim"] for f in info["fields"] if "dim" in f.get("params", {})), None)
        props = info.get("properties", {})
        if have is not None and int(have) != dim:
            raise EngineError(f"{self.describe()} holds {have}-dimensional vectors but index {index!r} needs {dim} "
                              f"({embedder}) — use another collection: --collection NAME")
        if props.get(META_EMBEDDER, embedder) != embedder:
            raise EngineError(f"{self.describe()} holds vectors of embedder {props[META_EMBEDDER]!r}, not "
                              f"{embedder!r} — use another collection (--collection NAME) or that embedder")
        mine = props.get(META_INDEX) == self.owner
        if (new and not mine and self.count()) or (not new and props.get(META_INDEX, self.owner) != self.owner):
            raise EngineError(f"{self.describe()} holds the vectors of another index "
                              f"({props.get(META_INDEX) or 'not made by ragqa'}) — use another collection: "
                              "--collection NAME")

    def create(self, dim: int, embedder: str) -> None:
        """Make the collection if it is not there, with an HNSW index (a server's own, faiss's on
        milvus-lite): named rather than AUTOINDEX so that ``ef`` means the same on both."""
        if self.exists():
            return
        with engine_errors(self):
            from llama_index.vector_stores.milvus import MilvusVectorStore

            self._admin()
            self._vs = MilvusVectorStore(uri=self.uri, token=self._token, collection_name=self.collection, dim=dim,
                                         similarity_metric="IP", consistency_level="Strong",
                                         index_config={"index_type": "HNSW", "M": 16, "efConstruction": 200},
                                         collection_properties={META_EMBEDDER: embedder, META_INDEX: self.owner},
                                         use_async_client=False, timeout=self._timeout)

    def load(self) -> None:
        """A collection must be loaded into memory before a search (a server keeps it loaded)."""
        with engine_errors(self):
            self._admin().load_collection(self.collection)

    def count(self) -> int:
        with engine_errors(self):
            rows = self._admin().query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    # --- reading and writing ---------------------------------------------------------------------------------

    def search(self, qvec: np.ndarray, n: int, doc_ids: list[str] | None = None) -> list[tuple[str, float]]:
        from llama_index.core.vector_stores.types import (FilterOperator, MetadataFilter, MetadataFilters,
                                                          VectorStoreQuery)

        filters = None
        if doc_ids is not None:  # the engine filters on its doc_id column before ranking
            filters = MetadataFilters(filters=[MetadataFilter(key="doc_id", value=list(doc_ids),
                                                              operator=FilterOperator.IN)])
        query = VectorStoreQuery(query_embedding=[float(x) for x in qvec], similarity_top_k=n, filters=filters)
        with engine_errors(self):
            # HNSW explores ``ef`` candidates, and a server refuses an ef below the number asked for
            result = self._client().query(query, milvus_search_config={"params": {"ef": max(self.ef, n)}})
        return list(zip(result.ids or [], result.similarities or []))

    def add(self, ids: list[str], vectors: np.ndarray, doc_ids: list[str], batch: int = 2000) -> None:
        """Insert vectors as llama-index nodes: id = chunk id, ref doc = document id, no text (the
        chunk text lives in the index folder; storing it twice would be two copies to keep in step)."""
        from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

        with engine_errors(self):
            for i in range(0, len(ids), batch):
                nodes = [TextNode(id_=cid, text="", embedding=vec.tolist(),
                                  relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc)})
                         for cid, vec, doc in zip(ids[i:i + batch], vectors[i:i + batch], doc_ids[i:i + batch])]
                self._client().add(nodes)

    def flush(self) -> None:
        """Persist what was inserted before the generation naming it goes live."""
        with engine_errors(self):
            self._admin().flush(self.collection)

    def delete(self, ids: list[str], batch: int = 2000) -> None:
        with engine_errors(self):
            for i in range(0, len(ids), batch):
                self._client().delete_nodes(node_ids=ids[i:i + batch])

    def get(self, ids: list[str], dim: int, batch: int = 2000) -> np.ndarray:
        """The stored vectors of ``ids``, in that order (vector reuse at ingest, migration)."""
        out = np.zeros((len(ids), dim), np.float32)
        where = {cid: i for i, cid in enumerate(ids)}
        with engine_errors(self):
            for i in range(0, len(ids), batch):
                for node in self._client().get_nodes(node_ids=ids[i:i + batch]):
                    out[where[node.node_id]] = node.embedding
        return out

    def drop(self) -> None:
        with engine_errors(self):
            if self.exists():
                self._admin().drop_collection(self.collection)

    def close(self) -> None:
        """Let go of the engine. A milvus-lite file serves one process at a time and pymilvus keeps its
        in-process server until exit, so the last backend of this process using the file stops it."""
        if self._mc is None:
            return
        for client in (self._vs.client if self._vs else None, self._mc):
            if client is not None:
                client.close()
        self._vs = self._mc = None
        if self.lite:
            _LITE_USERS[self.uri] -= 1
            if not _LITE_USERS[self.uri]:
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(self.uri)


_LITE_USERS: dict[str, int] = {}  # milvus-lite file -> backends of this process using it


class engine_errors:
    """Turn what pymilvus raises into one line naming the engine and the fix."""

    def __init__(self, backend: MilvusBackend):
        self.backend = backend

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, EngineError):
            return False
        if isinstance(exc, ImportError):
            raise EngineError("the Milvus backend needs its packages — pip install 'ragqa[milvus]'") from None
        from pymilvus.exceptions import MilvusException

        if isinstance(exc, MilvusException):
            raise EngineError(explain(exc, self.backend)) from None
        return False


def explain(exc, backend: MilvusBackend) -> str:
    """One actionable line for a Milvus failure: unreachable, credentials, a busy milvus-lite file."""
    message, where = str(getattr(exc, "message", exc)), f"milvus at {backend.record['uri']}"
    low = message.lower()
    if any(w in low for w in ("auth", "credential", "password", "unauthenticated", "permission denied")) or \
            getattr(exc, "code", None) in (1800, 16):
        return (f"{where}: the engine refused the credentials ({message[:100]}) — set {backend.token_env} to "
                "\"user:password\" or an API key with access to the collection")
    if "open local milvus failed" in low:
        return (f"{where}: milvus-lite could not open the file (milvus-lite serves one process at a time: is "
                "another ragqa ingest/serve using this index?) — stop it, or use a Milvus server")
    if any(w in low for w in ("fail connecting", "unavailable", "deadline", "illegal connection", "unimplemented",
                              "timeout")):
        return (f"{where}: unreachable ({message[:100]}) — start it (docker compose -f "
                "configs/milvus/docker-compose.yml up -d) or fix the uri (--uri http://HOST:19530)")
    return f"{where}: {message[:160]} — check the engine's logs and the collection {backend.collection!r}"


def new_record(config: IndexConfig, index: str) -> dict:
    """What the manifest records for a new index on ``config.backend`` (never the token)."""
    if config.backend == "faiss":
        return dict(FaissBackend.record)
    uri = config.uri or "milvus.db"
    if "://" not in uri and not uri.endswith(".db"):
        raise ConfigError(f"index.uri={uri!r}: give http://HOST:19530 for a Milvus server, or a file ending in "
                          ".db for milvus-lite")
    if "://" not in uri and uri != "milvus.db":
        uri = str(Path(uri).expanduser().resolve())  # another working directory must find the same file
    collection = config.collection or "ragqa_" + "".join(c if c.isalnum() else "_" for c in index)
    return {"kind": "milvus", "uri": uri, "collection": collection, "token_env": config.token_env,
            "owner": f"{index}-{secrets.token_hex(4)}"}


def same_place(a: dict, b: dict) -> bool:
    return all(a.get(k) == b.get(k) for k in ("kind", "uri", "collection"))


def open_backend(record: dict, root: Path, config: IndexConfig | None = None) -> FaissBackend | EngineBackend:
    """The backend a manifest's ``backend`` record names ({} for indexes made before backends: FAISS)."""
    if not record or record.get("kind") == "faiss":
        return FaissBackend()
    if record.get("kind") != "milvus":
        raise ConfigError(f"index at {root}: unknown vector backend {record.get('kind')!r} — this ragqa knows "
                          "faiss and milvus; upgrade ragqa")
    config = config or IndexConfig()
    return MilvusBackend(record, root, os.environ.get(record.get("token_env") or config.token_env, ""),
                         config.timeout_s, config.ef)
