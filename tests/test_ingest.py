import os
import shutil

import pytest
from fakes import WordEmbedder, make_encrypted_pdf, make_image_only_pdf, make_paper_pdf
from typer.testing import CliRunner

from ingest import ingest
from ragqa.cli import app
from ragqa.errors import EmbedderMismatch, IndexNotFound
from ingest._chunk import embed_text
from retrieval.store import IndexStore, remove_document


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    (root / "blog").mkdir(parents=True)
    make_paper_pdf(root / "paper.pdf")
    (root / "blog" / "post.md").write_text("# Scaling laws\n\nLoss falls as a power law in compute.\n\n"
                                           "## Data\n\nMore tokens help small models.\n")
    (root / "blog" / "page.html").write_text("<html><head><title>Tokenizers</title><script>x=1</script></head>"
                                             "<body><h1>Byte pair encoding</h1><p>BPE merges frequent pairs.</p>"
                                             "</body></html>")
    (root / "notes.txt").write_text("Plain notes about retrieval augmented generation and citations.")
    return root


def test_ingest_folder_records_metadata(corpus, word_embedder):
    report = ingest([corpus], index="t", embedder=word_embedder, progress=False)
    assert len(report.added) == 4 and not report.skipped and report.truncated == 0
    store = IndexStore.open("t")
    paper = [c for c in store.chunks if c.path.endswith("paper.pdf")]
    assert paper[0].title == "Attention Is Not Enough"  # running header not taken for the title
    text = " ".join(c.text for c in paper)
    assert "chunking of long documents" in text  # hyphenation repaired
    assert "Vaswani" not in text and "Preprint" not in text  # references and running header gone
    assert "384 hidden units" in text  # appendix after the references kept
    sections = {c.section for c in paper}
    assert {"1 Introduction", "2 Method", "3 Experiments", "A Implementation Details"} <= sections
    assert {c.page for c in paper if c.section == "2 Method"} == {2}
    for c in store.chunks:  # offsets resolve into the stored page text
        if c.page == c.page_end:
            assert store.pages[c.doc_id][c.page - 1][c.start:c.end] == c.text
    html = [c for c in store.chunks if c.path.endswith("page.html")]
    assert html[0].title == "Byte pair encoding" and "x=1" not in html[0].text
    m = store.manifest
    assert m.embedder == "test/word-overlap" and m.dim == 512 and m.chunking["chunk_tokens"] == 64
    assert all(len(f["sha256"]) == 64 for f in m.files.values())


def test_reingest_unchanged_computes_no_embeddings(corpus, word_embedder):
    ingest([corpus], index="t", embedder=word_embedder, progress=False)
    before = IndexStore.open("t")
    calls = word_embedder.calls
    os.utime(corpus / "notes.txt")  # touched, not changed: hashed, still skipped
    report = ingest([corpus], index="t", embedder=word_embedder, progress=False)
    assert word_embedder.calls == calls and report.embedded == 0
    assert len(report.unchanged) == 4
    after = IndexStore.open("t")
    assert [c.id for c in after.chunks] == [c.id for c in before.chunks]


def test_changed_file_replaces_its_chunks(corpus, word_embedder):
    ingest([corpus], index="t", embedder=word_embedder, progress=False)
    n_before = len(IndexStore.open("t").chunks)
    (corpus / "notes.txt").write_text("Completely new notes on speculative decoding.")
    report = ingest([corpus], index="t", embedder=word_embedder, progress=False)
    assert report.added == [str(corpus / "notes.txt")] and report.chunks_removed == 1
    store = IndexStore.open("t")
    texts = " ".join(c.text for c in store.chunks)
    assert "speculative decoding" in texts and "augmented generation" not in texts
    assert len(store.chunks) == n_before and len(store.manifest.docs) == 4
    assert len({c.id for c in store.chunks}) == len(store.chunks) == store.faiss.ntotal


def test_same_content_under_two_paths_stored_once(corpus, word_embedder):
    shutil.copy(corpus / "paper.pdf", corpus / "copy-of-paper.pdf")
    report = ingest([corpus], index="t", embedder=word_embedder, progress=False)
    assert len(report.added) == 4 and len(report.aliased) == 1
    store = IndexStore.open("t")
    doc = store.manifest.docs[store.find_doc("paper.pdf")]
    assert [p.rsplit("/", 1)[1] for p in doc["paths"]] == ["copy-of-paper.pdf", "paper.pdf"]
    assert store.find_doc("copy-of-paper") == store.find_doc("paper.pdf")


