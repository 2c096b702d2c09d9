"""End to end in headless Chromium (Debian's /usr/bin/chromium, driven by playwright; no browser download)."""
import shutil
import socket
from pathlib import Path

import pytest

from fakes import QueueGenerator, make_paper_pdf, plain_answer_config
from ingest import ingest
from ragqa.config import AnswerConfig, Config

pytestmark = pytest.mark.browser  # real browser and server, fake generator and embedder
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path, word_embedder, monkeypatch):
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium absent: apt-get install chromium (the CI script installs it)")
    pytest.importorskip("playwright", reason="playwright absent: pip install playwright")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    from ui import ChatBackend, build_app

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bert.md").write_text("# BERT\n\nBERT is pre-trained with masked language modelling and next "
                                  "sentence prediction.")
    ingest([docs], index="papers", embedder=word_embedder, progress=False)
    gen = QueueGenerator('BERT uses "masked language modelling and next sentence prediction" [1].')
    backend = ChatBackend(Config(answer=plain_answer_config(k=2, abstain_below=0.1)), embedder=word_embedder,
                          generator_factory=lambda cfg: gen)
    app = build_app(backend, "papers")
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}"
    app.close()


def test_ask_see_citation_upload_and_screenshot(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    pdf = make_paper_pdf(tmp_path / "retriever-paper.pdf", topic="retriever")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server)
        page.locator("#question textarea").fill("What are the pre-training tasks of BERT?")
        page.locator("#question textarea").press("Enter")
        expect(page.locator("#chat")).to_contain_text("masked language modelling", timeout=30_000)
        expect(page.locator("#citations")).to_contain_text("bert.md, p. 1", timeout=30_000)
        expect(page.locator("#citations")).to_contain_text("verified quote")
        page.locator("#upload input[type=file]").set_input_files(str(pdf))
        expect(page.locator("#documents")).to_contain_text("retriever-paper.pdf", timeout=60_000)
        shot = tmp_path / "chat.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.stat().st_size > 10_000
