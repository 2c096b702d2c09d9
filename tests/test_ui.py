"""Chat handlers driven directly (no browser), with the word-overlap embedder and a queued generator."""
import threading

import pytest

from fakes import QueueGenerator, make_encrypted_pdf, make_paper_pdf, plain_answer_config
from ingest import ingest
from ragqa.config import AnswerConfig, Config, UIConfig
from retrieval.store import remove_index
from ui import ChatBackend
from ui._uploads import safe_name, save_uploads

DOCS = {"bert.md": "# BERT\n\nBERT is pre-trained with masked language modelling and next sentence prediction.",
        "gpt.md": "# GPT\n\nGPT is trained autoregressively to predict the next token from left context."}


@pytest.fixture
def backend(tmp_path, word_embedder):
    for name, text in DOCS.items():
        (tmp_path / name).write_text(text)
    ingest([tmp_path], index="papers", embedder=word_embedder, progress=False)
    gen = QueueGenerator()
    config = Config(answer=plain_answer_config(k=2, abstain_below=0.1), ui=UIConfig(max_upload_mb=0.05))
    b = ChatBackend(config, embedder=word_embedder, generator_factory=lambda cfg: gen)
    b.gen = gen
    return b


def last(gen):
    return list(gen)[-1]


def test_answer_streams_then_shows_citations_sources_and_stats(backend):
    backend.gen.enqueue('It uses "masked language modelling and next sentence prediction" [1].')
    steps = list(backend.respond("What are the pre-training tasks of BERT?", [], [], "papers", True, 2, "base model"))
    partial = [s[0][-1]["content"] for s in steps[:-1]]
    assert len(partial) > 3 and partial == sorted(partial, key=len)  # the answer grows token by token
    chat, pairs, citations, sources, status = steps[-1]
    assert chat[-1]["content"].endswith("[1].") and pairs == [("What are the pre-training tasks of BERT?", chat[-1]["content"])]
    assert "[1] bert.md, p. 1" in citations and "verified quote" in citations
    assert "**[1] bert.md, p. 1**" in sources and "score" in sources
    assert "first token" in status and "tokens/s" in status


def test_history_feeds_the_follow_up(backend):
    backend.gen.enqueue("BERT is an encoder [1].", "Masked language modelling [1].")
    chat, pairs, *_ = last(backend.respond("What is BERT?", [], [], "papers", True, 2, "base model"))
    chat, pairs, _, sources, _ = last(backend.respond("What are its pre-training tasks?", chat, pairs, "papers",
                                                      True, 2, "base model"))
    assert [m["role"] for m in backend.gen.prompts[-1]] == ["system", "user", "assistant", "user"]
    assert "**[1] bert.md" in sources and len(chat) == 4


def test_bad_input_shows_a_message_and_keeps_serving(backend):
    chat, _, _, _, status = last(backend.respond("   ", [], [], "papers", True, 2, "base model"))
    assert chat == [] and status == "Type a question first."
    remove_index("papers")
    chat, _, _, _, status = last(backend.respond("What is BERT?", [], [], "papers", True, 2, "base model"))
    assert "index 'papers' not found" in status and chat[-1]["content"].startswith("Error: ")
    backend.gen.enqueue("From memory.")
    chat, *_ = last(backend.respond("What is BERT?", [], [], "papers", False, 2, "base model"))
    assert chat[-1]["content"] == "From memory."  # retrieval off still works without the index


def test_upload_ingests_and_reports_each_rejected_file(backend, tmp_path):
    up = tmp_path / "browser"
    up.mkdir()
    good = make_paper_pdf(up / "paper.pdf", topic="retriever")
    empty = up / "empty.pdf"
    empty.write_bytes(b"")
    locked = make_encrypted_pdf(up / "locked.pdf", good)
    big = up / "big.md"
    big.write_text("word " * 20_000)
    status, docs = backend.upload([str(good), str(empty), str(locked), str(big)], "papers")
    assert "1 added" in status
    assert "empty.pdf" in status and "locked.pdf" in status and "encrypted" in status
    assert "big.md: 0.1 MB is over the 0.05 MB upload limit" in status
    assert "paper.pdf" in docs and "bert.md" in docs
    backend.gen.enqueue("About 91.2 [1].")
    *_, sources, _ = last(backend.respond("How accurate is the retriever system on the benchmark?", [], [], "papers",
                                          True, 2, "base model"))
    assert "paper.pdf" in sources  # the reopened index serves the upload at once


