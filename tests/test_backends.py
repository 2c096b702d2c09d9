"""The index contract, run on both vector backends: FAISS files (default) and Milvus through
llama-index (milvus-lite, the real Milvus engine embedded from its wheel; the same client code talks
to a server). Plus migration and the engine's error cases."""
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from fakes import WordEmbedder, kill_when_marked
from typer.testing import CliRunner

from ingest import ingest
from ingest._chunk import embed_text
from ragqa.config import Config, IndexConfig
from ragqa.errors import ConfigError, EngineError
from retrieval import Retriever
from retrieval.store import IndexStore, index_path, remove_document, remove_index

DOCS = {
    "bert.md": "# BERT\n\nBERT is pre-trained with masked language modelling and next sentence prediction.",
    "gpt.md": "# GPT\n\nGPT is trained autoregressively to predict the next token from left context.",
    "rag.md": "# RAG\n\nRetrieval augmented generation conditions a generator on retrieved passages.",
    "lora.md": "# LoRA\n\nLow rank adapters add trainable low rank matrices to frozen weights.",
}


@pytest.fixture(scope="session")
def milvus_lite(tmp_path_factory):
    """Skip the Milvus cases, with the reason, where milvus-lite cannot start on this machine."""
    try:
        from pymilvus import MilvusClient

        client = MilvusClient(str(tmp_path_factory.mktemp("lite-probe") / "probe.db"))
        client.list_collections()
        client.close()
    except Exception as exc:  # noqa: BLE001 - any failure to start means: no engine to test against here
        pytest.skip(f"milvus-lite cannot start here ({type(exc).__name__}: {str(exc)[:80]}) — pip install 'ragqa[milvus]'")


@pytest.fixture(params=["faiss", "milvus"])
def config(request):
    if request.param == "milvus":
        request.getfixturevalue("milvus_lite")
    return Config(index=IndexConfig(backend=request.param))


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    for name, text in DOCS.items():
        (root / name).write_text(text)
    return root


def engine_count(store: IndexStore) -> int:
    """Vectors the backend holds: the engine's own count, or the FAISS index's."""
    return store.backend.count() if store.on_engine else store.faiss.ntotal


def test_add_and_search_match_brute_force(corpus, config, word_embedder):
    ingest([corpus], index="c", config=config, embedder=word_embedder, progress=False)
    store = IndexStore.open("c")
    assert store.on_engine == (config.index.backend == "milvus")
    assert engine_count(store) == len(store.chunks) == 4
    retriever = Retriever(store, word_embedder)
    q = "which model uses masked language modelling"
    hits = retriever.search(q, k=4, mode="dense")
    exact = word_embedder.embed_batch([embed_text(c.title, c.section, c.text) for c in store.chunks]) @ \
        word_embedder.embed_batch([q])[0]
    assert [h.dense for h in hits] == pytest.approx(sorted(exact, reverse=True)[:4], abs=1e-5)
    assert hits[0].chunk.path.endswith("bert.md")
    top = retriever.search("low rank adapters", k=2)  # hybrid keeps BM25 on both backends
    assert top[0].chunk.path.endswith("lora.md") and top[0].dense is not None and top[0].bm25 is not None


def test_scoped_search_stays_in_its_document(corpus, config, word_embedder):
    ingest([corpus], index="c", config=config, embedder=word_embedder, progress=False)
    retriever = Retriever(IndexStore.open("c"), word_embedder)
    for mode in ("dense", "hybrid"):
        hits = retriever.search("masked language modelling", k=5, doc="gpt.md", mode=mode)
        assert hits and all(h.chunk.path.endswith("gpt.md") for h in hits)