def test_bad_files_are_reported_and_skipped(tmp_path, word_embedder):
    d = tmp_path / "bad"
    d.mkdir()
    good = make_paper_pdf(d / "good.pdf")
    (d / "truncated.pdf").write_bytes(good.read_bytes()[:300])
    make_encrypted_pdf(d / "encrypted.pdf", good)
    (d / "empty.pdf").write_bytes(b"")
    make_image_only_pdf(d / "scanned.pdf")
    (d / "fake.pdf").write_text("this is not a PDF at all")
    (d / "gone.pdf").symlink_to(d / "does-not-exist.pdf")
    report = ingest([d], index="t", embedder=word_embedder, progress=False)
    assert [os.path.basename(p) for p in report.added] == ["good.pdf"]
    reasons = {os.path.basename(s.path): s.reason for s in report.skipped}
    assert reasons["truncated.pdf"].startswith("corrupt or truncated PDF")
    assert reasons["encrypted.pdf"] == "encrypted PDF"
    assert reasons["empty.pdf"] == "empty file (0 bytes)"
    assert reasons["scanned.pdf"] == "no text layer (scanned or image-only PDF)"
    assert reasons["fake.pdf"] == "not a PDF (no %PDF header)"
    assert reasons["gone.pdf"].startswith("cannot read")
    assert all(" — " in str(s) and str(s).startswith(str(s.path)) for s in report.skipped)


def test_cli_exit_status_and_messages(tmp_path, corpus, monkeypatch):
    monkeypatch.setattr("retrieval.embed.load_embedder", lambda config=None: WordEmbedder())
    runner = CliRunner()
    (tmp_path / "empty.pdf").write_bytes(b"")
    result = runner.invoke(app, ["ingest", "-q", str(corpus), str(tmp_path / "empty.pdf"), "--index", "t"])
    assert result.exit_code == 0, result.output
    assert "empty.pdf: empty file (0 bytes) — re-download" in result.output and "4 added" in result.output
    result = runner.invoke(app, ["ingest", "-q", str(tmp_path / "empty.pdf"), "--index", "t2"])
    assert result.exit_code == 1 and "nothing was ingested" in result.output
    result = runner.invoke(app, ["search", "power law compute", "--index", "t", "-k", "2"])
    assert result.exit_code == 0 and "post.md" in result.output.split("\n")[0]
    result = runner.invoke(app, ["search", "anything", "--index", "missing"])
    assert result.exit_code == 1 and "index 'missing' not found" in result.output
    result = runner.invoke(app, ["index", "remove", "--index", "t", "--doc", "notes.txt", "-y"])
    assert result.exit_code == 0 and len(IndexStore.open("t").manifest.docs) == 3
    assert "t " in runner.invoke(app, ["index", "list"]).output


def test_opening_with_another_embedder_is_refused(corpus, word_embedder):
    ingest([corpus], index="t", embedder=word_embedder, progress=False)
    with pytest.raises(EmbedderMismatch, match="built with embedder 'test/word-overlap', not 'other/model'"):
        IndexStore.open("t", embedder_id="other/model")


def test_an_index_recorded_for_another_bm25_analyser_is_refused(corpus, word_embedder, monkeypatch):
    from retrieval import lexical

    ingest([corpus], index="t", embedder=word_embedder, progress=False)
    assert IndexStore.open("t").manifest.lexical == lexical.ANALYSER
    monkeypatch.setattr(lexical, "ANALYSER", "jieba/2")
    with pytest.raises(EmbedderMismatch, match="built for the BM25 analyser 'words\\+cjk-bigrams/1'.*'jieba/2' — rebuild"):
        IndexStore.open("t")


def test_remove_document_and_index(corpus, word_embedder):
    ingest([corpus], index="t", embedder=word_embedder, progress=False)
    remove_document("t", "paper.pdf")
    store = IndexStore.open("t")
    assert all(not c.path.endswith("paper.pdf") for c in store.chunks)
    assert not any(k.endswith("paper.pdf") for k in store.manifest.files)
    assert store.faiss.ntotal == len(store.chunks) == store.vectors.shape[0]
    # re-ingest brings the removed document back, and only it
    report = ingest([corpus], index="t", embedder=word_embedder, progress=False)
    assert [os.path.basename(p) for p in report.added] == ["paper.pdf"]
    from retrieval.store import remove_index
    remove_index("t")
    with pytest.raises(IndexNotFound):
        IndexStore.open("t")


def test_pypdf_parser_gives_the_same_clean_text(tmp_path, word_embedder):
    from ragqa.config import load_config

    make_paper_pdf(tmp_path / "paper.pdf")
    cfg = load_config(None, ingest={"pdf_parser": "pypdf"})
    ingest([tmp_path], index="p", config=cfg, embedder=word_embedder, progress=False)
    chunks = IndexStore.open("p").chunks
    text = " ".join(" ".join(c.text.split()) for c in chunks)  # pypdf keeps the line breaks
    assert "chunking of long documents" in text and "Vaswani" not in text
    assert {c.section for c in chunks} >= {"1 Introduction", "2 Method", "A Implementation Details"}
    encrypted = make_encrypted_pdf(tmp_path / "enc.pdf", tmp_path / "paper.pdf")
    report = ingest([encrypted], index="p", config=cfg, embedder=word_embedder, progress=False)
    assert [s.reason for s in report.skipped] == ["encrypted PDF"]