def test_question_while_ingesting_is_answered_with_a_notice(backend):
    backend._ingest_lock.acquire()
    try:
        backend.gen.enqueue("Masked language modelling [1].")
        *_, status = last(backend.respond("What are the pre-training tasks of BERT?", [], [], "papers", True, 2,
                                          "base model"))
        assert status.startswith("Ingestion is running")
        status, _ = backend.upload(["x.pdf"], "papers")
        assert "Another upload is being ingested" in status
    finally:
        backend._ingest_lock.release()


@pytest.mark.parametrize("name, expected", [
    ("../../etc/passwd.pdf", "passwd.pdf"), ("..\\..\\boot.ini.md", "boot.ini.md"), (".hidden.pdf", "hidden.pdf"),
    ("my paper (v2).PDF", "my_paper_v2.pdf"), ("résumé.md", "r_sum.md"), ("....pdf", "upload.pdf"),
])
def test_safe_names(name, expected):
    assert safe_name(name) == expected


def test_uploads_never_overwrite_and_stay_in_their_folder(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "x.md").write_text("first")
    (b / "x.md").write_text("second")
    dest = tmp_path / "uploads"
    saved, _ = save_uploads([str(a / "x.md"), str(b / "x.md"), str(a / "x.md")], dest, max_mb=1)
    assert [p.name for p in saved] == ["x.md", "x-2.md", "x.md"]
    assert (dest / "x.md").read_text() == "first" and (dest / "x-2.md").read_text() == "second"
    assert all(p.parent == dest for p in saved)
    (tmp_path / "run.sh").write_text("echo hi")
    saved, rejected = save_uploads([str(tmp_path / "run.sh")], dest, max_mb=1)
    assert saved == [] and rejected == ["run.sh: unsupported file type — upload PDF, Markdown, HTML or text files"]


def test_build_app_wires_without_launching(backend):
    from ui import build_app

    threads = threading.active_count()
    app = build_app(backend, "papers")
    assert app.fns and threading.active_count() == threads  # handlers registered, no server started


def test_serve_binds_loopback_requires_auth_and_never_shares(backend, monkeypatch):
    import socket

    import httpx

    from ragqa.errors import RagqaError
    from ui import serve

    with pytest.raises(RagqaError, match="--auth must be USER:PASSWORD"):
        serve("papers", auth="no-colon", config=backend.config, block=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = serve("papers", port=port, auth="me:s3cret", config=backend.config, block=False)
    try:
        assert app.server_name == "127.0.0.1" and not app.share
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/config").status_code == 401
        client = httpx.Client()
        assert client.post(f"{base}/login", data={"username": "me", "password": "wrong"}).status_code == 400
        assert client.post(f"{base}/login", data={"username": "me", "password": "s3cret"}).status_code == 200
        assert client.get(f"{base}/config").status_code == 200
    finally:
        app.close()


def test_trained_and_exported_models_are_offered_and_loaded_as_what_they_are(tmp_path, ragqa_home, word_embedder):
    for folder, files in {"runs/papers": ["adapter_config.json"], "models/papers-adapter": ["adapter_config.json"],
                          "models/papers-merged": ["config.json", "README.md"], "models/cache": ["config.json"]}.items():
        (ragqa_home / folder).mkdir(parents=True)
        for name in files:
            (ragqa_home / folder / name).write_text("{}")
    seen = []
    b = ChatBackend(Config(), embedder=word_embedder, generator_factory=seen.append)
    choices = b.models()
    assert choices[0] == "base model" and sorted(choices[1:]) == sorted(
        str(ragqa_home / f) for f in ("runs/papers", "models/papers-adapter", "models/papers-merged"))
    b.generator(str(ragqa_home / "runs/papers"))
    b.generator(str(ragqa_home / "models/papers-merged"))
    assert seen[0].adapter == str(ragqa_home / "runs/papers") and seen[0].model == Config().generator.model
    assert seen[1].model == str(ragqa_home / "models/papers-merged") and seen[1].adapter == ""