def test_changed_file_replaces_and_removed_document_leaves(corpus, config, word_embedder):
    ingest([corpus], index="c", config=config, embedder=word_embedder, progress=False)
    old_ids = {c.id for c in IndexStore.open("c").chunks if c.path.endswith("gpt.md")}
    (corpus / "gpt.md").write_text("# GPT\n\nGPT-2 is a decoder trained on WebText by OpenAI.")
    report = ingest([corpus], index="c", config=config, embedder=word_embedder, progress=False)
    assert report.chunks_removed == 1 and report.chunks_added == 1
    store = IndexStore.open("c")
    assert not old_ids & set(store.row_of) and engine_count(store) == len(store.chunks) == 4
    hits = Retriever(store, word_embedder).search("WebText decoder", k=1, mode="dense")
    assert "WebText" in hits[0].chunk.text
    remove_document("c", "bert.md")
    store = IndexStore.open("c")
    assert engine_count(store) == len(store.chunks) == 3
    assert all(not h.chunk.path.endswith("bert.md")
               for h in Retriever(store, word_embedder).search("masked language modelling", k=3, mode="dense"))


def test_reingest_unchanged_writes_nothing_and_an_edit_reuses_stored_vectors(corpus, config, word_embedder):
    long = " ".join(f"Sentence {i} talks about topic{i} in depth." for i in range(60))
    (corpus / "long.md").write_text(f"# Long\n\n{long}")
    ingest([corpus], index="c", config=config, embedder=word_embedder, progress=False)
    live = (index_path("c") / "CURRENT").read_text()
    emb = WordEmbedder()
    report = ingest([corpus], index="c", config=config, embedder=emb, progress=False)
    assert emb.calls == 0 and report.chunks_added == 0 and (index_path("c") / "CURRENT").read_text() == live
    (corpus / "long.md").write_text(f"# Long\n\n{long.replace('Sentence 59 talks', 'Sentence 59 speaks')}")
    report = ingest([corpus], index="c", config=config, embedder=emb, progress=False)
    assert 0 < report.embedded < report.chunks_added  # the unchanged chunks' vectors came from the backend
    store = IndexStore.open("c")
    rows = list(range(len(store.chunks)))
    expect = word_embedder.embed_batch([embed_text(c.title, c.section, c.text) for c in store.chunks])
    assert np.allclose(store.vectors_of(rows), expect, atol=1e-6) and engine_count(store) == len(rows)


SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from fakes import WordEmbedder, kill_when_marked
    from ingest import ingest
    from ragqa.config import Config, IndexConfig

    stage, corpus, marker, backend = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4]
    def before_flip(gen):  # the new generation and its vectors are written, CURRENT not yet switched
        marker.write_text("flip")
        time.sleep(60)
    class Marking(WordEmbedder):  # says "embedding has begun" once the index is open and the engine reached
        def embed_batch(self, texts, progress=False):
            if stage == "embed" and len(texts) > 1:
                marker.write_text("embed")
            return super().embed_batch(texts, progress)
    emb = Marking(delay=0.05 if stage == "embed" else 0.0)
    ingest([corpus], index="k", config=Config(index=IndexConfig(backend=backend)), embedder=emb, progress=False,
           before_flip=before_flip if stage == "flip" else None)