def test_an_edited_paper_re_embeds_only_its_changed_chunks(tmp_path, word_embedder):
    import numpy as np

    sections = [f"## Part {i}\n\n" + " ".join(f"Sentence {i}.{j} about topic {i} and detail {j}." for j in range(30))
                for i in range(6)]
    paper = tmp_path / "docs" / "paper.md"
    paper.parent.mkdir()
    paper.write_text("# A long paper\n\n" + "\n\n".join(sections))
    first = ingest([paper.parent], index="e", embedder=word_embedder, progress=False)
    assert first.embedded == first.chunks_added > 12  # many chunks
    before = IndexStore.open("e")
    edited = sections[:]
    edited[3] = edited[3].replace("Sentence 3.20 about topic 3 and detail 20.", "A corrected claim about topic three.")
    paper.write_text("# A long paper\n\n" + "\n\n".join(edited))
    calls = word_embedder.calls
    report = ingest([paper.parent], index="e", embedder=word_embedder, progress=False)
    after = IndexStore.open("e")
    assert 1 <= report.embedded <= 3  # one paragraph changed
    assert word_embedder.calls - calls == report.embedded + 1  # and the one-text model probe when opening
    assert report.chunks_removed == len(before.chunks) and len(after.chunks) == report.chunks_added
    assert "A corrected claim" in " ".join(c.text for c in after.chunks)
    assert not any("Sentence 3.20 about" in c.text for c in after.chunks)  # the old text left the index
    fresh = word_embedder.embed_batch([embed_text(c.title, c.section, c.text) for c in after.chunks])
    assert np.allclose(after.vectors, fresh, atol=1e-6)  # reused vectors are the vectors of their text


def test_the_same_passage_in_two_new_files_is_embedded_once(tmp_path, word_embedder):
    text = "# Notes\n\n" + " ".join(f"Shared sentence number {j} of the passage." for j in range(8))
    (tmp_path / "a.md").write_text(text + "\n\nOnly in a.")
    (tmp_path / "b.md").write_text(text + "\n\nOnly in b.")
    report = ingest([tmp_path], index="s", embedder=word_embedder, progress=False)
    assert report.embedded < report.chunks_added  # the shared chunk once, each file's own ending once


def test_a_busy_machine_is_named_before_embedding_slows_down(tmp_path, word_embedder, monkeypatch, caplog):
    import logging

    (tmp_path / "a.md").write_text("# A\n\nBERT is pre-trained with masked language modelling and more.")
    monkeypatch.setattr(os, "getloadavg", lambda: (9.5, 9.0, 8.0))
    with caplog.at_level(logging.WARNING, logger="ragqa.ingest"):
        report = ingest([tmp_path], index="b", embedder=word_embedder, progress=False)
    assert report.embedded == 1
    assert any(r.getMessage().startswith(f"machine busy: load 9.5 on {os.cpu_count()} cores") for r in caplog.records)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.2, 0.2))
    from ingest._pipeline import machine_busy

    assert machine_busy() == ""


@pytest.mark.parametrize("first_page, title", [
    ("BERT: Pre-training of Deep Bidirectional Transformers for\nLanguage Understanding\nJacob Devlin Ming-Wei Chang",
     "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding"),
    ("Do Prompt-Based Models Really Understand\nthe Meaning of Their Prompts?\nAlbert Webson and Ellie Pavlick",
     "Do Prompt-Based Models Really Understand the Meaning of Their Prompts?"),
    ("ON THE VARIANCE OF THE ADAPTIVE LEARNING\nRATE AND BEYOND\nLiyuan Liu",
     "ON THE VARIANCE OF THE ADAPTIVE LEARNING RATE AND BEYOND"),
    ("LLaMA: Open and Efficient Foundation Language Models\nHugo Touvron, Thibaut Lavril",  # a finished title
     "LLaMA: Open and Efficient Foundation Language Models"),
    ("Dropout: A Simple Way to Prevent Neural Networks from\nnitish@cs.toronto.edu",  # an e-mail line is no title
     "Dropout: A Simple Way to Prevent Neural Networks from"),
    ("See discussions, stats, and author profiles for this publication at: https://www.researchgate.net/publication/1\n"
     "Creating LLM Applications Utilizing LangChain: A Primer on\nDeveloping LLM Apps Fast\nArticle in ICAENS",
     "Creating LLM Applications Utilizing LangChain: A Primer on Developing LLM Apps Fast"),
])
def test_a_title_wrapped_onto_more_lines_is_read_whole(first_page, title):
    from ingest._readers import guess_title

    assert guess_title(first_page) == title
