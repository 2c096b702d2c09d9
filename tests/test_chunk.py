from fakes import WordEmbedder

from ingest._chunk import chunk_document, embed_text, split_span


def _doc(n_sentences=60):
    sentences = [f"Sentence number {i} talks about topic {i % 7} in detail." for i in range(n_sentences)]
    return [" ".join(sentences[:30]), " ".join(sentences[30:])]


def test_every_chunk_fits_the_window_and_offsets_point_into_page_text():
    emb = WordEmbedder(max_tokens=40)
    pages = _doc()
    text = "\n".join(pages)
    chunks = chunk_document("d1", "A Title", "/x.pdf", pages, [(0, len(text), "2 Method")],
                            emb.token_offsets(text), emb.count_tokens, 40, overlap=5)
    assert len(chunks) > 5
    for c in chunks:
        assert c.tokens == emb.count_tokens([embed_text(c.title, c.section, c.text)])[0] <= 40
        if c.page == c.page_end:
            assert pages[c.page - 1][c.start:c.end] == c.text
        else:  # spans a page break: starts in one page, ends in the next
            assert pages[c.page - 1][c.start:].startswith(c.text.split("\n")[0])
            assert pages[c.page_end - 1][:c.end] == c.text.split("\n")[-1]
    assert {c.page for c in chunks} == {1, 2}
    # all text covered: the concatenated chunk tokens include every word
    covered = " ".join(c.text for c in chunks)
    assert all(f"number {i} " in covered for i in range(60))


def test_chunks_prefer_sentence_ends_and_overlap():
    emb = WordEmbedder()
    text = _doc()[0]
    offs = emb.token_offsets(text)
    windows = split_span(text, offs, 0, len(offs), budget=30, overlap=4)
    for i, j in windows[:-1]:
        assert text[offs[j - 1][1] - 1] == "."  # ends at a sentence end
    for (i1, j1), (i2, j2) in zip(windows, windows[1:]):
        assert i2 == j1 - 4


def test_chunks_do_not_cross_sections():
    emb = WordEmbedder()
    text = "Intro words here.\nMethod words there."
    spans = [(0, 17, "1 Introduction"), (18, len(text), "2 Method")]
    chunks = chunk_document("d", "T", "/t.md", [text], spans, emb.token_offsets(text), emb.count_tokens, 64, 4)
    assert [(c.section, c.text) for c in chunks] == [("1 Introduction", "Intro words here."),
                                                     ("2 Method", "Method words there.")]
