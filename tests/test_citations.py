from ragqa.citations import check_citations, find_evidence, normalize

SOURCES = {
    1: "BERT is pre-trained with two tasks: masked language\nmodelling and next   sentence prediction.",
    2: "LoRA freezes the pretrained weights and trains low-rank matrices instead.",
}


def statuses(answer):
    return [(c.n, c.status) for c in check_citations(answer, SOURCES)]


def test_quote_verified_after_whitespace_normalisation():
    cites = check_citations('BERT uses "masked language modelling and next sentence prediction" [1].', SOURCES)
    assert [(c.n, c.status, c.quote) for c in cites] == [
        (1, "verified quote", "masked language modelling and next sentence prediction")]
    assert cites[0].ok


def test_quote_from_another_source_is_flagged_with_where_it_is():
    cites = check_citations('LoRA "freezes the pretrained weights" [1].', SOURCES)
    assert (cites[0].status, cites[0].found_in, cites[0].ok) == ("quote not found", 2, False)


def test_invented_quote_is_never_verified():
    cites = check_citations('BERT is "trained only on Wikipedia articles" [1].', SOURCES)
    assert (cites[0].status, cites[0].found_in) == ("quote not found", None)


def test_unknown_source_and_multiple_markers():
    assert statuses("See [3].") == [(3, "no such source")]
    assert [n for n, _ in statuses("Both models are pretrained [1, 2].")] == [1, 2]


def test_unquoted_citation_is_supported_only_by_overlap():
    assert statuses("BERT uses masked language modelling [1].") == [(1, "supported")]
    assert statuses("BERT uses masked language modelling [2].") == [(2, "unsupported")]


def test_normalize_unfolds_ligatures_quotes_and_line_break_hyphens():
    assert normalize("the ﬁne-tuning “stage”") == 'the fine-tuning "stage"'
    assert normalize("pre-\n  training") == "pretraining"


def test_evidence_points_at_the_supporting_sentence():
    ev = find_evidence("LoRA trains low-rank matrices while the pretrained weights stay frozen.", SOURCES)
    assert [(e.source, e.overlap >= 0.5) for e in ev] == [(2, True)]
    assert ev[0].text.startswith("LoRA freezes")


def test_no_evidence_for_unrelated_sentences():
    assert find_evidence("The weather in Paris was sunny and warm yesterday.", SOURCES) == []


def test_repeated_answer_sentences_get_evidence_once():
    ev = find_evidence("LoRA trains low-rank matrices instead. LoRA trains low-rank matrices instead.", SOURCES)
    assert len(ev) == 1


def test_display_drops_repeats_and_folds_unknown_numbers():
    from ragqa.citations import for_display

    answer = "[1] [2] [3] [4] [5] [7]. BERT uses masked language modelling [1]. Again [1]."
    shown, unknown = for_display(check_citations(answer, SOURCES))
    assert unknown == "[3]-[5], [7]"
    assert [(c.n, c.status) for c in shown] == [(1, "unsupported"), (2, "unsupported"), (1, "supported")]


def test_each_marker_is_checked_against_its_own_quote():
    answer = ('BERT uses "masked language modelling and next sentence prediction" [1] while LoRA '
              '"freezes the pretrained weights" [2].')
    assert [(c.n, c.status, c.quote) for c in check_citations(answer, SOURCES)] == [
        (1, "verified quote", "masked language modelling and next sentence prediction"),
        (2, "verified quote", "freezes the pretrained weights")]


def test_a_marker_after_two_quotes_needs_both_in_its_source():
    answer = 'It reads "masked language modelling" and "freezes the pretrained weights" [1].'
    cite = check_citations(answer, SOURCES)[0]
    assert (cite.status, cite.quote, cite.found_in) == ("quote not found", "freezes the pretrained weights", 2)


def test_chinese_quotes_are_verified_and_sentences_split_at_chinese_punctuation():
    from ragqa.citations import content_words
    from ragqa.text import split_sentences

    source = {1: "量化把模型权重从十六位浮点数压缩为四位整数。这样显存占用减少了四分之三！推理更快吗？是的。"}
    assert split_sentences(source[1]) == ["量化把模型权重从十六位浮点数压缩为四位整数。", "这样显存占用减少了四分之三！",
                                          "推理更快吗？", "是的。"]
    assert split_sentences("他说：“好的。”然后离开。") == ["他说：“好的。”", "然后离开。"]  # the closing quote stays
    ok = check_citations("量化的作用：“模型权重从十六位浮点数压缩为四位整数”[1]", source)
    assert [c.status for c in ok] == ["verified quote"]
    made_up = check_citations("「权重压缩为两位整数」[1]", source)
    assert [c.status for c in made_up] == ["quote not found"]
    assert {"显存", "存占", "占用"} <= content_words("显存占用 GPU")  and "gpu" in content_words("显存占用 GPU")


def test_cited_numbers_reads_single_and_grouped_markers():
    from ragqa.citations import cited_numbers

    assert cited_numbers('"X" [2] and [1, 3]; not (4) or 5.') == {1, 2, 3} and cited_numbers("none") == set()


def test_markers_come_out_with_the_space_before_them_and_nothing_else():
    from ragqa.citations import without_markers

    assert without_markers('It is cheap [1, 2]. "A [sic] quote" [3;4] (4) stays.') == 'It is cheap. "A [sic] quote" (4) stays.'


def test_abbreviations_end_no_sentence():
    """"Zellers et al. (2018) introduced AF." was split after "al.", and "(2018) introduced Adversarial
    Filtering (AF)." led an ARAGOG answer."""
    from ragqa.reply import reply_sentences
    from ragqa.text import split_sentences

    text = ("Zellers et al. (2018) introduced Adversarial Filtering (AF). As Fig. 3 shows, the loss falls. "
            "Models such as e.g. BERT use it. It works.")
    expected = ["Zellers et al. (2018) introduced Adversarial Filtering (AF).", "As Fig. 3 shows, the loss falls.",
                "Models such as e.g. BERT use it.", "It works."]
    assert split_sentences(text) == expected
    assert reply_sentences(text) == expected
    assert reply_sentences("No. The lexicon differs by language.") == ["No.", "The lexicon differs by language."]
