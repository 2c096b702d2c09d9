"""Test doubles whose outputs mean something, and generated PDFs."""
from __future__ import annotations

import json
import re
import zlib
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np

_WORD = re.compile(r"\S+")


class WordEmbedder:
    """Bag-of-words hashed into 512 dims: texts sharing words get similar vectors.

    Tokenizes on whitespace and adds two "special tokens" like BERT, so chunk-size logic
    is exercised the same way as with the real model.
    """

    id = "test/word-overlap"
    dim = 512

    def __init__(self, max_tokens: int = 64, delay: float = 0.0):
        self.max_tokens, self.delay, self.calls = max_tokens, delay, 0

    def embed_batch(self, texts, progress: bool = False) -> np.ndarray:
        import time

        self.calls += len(texts)
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[row, zlib.crc32(word.encode()) % self.dim] += 1.0
            if self.delay:
                time.sleep(self.delay)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)

    def token_offsets(self, text: str):
        return [m.span() for m in _WORD.finditer(text)]

    def count_tokens(self, texts):
        return [len(_WORD.findall(t)) + 2 for t in texts]


def make_paper_pdf(path: Path, title: str = "Attention Is Not Enough", pages: int = 4,
                   topic: str = "transformer") -> Path:
    """A small paper-like PDF: running header, page numbers, numbered sections, a word
    hyphenated at a line end, a references section and an appendix after it."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_auto_page_break(False)
    pdf.set_font("Helvetica", size=10)
    body = {
        1: ["1 Introduction", f"We study the {topic} model for question answering over papers.",
            "Our approach relies on retrieval and careful chunk-", "ing of long documents into passages."],
        2: ["2 Method", f"The {topic} encoder reads each passage and produces an embedding.",
            "We train with a contrastive objective on paired questions and passages."],
        3: ["3 Experiments", f"On the benchmark the {topic} system reaches 91.2 accuracy.",
            "Ablations show that section headings improve retrieval."],
    }
    for n in range(1, pages + 1):
        pdf.add_page()
        pdf.cell(0, 6, "Preprint. Under review at a conference.", new_x="LMARGIN", new_y="NEXT")
        if n == 1:
            pdf.cell(0, 8, title, new_x="LMARGIN", new_y="NEXT")
        lines = body.get(n) or ["References", "[1] A. Vaswani, N. Shazeer. Attention is all you need. NeurIPS 2017.",
                                "[2] J. Devlin et al. BERT: pre-training of deep bidirectional transformers.",
                                "A Implementation Details", f"The {topic} uses 6 layers and 384 hidden units."]
        for line in lines:
            pdf.cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
        pdf.set_y(-15)
        pdf.cell(0, 6, str(n), align="C")
    pdf.output(str(path))
    return path


def make_image_only_pdf(path: Path) -> Path:
    """A 'scanned' PDF: drawings only, no text layer."""
    from fpdf import FPDF

    pdf = FPDF()
    for _ in range(2):
        pdf.add_page()
        pdf.set_fill_color(40, 40, 40)
        for i in range(10):
            pdf.rect(20, 20 + i * 12, 150, 6, style="F")
    pdf.output(str(path))
    return path


def make_encrypted_pdf(path: Path, source: Path) -> Path:
    import pypdf

    writer = pypdf.PdfWriter(clone_from=str(source))
    writer.encrypt(user_password="secret", owner_password="owner")
    with open(path, "wb") as f:
        writer.write(f)
    return path


class QueueGenerator:
    """A generator that replies with queued texts, word by word, and records the prompts it got.

    Tokens are whitespace words, so prompt budgets are easy to reason about in tests.
    """

    name = "test/queue"

    def __init__(self, *replies: str):
        self.replies, self.prompts = list(replies), []

    def enqueue(self, *replies: str) -> "QueueGenerator":
        self.replies += replies
        return self

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(self, messages, max_new_tokens=None):
        self.prompts.append(messages)
        if not self.replies:  # fail loud: a test that asks more than it queued is wrong, not unsure
            raise AssertionError(f"QueueGenerator ran out of replies after {len(self.prompts) - 1} prompts")
        reply = self.replies.pop(0)
        words = reply.split(" ")
        for i, word in enumerate(words):
            yield word if i == 0 else " " + word


class TunedQueueGenerator(QueueGenerator):
    """A queue generator standing for a tuned model: ``untuned()`` switches to a second queue, the
    replies of the same model with its adapter off."""

    tuned = True

    def __init__(self, replies: list[str], untuned: list[str]):
        super().__init__(*replies)
        self.base, self.in_base = QueueGenerator(*untuned), False

    def untuned(self):
        from contextlib import contextmanager

        @contextmanager
        def off():
            self.in_base = True
            try:
                yield
            finally:
                self.in_base = False
        return off()

    def generate(self, messages, max_new_tokens=None):
        source = self.base.generate if self.in_base else super().generate
        yield from source(messages, max_new_tokens)


class ScoringQueueGenerator(TunedQueueGenerator):
    """A tuned queue generator that can also score, as ``TransformersGenerator.loglik_batch`` does: the
    "likelihood" of a question after a passage is the share of the question's words the passage holds
    (a model's does rise with it). Records each scoring call and whether the adapter was off."""

    def __init__(self, *replies: str):
        super().__init__(list(replies), [])
        self.scored: list[tuple[int, bool]] = []  # (passages scored, untuned) per call

    def loglik(self, messages, continuation):
        return self.loglik_batch([messages], continuation)[0]

    def loglik_batch(self, chats, continuation):
        self.scored.append((len(chats), self.in_base))
        words = set(continuation.lower().strip("?").split())
        return [len(words & set(c[-1]["content"].lower().split())) / len(words) for c in chats]


class LoopingQueueGenerator(QueueGenerator):
    """Replies ending in "again again" stand for replies the loop stop cut (``looped``, as
    TransformersGenerator reports it after each call)."""

    looped: list[bool] = []

    def generate(self, messages, max_new_tokens=None):
        reply = self.replies[0] if self.replies else ""
        try:
            yield from super().generate(messages, max_new_tokens)
        finally:
            self.looped = [reply.endswith("again again")]


def make_raw_pdf(path: Path, content: bytes, compressed: bool = True) -> Path:
    """A one-page PDF written by hand around a content stream (already deflated when
    ``compressed``), with a correct cross-reference table."""
    stream_dict = f"<< /Length {len(content)}{' /Filter /FlateDecode' if compressed else ''} >>".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               stream_dict + b"\nstream\n" + content + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))
    return path


