"""Test doubles whose outputs mean something, and generated PDFs."""
from __future__ import annotations

import re
import zlib
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