""")


def _run_and_kill(tmp_path, stage, corpus, backend):
    script = tmp_path / "ingest_script.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent)))
    marker = tmp_path / f"marker-{stage}"
    kill_when_marked([sys.executable, str(script), stage, str(corpus), str(marker), backend], marker, timeout=90)


@pytest.mark.parametrize("stage", ["embed", "flip"])
def test_kill_9_shows_no_half_document_and_a_rerun_cleans_up(tmp_path, corpus, config, word_embedder, stage):
    ingest([corpus], index="k", config=config, embedder=word_embedder, progress=False)
    store = IndexStore.open("k")
    before = [c.id for c in store.chunks]
    store.close()  # milvus-lite: one process at a time, and the killed ingest is another
    for i in range(20):
        (corpus / f"new{i}.md").write_text(f"# New {i}\n\n" + " ".join(f"zebra{i}x{j}" for j in range(200)))
    _run_and_kill(tmp_path, stage, corpus, config.index.backend)

    store = IndexStore.open("k")  # the previous generation, whatever the engine received meanwhile
    assert [c.id for c in store.chunks] == before
    if stage == "flip" and store.on_engine:  # the engine holds the new vectors; the live generation hides them
        assert engine_count(store) > len(before)
    hits = Retriever(store, word_embedder).search("zebra1x1 zebra1x2 zebra1x3", k=4, mode="dense")
    assert len(hits) == 4 and all(h.chunk.id in before for h in hits)
    store.close()

    ingest([corpus], index="k", config=config, embedder=word_embedder, progress=False)
    final = IndexStore.open("k")
    assert len(final.manifest.docs) == 24 and len(set(final.row_of)) == len(final.chunks)
    assert engine_count(final) == len(final.chunks)  # the interrupted run's strays are gone, nothing twice
    assert not (final.root / "engine-journal.json").exists()


def test_migrate_copies_vectors_without_embedding(corpus, word_embedder, milvus_lite, monkeypatch):
    ingest([corpus], index="m", embedder=word_embedder, progress=False)
    faiss_store = IndexStore.open("m")
    before = [(h.chunk.id, round(h.score, 5)) for h in Retriever(faiss_store, word_embedder).search("rank adapters", k=4, mode="dense")]
    monkeypatch.setattr("retrieval.embed.load_embedder", lambda config=None: pytest.fail("migrate must not embed"))
    result = CliRunner().invoke(__import__("ragqa.cli").cli.app, ["index", "migrate", "--index", "m", "--to", "milvus"])
    assert result.exit_code == 0 and "4 vectors copied to milvus" in result.output, result.output
    store = IndexStore.open("m")
    assert store.on_engine and store.manifest.backend["collection"] == "ragqa_m" and engine_count(store) == 4
    after = [(h.chunk.id, round(h.score, 5)) for h in Retriever(store, word_embedder).search("rank adapters", k=4, mode="dense")]
    assert dict(after) == dict(before)  # every chunk scores the same (ties may come in another order)
    assert np.allclose(store.vectors_of(list(range(4))), faiss_store.vectors, atol=1e-6)
    store.backend.close()
    result = CliRunner().invoke(__import__("ragqa.cli").cli.app, ["index", "migrate", "--index", "m", "--to", "milvus"])
    assert result.exit_code == 1 and "already keeps its vectors in milvus" in result.output


def test_an_unreachable_engine_is_named_and_nothing_is_written(corpus, word_embedder):
    config = Config(index=IndexConfig(backend="milvus", uri="http://127.0.0.1:1", timeout_s=2))
    with pytest.raises(EngineError, match=r"milvus at http://127.0.0.1:1: unreachable .* — start it"):
        ingest([corpus], index="u", config=config, embedder=word_embedder, progress=False)
    assert not index_path("u").exists()


def test_ingest_names_an_unreachable_engine_before_loading_the_embedder(corpus, monkeypatch):
    from ragqa.cli import app

    def no_model(config=None):
        raise AssertionError("the embedder was loaded before the engine was reached")

    monkeypatch.setattr("retrieval.embed.load_embedder", no_model)
    monkeypatch.setenv("RAGQA_THREADS", "1")
    result = CliRunner().invoke(app, ["ingest", "-q", str(corpus), "--index", "u", "--backend", "milvus",
                                      "--uri", "http://127.0.0.1:1"])
    assert result.exit_code == 1 and "unreachable" in result.output, result.output
    assert not index_path("u").exists()


def _foreign_collection(path: Path, dim: int, props: dict | None = None) -> None:
    from pymilvus import MilvusClient

    client = MilvusClient(str(path))
    client.create_collection("theirs", dimension=dim, id_type="string", max_length=64)
    if props:
        client.alter_collection_properties("theirs", properties=props)
    client.insert("theirs", [{"id": "x", "vector": [1.0] + [0.0] * (dim - 1)}])
    client.close()


@pytest.mark.parametrize("dim, props, message", [
    (8, None, "holds 8-dimensional vectors but index 'e' needs 512"),
    (512, {"ragqa.embedder": "other/model"}, "holds vectors of embedder 'other/model', not 'test/word-overlap'"),
    (512, None, "holds the vectors of another index \\(not made by ragqa\\)"),
])
def test_a_collection_holding_other_vectors_is_refused(tmp_path, corpus, word_embedder, milvus_lite, dim, props,
                                                       message):
    from pymilvus import MilvusClient

    db = tmp_path / "shared.db"
    _foreign_collection(db, dim, props)
    config = Config(index=IndexConfig(backend="milvus", uri=str(db), collection="theirs"))
    with pytest.raises(EngineError, match=message + ".* — use another collection"):
        ingest([corpus], index="e", config=config, embedder=word_embedder, progress=False)
    assert not index_path("e").exists()
    client = MilvusClient(str(db))
    assert client.query("theirs", filter="", output_fields=["count(*)"])[0]["count(*)"] == 1  # untouched
    client.close()


def test_refused_credentials_get_one_line_naming_the_variable(milvus_lite):
    """What a Milvus server with authentication answers a wrong token with (milvus-lite has no users)."""
    from pymilvus.exceptions import MilvusException

    from retrieval.backends import MilvusBackend, explain

    backend = MilvusBackend({"uri": "http://milvus:19530", "collection": "c", "token_env": "LAB_TOKEN"}, Path("."))
    line = explain(MilvusException(code=1800, message="auth check failure, please check username and password "
                                   "are correct"), backend)
    assert line.startswith("milvus at http://milvus:19530: the engine refused the credentials")
    assert "set LAB_TOKEN to" in line and "\n" not in line


def test_backend_flags_on_an_existing_index_are_refused(corpus, word_embedder):
    from retrieval.store import check_backend_choice

    ingest([corpus], index="f", embedder=word_embedder, progress=False)
    with pytest.raises(ConfigError, match="keeps its vectors in faiss; .* ragqa index migrate --index f"):
        check_backend_choice("f", IndexConfig(backend="milvus"))
    with pytest.raises(ConfigError, match="index.uri and index.collection are for an engine"):
        IndexConfig(uri="http://x:19530")
    with pytest.raises(ConfigError, match="a file ending in .db"):
        ingest([corpus], index="g", config=Config(index=IndexConfig(backend="milvus", uri="/tmp/notadb")),
               embedder=word_embedder, progress=False)


def test_removing_an_engine_index_drops_its_collection(corpus, word_embedder, milvus_lite, tmp_path):
    from pymilvus import MilvusClient

    db = tmp_path / "outside.db"  # a lite file outside the index folder: only dropping the collection empties it
    config = Config(index=IndexConfig(backend="milvus", uri=str(db)))
    ingest([corpus], index="r", config=config, embedder=word_embedder, progress=False)
    remove_index("r")
    client = MilvusClient(str(db))
    assert "ragqa_r" not in client.list_collections()
    client.close()


def test_the_commands_work_the_same_on_an_engine_index(corpus, milvus_lite, monkeypatch):
    from ragqa.cli import app

    monkeypatch.setattr("retrieval.embed.load_embedder", lambda config=None: WordEmbedder())
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", "-q", str(corpus), "--index", "lab", "--backend", "milvus"])
    assert result.exit_code == 0 and "4 added" in result.output, result.output
    result = runner.invoke(app, ["search", "masked language modelling", "--index", "lab", "--doc", "gpt.md", "-k", "3"])
    assert result.exit_code == 0 and "gpt.md" in result.output and "bert.md" not in result.output
    assert "milvus" in runner.invoke(app, ["index", "list"]).output
    assert "collection ragqa_lab" in runner.invoke(app, ["index", "stats", "--index", "lab"]).output
    result = runner.invoke(app, ["ingest", "-q", str(corpus), "--index", "lab", "--backend", "faiss"])
    assert result.exit_code == 1 and "ragqa index migrate" in result.output
    result = runner.invoke(app, ["index", "remove", "--index", "lab", "--doc", "bert.md", "-y"])
    assert result.exit_code == 0 and len(IndexStore.open("lab").chunks) == 3