def make_flate_bomb_pdf(path: Path, inflated_mb: int = 64) -> Path:
    """A PDF whose one content stream inflates to ``inflated_mb`` MB of spaces (~1000x its size)."""
    deflate, block = zlib.compressobj(9), b" " * (1 << 20)
    body = b"".join(deflate.compress(block) for _ in range(inflated_mb)) + deflate.compress(
        b"BT /F1 12 Tf 72 720 Td (bomb) Tj ET") + deflate.flush()
    return make_raw_pdf(path, body)


# edits of a make_paper_pdf file (4 pages, page tree in object 1) that break its page tree
BROKEN_PAGE_TREES = {
    "count_lies": (b"/Count 4", b"/Count 9"),  # 4 pages, claims 9
    "kid_dangling": (b"9 0 R]", b"99 0 R]"),  # the last page points nowhere
    "cycle": (b"/Kids [3 0 R\n5 0 R", b"/Kids [3 0 R\n1 0 R"),  # the tree contains itself
    "kids_not_array": (b"/Kids [3 0 R\n5 0 R\n7 0 R\n9 0 R]", b"/Kids 3 0 R                   "),
    "kids_missing": (b"/Kids", b"/Kidz"),
}


def make_broken_page_tree_pdf(path: Path, kind: str) -> Path:
    old, new = BROKEN_PAGE_TREES[kind]
    data = make_paper_pdf(path).read_bytes()
    assert old in data, kind
    path.write_bytes(data.replace(old, new, 1))
    return path


def plain_answer_config(**overrides):
    """AnswerConfig with the answer shaping off (no focus, lead quote, yes/no verdict or sentence cut):
    tests of retrieval, prompts and citations see the model's reply as the fake gave it."""
    from ragqa.config import AnswerConfig

    return AnswerConfig(**{"focus_tokens": 0, "lead_quote": False, "yes_no_hint": False, "max_sentences": 0,
                           "words_from_sources": False,
                           **overrides})


def kill_when_marked(command: list[str], marker, timeout: float = 60) -> None:
    """Run ``command``, wait until it writes ``marker`` (the moment a test wants it dead), then kill -9 it."""
    import os
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(command, env=os.environ.copy())
    deadline = time.time() + timeout
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert proc.poll() is None, "ingest finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


class FakeOpenAI(BaseHTTPRequestHandler):
    """Streams a fixed reply (``pieces``) the way vLLM's /v1/chat/completions does (server-sent events)."""

    requests: list = []
    pieces = ["BERT ", "is an ", "encoder [1]."]

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeOpenAI.requests.append((self.path, dict(self.headers), body))
        if body["model"] != "served-model":
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b'{"error": "model not found"}')
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for piece in self.pieces:
            chunk = {"choices": [{"delta": {"content": piece}}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, *args):
        pass
