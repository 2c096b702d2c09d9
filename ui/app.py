"""The Gradio chat: a thin front door to ``answer()`` and ``ingest()``.

``ChatBackend`` holds what all browser sessions share (loaded models, open indexes, the ingest
lock) and its handlers are plain generators, so tests drive them without a browser.
``build_app`` wires them to Gradio components; nothing is launched on import.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Iterator

from ragqa.config import Config, GeneratorConfig, home, load_config
from ragqa.errors import RagqaError
from ui import _render
from ui._uploads import ACCEPTED, save_uploads

BASE = "base model"


class ChatBackend:
    """Models, indexes and ingestion shared by every session of one server."""

    def __init__(self, config: Config | None = None, embedder=None, generator_factory=None):
        from ragqa.generators import load_generator

        self.config = config or load_config()
        self.embedder = embedder  # None: the configured model, loaded on first use
        self.generator_factory = generator_factory or load_generator
        self._retrievers: dict[str, tuple[str, object]] = {}
        self._ingest_lock = threading.Lock()

    # --- choices shown in the page ---
    def indexes(self) -> list[str]:
        from retrieval.store import list_indexes

        return list_indexes()

    def models(self) -> list[str]:
        """The base model, then every adapter under $RAGQA_HOME/runs (from `ragqa train`) and every
        adapter or merged model under $RAGQA_HOME/models (from `ragqa export`)."""
        found = [p.parent for folder in ("runs", "models")
                 for pattern in ("*/adapter_config.json", "*/adapter/adapter_config.json")
                 for p in (home() / folder).glob(pattern)]
        found += [p.parent for p in (home() / "models").glob("*/config.json") if (p.parent / "README.md").is_file()]
        return [BASE] + sorted(map(str, found))

    def generator(self, choice: str):
        cfg = self.config.generator
        if choice and choice != BASE:
            merged = not (Path(choice) / "adapter_config.json").is_file()
            cfg = GeneratorConfig(**{**vars(cfg), **({"model": choice, "adapter": ""} if merged else {"adapter": choice})})
        return self.generator_factory(cfg)

    def retriever(self, index: str):
        """The open index, reopened when a new generation was committed (after an upload)."""
        from retrieval import open_retriever
        from retrieval.store import index_path

        current = index_path(index) / "CURRENT"
        generation = current.read_text().strip() if current.exists() else ""
        cached = self._retrievers.get(index)
        if cached and cached[0] == generation:
            return cached[1]
        retriever = open_retriever(index, self.config, self.embedder)
        self._retrievers[index] = (generation, retriever)
        return retriever

    @property
    def ingesting(self) -> bool:
        return self._ingest_lock.locked()

    # --- handlers ---
    def respond(self, message: str, chat: list[dict], pairs: list, index: str, use_retrieval: bool,
                k: int, model: str) -> Iterator[tuple]:
        """Stream one answer: yields (chat, pairs, citations, sources, status) markdown."""
        from ragqa.answer import Answer, stream_answer

        chat, pairs = list(chat or []), list(pairs or [])
        if not (message or "").strip():
            yield chat, pairs, "", "", "Type a question first."
            return
        notice = "Ingestion is running: this answer uses the index as it was before it started. " \
            if self.ingesting else ""
        chat += [{"role": "user", "content": message}, {"role": "assistant", "content": ""}]
        try:
            retriever = self.retriever(index) if use_retrieval else None
            stream = stream_answer(message, self.generator(model), retriever, self.config.answer,
                                   [tuple(p) for p in pairs], use_retrieval=use_retrieval, k=int(k))
            text = ""
            for item in stream:
                if isinstance(item, Answer):
                    result = item
                    break
                text += item
                chat[-1]["content"] = text
                yield chat, pairs, "", "", notice + "Generating…"
        except RagqaError as exc:
            chat[-1]["content"] = f"Error: {exc}"
            yield chat, pairs, "", "", f"Error: {exc}"
            return
        chat[-1]["content"] = result.display
        pairs.append((message, result.text))
        yield (chat, pairs, _render.citations(result), _render.sources(result),
               notice + result.timing_line())

    def upload(self, files: list[str], index: str, progress=None) -> tuple[str, str]:
        """Save and ingest uploaded files; returns (status, document list) markdown."""
        from ingest import ingest
        from retrieval.store import validate_name

        if not files:
            return "Choose files to upload first.", self.documents(index)
        if not self._ingest_lock.acquire(blocking=False):
            return "Another upload is being ingested — try again when it finishes.", self.documents(index)
        try:
            folder = home() / "uploads" / validate_name(index)
            saved, rejected = save_uploads(files, folder, self.config.ui.max_upload_mb)
            report = None
            if saved:
                report = ingest(saved, index=index, config=self.config, embedder=self.embedder,
                                progress=progress is not None)
                rejected += [str(s) for s in report.skipped + report.warnings]  # warnings: partly read
        except RagqaError as exc:
            return f"Error: {exc}", self.documents(index)
        finally:
            self._ingest_lock.release()
        return _render.upload_status(report, rejected), self.documents(index)

    def documents(self, index: str) -> str:
        from retrieval.store import read_manifest

        try:
            manifest = read_manifest(index)  # the list only: no engine connection per refresh
        except RagqaError:
            return f"Index **{index}** holds no documents yet: upload some."
        return _render.documents(index, manifest)


def build_app(backend: ChatBackend | None = None, index: str = "default"):
    """The Blocks app (not launched): chat, citations, sources, settings and upload."""
    import gradio as gr

    backend = backend or ChatBackend()
    indexes = backend.indexes()
    index = index if index in indexes or not indexes else indexes[0]
    with gr.Blocks(title="ragqa") as app:
        gr.Markdown("## ragqa — ask your papers\nAnswers come from your indexed documents, with checked citations.")
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label="Conversation", height=460, elem_id="chat")
                message = gr.Textbox(placeholder="Ask a question about your documents…", show_label=False,
                                     elem_id="question", submit_btn=True)
                status = gr.Markdown(elem_id="status")
                citations = gr.Markdown(elem_id="citations")
                with gr.Accordion("Sources and background terms", open=False):
                    sources = gr.Markdown(elem_id="sources")
                clear = gr.Button("Clear conversation", size="sm")
            with gr.Column(scale=1):
                index_box = gr.Dropdown(indexes or [index], value=index, label="Index", allow_custom_value=True,
                                        elem_id="index")
                use_retrieval = gr.Checkbox(True, label="Use retrieval")
                k = gr.Slider(1, 10, value=backend.config.answer.k, step=1, label="Passages (top-k)")
                model = gr.Dropdown(backend.models(), value=BASE, label="Model / adapter")
                files = gr.File(file_count="multiple", file_types=list(ACCEPTED), label="Add documents",
                                elem_id="upload")
                upload_status = gr.Markdown(elem_id="upload-status")
                docs = gr.Markdown(backend.documents(index), elem_id="documents")
        pairs = gr.State([])
        outputs = [chatbot, pairs, citations, sources, status]
        message.submit(backend.respond, [message, chatbot, pairs, index_box, use_retrieval, k, model], outputs,
                       concurrency_id="model").then(lambda: "", None, message)
        clear.click(lambda: ([], [], "", "", ""), None, outputs, queue=False)
        files.upload(_with_progress(backend), [files, index_box], [upload_status, docs], concurrency_id="ingest")
        index_box.change(backend.documents, index_box, docs, queue=False)
    app.queue(default_concurrency_limit=backend.config.ui.concurrency, max_size=backend.config.ui.queue_size)
    return app


def _with_progress(backend: ChatBackend):
    import gradio as gr

    def upload(files, index, progress=gr.Progress(track_tqdm=True)):
        return backend.upload(files, index, progress)
    return upload


def check_port(host: str, port: int) -> None:
    """One line when ``host:port`` cannot be served (busy, or an address this machine lacks)."""
    import socket

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: TIME_WAIT is no conflict
            s.bind((host, port))
    except OSError as exc:
        raise RagqaError(f"cannot serve on {host}:{port} ({exc.strerror or exc}) — stop the program using it "
                         f"(another ragqa serve?) or pass --port {port + 1 if port < 65535 else 8080}") from None


def serve(index: str = "default", host: str | None = None, port: int | None = None, auth: str | None = None,
          share: bool = False, config: Config | None = None, block: bool = True):
    """Launch the chat on ``host:port`` (127.0.0.1 unless told otherwise)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves the machine
    config = config or load_config()
    credentials = None
    if auth:
        user, sep, password = auth.partition(":")
        if not sep or not user or not password:
            raise RagqaError("--auth must be USER:PASSWORD, e.g. --auth me:s3cret")
        credentials = (user, password)
    host, port = host or config.ui.host, port or config.ui.port
    check_port(host, port)  # before the models load, and instead of Gradio's traceback
    app = build_app(ChatBackend(config), index)
    app.launch(server_name=host, server_port=port, auth=credentials,
               share=share, inbrowser=False, max_file_size=int(config.ui.max_upload_mb * 1e6),
               prevent_thread_lock=not block, quiet=False)
    return app
