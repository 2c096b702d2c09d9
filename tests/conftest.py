import os
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("RAGQA_THREADS", "1")  # never oversubscribe the 2 cores in tests
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

EVALCORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "evalcorpus"


@pytest.fixture(autouse=True)
def ragqa_home(tmp_path, monkeypatch):
    """Every test gets its own RAGQA_HOME, so no test touches the checkout's indexes/."""
    home = tmp_path / "home"
    monkeypatch.setenv("RAGQA_HOME", str(home))
    return home


@pytest.fixture
def word_embedder():
    from fakes import WordEmbedder

    return WordEmbedder()


@pytest.fixture(scope="session")
def real_embedder():
    from retrieval.embed import load_embedder

    return load_embedder()


@pytest.fixture(scope="session")
def evalcorpus():
    if not EVALCORPUS.is_dir():
        pytest.skip(f"{EVALCORPUS} is absent: the shared evaluation corpus is not on this machine")
    return EVALCORPUS


@pytest.fixture(scope="session")
def aragog_home(evalcorpus, real_embedder, tmp_path_factory):
    """A home whose index ``aragog`` holds the 12 ARAGOG papers (bert.pdf among them), ingested once
    per test session: the evalcorpus tests share it instead of embedding the same PDFs three times."""
    from ingest import ingest

    home, before = tmp_path_factory.mktemp("aragog-home"), os.environ.get("RAGQA_HOME")
    os.environ["RAGQA_HOME"] = str(home)
    try:
        report = ingest([evalcorpus / "aragog" / "pdfs"], index="aragog", embedder=real_embedder, progress=False)
    finally:
        os.environ["RAGQA_HOME"] = before or ""
    assert len(report.added) == 12 and report.truncated == 0
    return home


@pytest.fixture(scope="session")
def real_generator(tmp_path_factory):
    """Converted once per test session into its own home (the GGUF conversion takes ~30 s)."""
    from ragqa.config import GeneratorConfig
    from ragqa.generators import load_generator

    home, before = tmp_path_factory.mktemp("models"), os.environ.get("RAGQA_HOME")
    os.environ["RAGQA_HOME"] = str(home)
    try:
        generator = load_generator(GeneratorConfig(max_new_tokens=48))
    finally:
        os.environ["RAGQA_HOME"] = before or ""
    assert (home / "models").is_dir()  # the dequantized copy is cached, so later loads take seconds
    return generator


@pytest.fixture
def server():
    """An OpenAI-compatible server (``fakes.FakeOpenAI``) on a free loopback port: its /v1 URL."""
    from fakes import FakeOpenAI

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
