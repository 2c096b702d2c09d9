from ingest import _clean


def test_hyphenation_at_line_end_is_repaired():
    assert _clean.repair_hyphenation("careful chunk-\ning of text") == "careful chunking\nof text"
    # a capitalised continuation is a real compound or a name: left alone
    assert _clean.repair_hyphenation("BERT-\nLarge") == "BERT-\nLarge"


def test_running_headers_and_page_numbers_are_removed():
    topics = ["attention", "retrieval", "transformers", "chunking", "embeddings", "ranking"]
    pages = [f"Preprint under review\nBody text about {t}.\n{n}" for n, t in enumerate(topics, 1)]
    cleaned = _clean.clean_pages(pages)
    assert all("Preprint" not in p for p in cleaned)
    assert cleaned[2] == "Body text about transformers."


def test_short_documents_keep_their_first_lines():
    # with fewer than 3 pages nothing can be told apart as a running header
    assert _clean.clean_pages(["Title line\nBody"]) == ["Title line\nBody"]


def test_ligatures_and_pdfium_hyphen_marks_are_normalised():
    assert _clean.normalize("e\ufb03cient man\ufffeagement\r\n") == "efficient management\n"


def test_headings_detected():
    assert _clean.heading_of("3.2 Pre-training Tasks", markdown=False) == "3.2 Pre-training Tasks"
    assert _clean.heading_of("Related Work", markdown=False) == "Related Work"
    assert _clean.heading_of("We show that the model works well.", markdown=False) is None
    assert _clean.heading_of("3 50.1 62.3 70.0 81.2", markdown=False) is None
    assert _clean.heading_of("## Results ##", markdown=True) == "Results"


def test_references_left_out_but_appendix_after_them_kept():
    text = ("1 Introduction\nIntro text.\nReferences\n"
            "A. Vaswani, N. Shazeer. Attention is all you need.\n[2] More refs.\n"
            "A Implementation Details\nSix layers.")
    spans = _clean.sections(text, markdown=False)
    kept = " ".join(text[s:e] for s, e, _ in spans)
    assert "Intro text." in kept and "Six layers." in kept
    assert "Vaswani" not in kept and "More refs" not in kept
    assert [h for _, _, h in spans] == ["1 Introduction", "A Implementation Details"]


def test_markdown_sections():
    text = "# Title\n\nintro\n\n## Setup\n\nsteps\n\n## References\n\n- a ref\n"
    assert [h for _, _, h in _clean.sections(text, markdown=True)] == ["Title", "Setup"]
