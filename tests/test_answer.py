import json

import pytest
from typer.testing import CliRunner

from fakes import (LoopingQueueGenerator, QueueGenerator, ScoringQueueGenerator, TunedQueueGenerator, WordEmbedder,
                   plain_answer_config)
from ingest import ingest
from ragqa.answer import ABSTAIN, Answer, answer, answer_batch, retrieval_query, stream_answer
from ragqa.cli import app
from ragqa.config import AnswerConfig, RetrievalConfig
from ragqa.errors import RagqaError
from retrieval import Retriever
from retrieval.store import IndexStore

DOCS = {
    "bert.md": "# BERT\n\nBERT is pre-trained with masked language modelling and next sentence prediction. "
               "BERT reads text in both directions.",
    "gpt.md": "# GPT\n\nGPT is trained autoregressively to predict the next token from left context.",
    "lora.md": "# LoRA\n\nLoRA (low-rank adaptation) is a method that freezes pretrained weights and trains "
               "low-rank matrices. Adapters of this kind make fine-tuning cheap.",
    "rag.md": "# RAG\n\nRetrieval augmented generation conditions a generator on retrieved passages.",
}
CFG = plain_answer_config(k=2, abstain_below=0.1)


@pytest.fixture
def corpus(tmp_path):
    for name, text in DOCS.items():
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.fixture
def retriever(corpus, word_embedder):
    ingest([corpus], index="t", embedder=word_embedder, progress=False)
    return Retriever(IndexStore.open("t"), word_embedder, RetrievalConfig())


def test_streams_pieces_then_a_checked_answer(retriever):
    gen = QueueGenerator('BERT uses "masked language modelling and next sentence prediction" [1].')
    items = list(stream_answer("What are the pre-training tasks of BERT?", gen, retriever, CFG))
    result = items[-1]
    assert isinstance(result, Answer) and all(isinstance(i, str) for i in items[:-1])
    assert "".join(items[:-1]).strip() == result.text
    assert result.sources[0].chunk.path.endswith("bert.md") and result.sources[0].label == "bert.md, p. 1"
    assert [(c.n, c.status) for c in result.citations] == [(1, "verified quote")]
    assert result.primary_source.n == 1
    assert result.timings["prompt_tokens"] > 0 and result.timings["tokens"] == len(result.text.split())
    prompt = gen.prompts[0][-1]["content"]
    assert "# BERT" not in prompt  # heading marks are dropped (the section is in the header)
    assert prompt.startswith("Sources:\n\n[1] (bert.md, p. 1)\nBERT is pre-trained") and prompt.endswith(
        "Question: What are the pre-training tasks of BERT?")


def test_fabricated_quote_is_flagged_and_evidence_attached(retriever):
    gen = QueueGenerator('BERT is "trained on cat pictures" [1]. BERT reads text in both directions.')
    result = answer("What are the pre-training tasks of BERT?", gen, retriever, config=CFG)
    assert [(c.status, c.ok) for c in result.citations] == [("quote not found", False)]
    assert [(e.source, e.text) for e in result.evidence] == [(1, "BERT reads text in both directions.")]
    assert result.primary_source.n == 1  # from evidence, since the only citation failed


def test_abstains_without_calling_the_model(retriever):
    gen = QueueGenerator("should not be generated")
    result = answer("Which football club won the league in 1987?", gen, retriever,
                    config=plain_answer_config(k=2, abstain_below=0.5))
    assert result.abstained and result.text.startswith(ABSTAIN) and "Closest sources: [1]" in result.text
    assert gen.prompts == [] and result.citations == []


def test_a_question_scoped_to_a_document_uses_the_scoped_threshold(retriever):
    gen = QueueGenerator("Masked language modelling [1].")
    cfg = plain_answer_config(k=2, abstain_below=0.9, abstain_below_scoped=0.01)
    question = "Which prediction does it make?"  # names no topic, as scoped QASPER questions do
    assert answer(question, gen, retriever, config=cfg).abstained
    scoped = answer(question, gen, retriever, config=cfg, doc="bert.md")
    assert not scoped.abstained and scoped.sources[0].chunk.path.endswith("bert.md") and len(gen.prompts) == 1


def test_background_of_a_scoped_question_stays_in_its_document(retriever):
    gen = QueueGenerator("It reads text in both directions [1].", "Low-rank matrices [1].")
    cfg = plain_answer_config(k=1, abstain_below=-1, abstain_below_scoped=-1)
    unscoped = answer("Does BERT use LoRA adapters?", gen, retriever, config=cfg)
    assert any(s.term and s.chunk.path.endswith("lora.md") for s in unscoped.sources)
    scoped = answer("Does BERT use LoRA adapters?", gen, retriever, config=cfg, doc="bert.md")
    assert {s.chunk.path.rsplit("/", 1)[-1] for s in scoped.sources} == {"bert.md"}


def test_no_retrieval_sends_the_bare_question(retriever):
    gen = QueueGenerator("An answer from memory.")
    result = answer("What is BERT?", gen, retriever, config=CFG, use_retrieval=False)
    assert not result.retrieval and result.sources == []
    assert gen.prompts[0][-1] == {"role": "user", "content": "What is BERT?"}


def test_background_explains_terms_outside_the_top_passages(retriever):
    gen = QueueGenerator("Because only small matrices are trained [2].")
    result = answer("Why do adapters like LoRA make fine-tuning cheap compared to GPT?", gen, retriever,
                    config=plain_answer_config(k=1, abstain_below=0.0))
    assert any(t["term"] == "LoRA" for t in result.terms)
    background = [s for s in result.sources if s.term]
    assert background, result.terms
    assert "Background on terms in the question:" in gen.prompts[0][-1]["content"]
    assert {s.chunk.id for s in background}.isdisjoint({s.chunk.id for s in result.sources if not s.term})


def test_context_budget_cuts_passages_at_sentences(retriever):
    gen = QueueGenerator("ok")
    config = plain_answer_config(k=3, context_tokens=64, background_tokens=0, abstain_below=0.0)
    result = answer("BERT masked language modelling LoRA low-rank adaptation", gen, retriever, config=config)
    retrieved = [s for s in result.sources if not s.term]
    assert sum(len(s.text.split()) for s in retrieved) <= 64
    assert all(s.text.rstrip().endswith((".", "?", "!")) for s in retrieved)


def test_follow_up_question_uses_the_conversation(retriever):
    history = [("What is BERT?", "BERT is a bidirectional encoder [1].")]
    query = retrieval_query("What are its pre-training tasks?", history)
    assert query == "What is BERT? What are its pre-training tasks?"
    assert retrieval_query("How does retrieval augmented generation use passages?", history) == \
        "How does retrieval augmented generation use passages?"
    gen = QueueGenerator("Masked language modelling [1].")
    result = answer("What are its pre-training tasks?", gen, retriever, config=CFG, history=history)
    assert result.sources[0].chunk.path.endswith("bert.md")
    assert [m["role"] for m in gen.prompts[0]] == ["system", "user", "assistant", "user"]


def test_a_follow_up_reply_may_use_the_words_and_figures_of_the_questions_it_builds_on(retriever):
    config = plain_answer_config(k=2, abstain_below=0.1, max_sentences=3, words_from_sources=True)
    history = [("What is BERT, the encoder Google released in 2018?", "BERT is a bidirectional encoder [1].")]
    reply = "Masked language modelling [1]. Google trained BERT in 2018 with masked language modelling."
    result = answer("What are its pre-training tasks?", QueueGenerator(reply), retriever, config=config, history=history)
    assert result.text.startswith(reply)  # "Google" and "2018" are the user's, not the model's invention
    # a question that stands alone holds the reply to its own words, whatever was asked before
    alone = answer("What are the pre-training tasks of BERT?", QueueGenerator(reply), retriever, config=config,
                   history=history)
    assert alone.text.startswith("Masked language modelling [1].") and "Google" not in alone.text


@pytest.mark.parametrize("question, message", [("   ", "empty question"), ("x" * 3000, "too long")])
def test_bad_questions_are_refused(retriever, question, message):
    with pytest.raises(RagqaError, match=message):
        answer(question, QueueGenerator(), retriever, config=CFG)


@pytest.fixture
def fake_models(monkeypatch):
    gen = QueueGenerator()
    monkeypatch.setattr("retrieval.embed.load_embedder", lambda config=None: WordEmbedder())
    monkeypatch.setattr("ragqa.generators.load_generator", lambda config=None: gen)
    return gen


def test_cli_ask_prints_answer_and_checked_citations(corpus, fake_models):
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", "-q", str(corpus), "--index", "t"]).exit_code == 0
    fake_models.enqueue('It uses "masked language modelling and next sentence prediction" [1] on unlabeled text '
                        '(see [9]).')
    result = runner.invoke(app, ["ask", "What are the pre-training tasks of BERT?", "--index", "t"])
    assert result.exit_code == 0, result.output
    assert '[1] bert.md, p. 1 — "masked language modelling and next sentence prediction" · verified quote' in result.output
    assert "[9] · FLAGGED: no such source (the answer cites sources that were not given)" in result.output
    fake_models.enqueue("Masked language modelling on unlabeled text [1].")
    result = runner.invoke(app, ["ask", "pre-training tasks of BERT?", "--index", "t", "--json"])
    data = json.loads(result.output)
    # the default answer: the reply, then the retrieved sentence that backs it, quoted and cited
    quote = '"BERT is pre-trained with masked language modelling and next sentence prediction." [1]'
    assert data["answer"] == f"Masked language modelling on unlabeled text [1].\n\n{quote}"
    assert data["sources"][0]["path"].endswith("bert.md")


def test_cli_ask_prints_document_text_as_plain_text(tmp_path, fake_models):
    (tmp_path / "chat.md").write_text("# [/INST] Llama chat format\n\nThe chat format wraps turns in "
                                      "[INST] tags \x1b]0;pwned\x07 and [/INST] closes a user turn.\n")
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", "-q", str(tmp_path), "--index", "t"]).exit_code == 0
    fake_models.enqueue('It "wraps turns in [INST] tags" [1] \x1b[2J.')
    result = runner.invoke(app, ["ask", "How does the Llama chat format wrap turns in INST tags?", "--index", "t"])
    assert result.exit_code == 0, result.output
    assert "[/INST] Llama chat format" in result.output and "\x1b" not in result.output
    assert '"wraps turns in [INST] tags" · verified quote' in result.output


def test_cli_ask_shows_the_answer_as_checked_where_a_streamed_sentence_was_left_out(corpus, fake_models,
                                                                                    monkeypatch, tmp_path):
    import io

    from rich.console import Console

    from ragqa import cli

    runner = CliRunner()
    assert runner.invoke(app, ["ingest", "-q", str(corpus), "--index", "t"]).exit_code == 0
    reply = "BERT is pre-trained on text. It took approximately 4,321 days."
    # a later sentence with words its sources lack would wait unseen until checked (words_from_sources): this
    # is the figure cut, seen as streamed
    (tmp_path / "figures.toml").write_text("[answer]\nwords_from_sources = false\n")
    ask = ["ask", "What are the pre-training tasks of BERT?", "--index", "t", "--config", str(tmp_path / "figures.toml")]
    fake_models.enqueue(reply)
    piped = runner.invoke(app, ask)
    assert "BERT is pre-trained on text." in piped.output and "4,321" not in piped.output  # the checked answer alone
    terminal = io.StringIO()
    monkeypatch.setattr(cli, "out", Console(file=terminal, force_terminal=True, color_system=None, width=300))
    fake_models.enqueue(reply)
    assert runner.invoke(app, ask).exit_code == 0
    streamed, checked = terminal.getvalue().split("The answer, as checked:")
    # the stream stopped at the figure; what it began of that sentence is left out of the answer
    assert "It took approximately" in streamed and "4,321" not in streamed
    assert "BERT is pre-trained on text." in checked and "approximately" not in checked
    fake_models.enqueue("It uses masked language modelling.")  # nothing left out: streamed once, not again
    again = io.StringIO()
    monkeypatch.setattr(cli, "out", Console(file=again, force_terminal=True, color_system=None, width=300))
    runner.invoke(app, ["ask", "What are the pre-training tasks of BERT?", "--index", "t"])
    assert "as checked" not in again.getvalue() and again.getvalue().startswith("It uses masked language modelling.\n")


class DigitQueueGenerator(QueueGenerator):
    """Streams its replies a digit at a time, as SmolLM2's tokenizer writes numbers."""

    def generate(self, messages, max_new_tokens=None):
        import re

        return iter(re.findall(r"\d|\D+", "".join(super().generate(messages, max_new_tokens))))


def test_a_number_shows_in_the_stream_once_whole(retriever):
    question = "What are the pre-training tasks of BERT?"
    config = plain_answer_config(k=2, abstain_below=0.1, numbers_from_sources=False)  # any figure goes
    *pieces, result = stream_answer(question, DigitQueueGenerator("It has 1,024 layers."), retriever, config=config)
    assert "".join(pieces) == result.text == "It has 1,024 layers."
    assert not any(p[-1].isdigit() for p in pieces[:-1])  # never "It has 1" while 1,024 is being written


def test_a_streamed_reply_left_out_whole_is_set_apart_from_the_quote(retriever):
    config = plain_answer_config(k=2, abstain_below=0.1, lead_quote=True)
    pieces = list(stream_answer("What are the pre-training tasks of BERT?", QueueGenerator("It took 4,321 days."),
                                retriever, config=config))
    result = pieces[-1]
    assert result.text == result.lead and "".join(pieces[:-1]) == f"It took\n\n{result.lead}"


@pytest.mark.parametrize("args, message", [
    (["ask", "", "--index", "t"], "empty question"),
    (["ask", "What is BERT?", "--index", "nope"], "nope"),
    (["ask", "What is BERT?", "--index", "t", "--precision", "fp8"], "generator.precision='fp8'"),
])
def test_cli_ask_bad_input_is_one_line(corpus, fake_models, args, message):
    runner = CliRunner()
    runner.invoke(app, ["ingest", "-q", str(corpus), "--index", "t"])
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_cli_chat_keeps_history_and_clears_it(corpus, fake_models):
    runner = CliRunner()
    runner.invoke(app, ["ingest", "-q", str(corpus), "--index", "t"])
    fake_models.enqueue("BERT is an encoder [1].", "Masked language modelling [1].", "Next token [1].")
    session = "What is BERT?\nWhat are its pre-training tasks?\n/clear\nWhat is GPT trained on?\n/exit\n"
    result = runner.invoke(app, ["chat", "--index", "t"], input=session)
    assert result.exit_code == 0, result.output
    roles = [[m["role"] for m in p] for p in fake_models.prompts]
    assert roles == [["system", "user"], ["system", "user", "assistant", "user"], ["system", "user"]]


def test_answer_batch_keeps_order_and_abstains_per_question(retriever):
    from ragqa.answer import answer_batch

    gen = QueueGenerator("Masked language modelling [1].", "Next token prediction [1].")
    results = answer_batch(["What are the pre-training tasks of BERT?", "Which football club won in 1987?",
                            "How is GPT trained autoregressively?"], gen, retriever,
                           config=plain_answer_config(k=2, abstain_below=0.3))
    assert [r.abstained for r in results] == [False, True, False]
    assert results[0].text == "Masked language modelling [1]." and results[2].text == "Next token prediction [1]."
    assert results[0].citations[0].status == "supported" and len(gen.prompts) == 2


def test_lead_quote_streams_first_and_is_a_verified_citation(retriever):
    gen = QueueGenerator("Masked language modelling and next sentence prediction [1].")
    cfg = plain_answer_config(k=2, abstain_below=0.1, lead_quote=True, quote_backs_reply=False)
    items = list(stream_answer("What are the pre-training tasks of BERT?", gen, retriever, cfg))
    result = items[-1]
    lead = '"BERT is pre-trained with masked language modelling and next sentence prediction." [1]'
    assert items[0] == lead + "\n\n" and result.text.startswith(lead) and result.lead == lead
    assert result.citations[0].status == "verified quote"


QUOTED = plain_answer_config(k=1, abstain_below=0.1, lead_quote=True, max_sentences=3)  # quote_backs_reply: default


@pytest.mark.parametrize("batched", [False, True])
def test_the_quote_is_the_sentence_backing_the_reply_and_follows_it(retriever, batched):
    question = "What is LoRA?"
    ahead = answer(question, QueueGenerator("It makes fine-tuning cheap."), retriever,
                   config=plain_answer_config(k=1, abstain_below=0.1, lead_quote=True, quote_backs_reply=False))
    assert ahead.lead.startswith('"LoRA (low-rank adaptation)')  # closest to the question alone: no cost said
    gen = QueueGenerator("It makes fine-tuning cheap.")
    if batched:
        result, shown = answer_batch([question], gen, retriever, config=QUOTED)[0], None
    else:
        *items, result = stream_answer(question, gen, retriever, QUOTED)
        shown = "".join(items)
    quote = '"Adapters of this kind make fine-tuning cheap." [1]'
    assert result.text == f"It makes fine-tuning cheap.\n\n{quote}" and result.lead == quote
    assert result.reply == "It makes fine-tuning cheap."  # the model's own words, scored for their markers
    assert shown in (None, result.text)  # the stream showed what the answer says, the quote last
    assert [(c.n, c.status) for c in result.citations] == [(1, "verified quote")]


def test_a_reply_saying_the_backing_quote_again_leaves_the_quote_alone(retriever):
    gen = QueueGenerator("Adapters of this kind make fine-tuning cheap. ")
    *items, result = stream_answer("What is LoRA?", gen, retriever, QUOTED)
    assert result.text == '"Adapters of this kind make fine-tuning cheap." [1]'
    assert result.citations[0].status == "verified quote"


def test_an_empty_reply_is_answered_by_the_quote_closest_to_the_question(retriever):
    result = answer("What is LoRA?", QueueGenerator("The answer is:"), retriever, config=QUOTED)
    assert result.text.startswith('"LoRA (low-rank adaptation)') and result.text == result.lead


def test_focus_keeps_the_sentences_closest_to_the_question_and_renumbers(retriever):
    gen = QueueGenerator("LoRA freezes pretrained weights [1].")
    cfg = plain_answer_config(k=3, abstain_below=0.1, focus_tokens=12)
    result = answer("What does LoRA freeze in the pretrained weights?", gen, retriever, config=cfg)
    retrieved = [s for s in result.sources if not s.term]
    assert [s.n for s in retrieved] == list(range(1, len(retrieved) + 1))
    assert retrieved[0].text == ("LoRA (low-rank adaptation) is a method that freezes pretrained weights and "
                                 "trains low-rank matrices.")  # the closest sentence; its neighbour is cut
    assert "Adapters of this kind" not in gen.prompts[0][-1]["content"]


def test_yes_no_hint_only_for_yes_no_questions(retriever):
    gen = QueueGenerator("Yes [1].", "Masked language modelling [1].")
    cfg = plain_answer_config(k=2, abstain_below=0.1, yes_no_hint=True)
    answer("Is BERT pre-trained with masked language modelling?", gen, retriever, config=cfg)
    answer("What are the pre-training tasks of BERT?", gen, retriever, config=cfg)
    assert gen.prompts[0][-1]["content"].endswith("Answer Yes or No first.")
    assert gen.prompts[1][-1]["content"].endswith("BERT?")


@pytest.mark.parametrize("question, yes_no", [
    ("Can PAL's approach be generalized to models trained on natural language?", True),
    ("Does the algorithm improve on the state-of-the-art methods?", True),
    ("Can you describe the modifications LLaMA makes to the transformer architecture?", False),  # a request
    ("Could you explain the normalization step applied to generated answers?", False),
    ("What are the pre-training tasks of BERT?", False),
])
def test_requests_phrased_as_questions_are_not_yes_no(question, yes_no):
    from ragqa.text import is_yes_no

    assert is_yes_no(question) is yes_no


@pytest.mark.parametrize("question, asked", [
    ("Can you describe the modifications LLaMA makes to the transformer architecture?",
     "Describe the modifications LLaMA makes to the transformer architecture."),
    ("Could you please explain the normalization step?", "Explain the normalization step."),
    ("Can you name some exceptions to the data usage patterns?", "Name some exceptions to the data usage patterns."),
    ("Would you say the results hold for Chinese?", "Would you say the results hold for Chinese?"),  # asks yes or no
    ("Can PAL's approach be generalized?", "Can PAL's approach be generalized?"),
    ("What are the pre-training tasks of BERT?", "What are the pre-training tasks of BERT?"),
])
def test_a_request_phrased_as_a_question_reaches_the_model_as_the_request(question, asked):
    from retrieval.context import build_messages

    # the tuned SmolLM2-135M answered "Can you describe the modifications ...?" with "Yes, I can."
    for use_retrieval in (True, False):
        messages = build_messages(question, [], [], 0, use_retrieval=use_retrieval, yes_no_hint=True)
        assert messages[-1]["content"].split("Question: ")[-1] == asked + (
            " Answer Yes or No first." if asked.startswith("Can PAL") else "")


@pytest.mark.parametrize("raw, question, expected", [
    ("LoRA freezes the weights. It trains low-rank matrices. 1. A list 2. that runs on", "What does LoRA do?",
     "LoRA freezes the weights. It trains low-rank matrices."),
    ("The lexicon is the same for all languages. It is built once.", "Is the lexicon the same for all languages?",
     "Yes. The lexicon is the same for all languages. It is built once."),
    ("The paper does not report a baseline. Only the new model.", "Does the paper report a baseline?",
     "No. The paper does not report a baseline. Only the new model."),
    ("No, it is fully supervised.", "Is it unsupervised?", "No, it is fully supervised."),
])
def test_shape_cuts_after_the_answer_and_opens_yes_no_replies_with_the_verdict(raw, question, expected):
    from ragqa.answer import shape

    assert shape(raw, question, plain_answer_config(max_sentences=2, yes_no_hint=True)) == expected


def test_the_worked_example_comes_before_the_question_only_when_the_answer_has_sources(retriever):
    from retrieval.context import EXAMPLE, build_messages

    gen = QueueGenerator("BERT reads text in both directions.", "BERT reads text in both directions.")
    history = [("What is BERT?", "An encoder.")]
    for example in (True, False):
        cfg = plain_answer_config(k=2, abstain_below=0.1, example=example)
        list(stream_answer("Does BERT read text in both directions?", gen, retriever, cfg, history=history))
    shown, plain = gen.prompts
    assert shown[1:3] == EXAMPLE and shown[3]["content"] == "What is BERT?" and shown[-1]["content"].startswith("Sources:")
    assert shown[3:] == plain[1:] and EXAMPLE[0] not in plain
    for question, use_retrieval in (("What is BERT?", False), ("量化有什么作用？", True)):  # no sources; in Chinese
        assert EXAMPLE[0] not in build_messages(question, [], [], 0, use_retrieval, example=True)


def test_shaped_stream_is_what_the_answer_holds(retriever):
    gen = QueueGenerator("BERT reads text in both directions [1]. It is an encoder. It has many layers. And more.")
    cfg = plain_answer_config(k=2, abstain_below=0.1, max_sentences=2, yes_no_hint=True)
    items = list(stream_answer("Does BERT read text in both directions?", gen, retriever, cfg))
    assert "".join(items[:-1]) == items[-1].text == "Yes. BERT reads text in both directions [1]. It is an encoder."


def test_shape_keeps_a_list_of_short_items_whole():
    from ragqa.answer import shape

    raw = "The file types are: 1. PDF files (.pdf) 2. Markdown (.md) 3. HTML (.html) 4. Text (.txt). That is all of them for now. And more text here."
    assert shape(raw, "Which file types?", plain_answer_config(max_sentences=2)) == (
        "The file types are: 1. PDF files (.pdf) 2. Markdown (.md) 3. HTML (.html) 4. Text (.txt). "
        "That is all of them for now.")


def test_a_query_the_embedder_cannot_read_abstains_only_without_any_shared_term():
    from ragqa.answer import _nothing_relevant
    from retrieval.search import Hit

    config = AnswerConfig()
    assert not _nothing_relevant([Hit(None, 0.03, dense=None, bm25=4.2)], config, None)  # BM25 found it
    assert _nothing_relevant([], config, None) and _nothing_relevant([Hit(None, 0.0, dense=None, bm25=None)], config, None)
    assert _nothing_relevant([Hit(None, 0.03, dense=0.1, bm25=4.2)], config, None)  # a cosine decides when there is one
    assert not _nothing_relevant([Hit(None, 0.03, dense=0.2, bm25=None)], config, "paper.pdf")  # scoped threshold


def test_a_chinese_question_is_answered_and_refused_in_chinese():
    from retrieval.context import ABSTAIN_ZH, abstain_text, build_messages, is_chinese

    assert is_chinese("LoRA 如何减少需要训练的参数？") and not is_chinese("What is LoRA (低秩适配)?")
    zh = build_messages("量化有什么作用？", [], [], 0, use_retrieval=True)
    en = build_messages("What does quantization do?", [], [], 0, use_retrieval=True)
    assert zh[0]["content"].endswith("Answer in Chinese.") and "Chinese" not in en[0]["content"]
    assert abstain_text("量化有什么作用？") == ABSTAIN_ZH and abstain_text("What?") == ABSTAIN


def test_chinese_sentences_are_quotable_and_ranked_by_shared_words_when_the_embedder_cannot_read(word_embedder):
    from types import SimpleNamespace

    from retrieval.context import best_sentences

    class Blind:  # MiniLM on Chinese: vectors of [UNK]s
        def embed_batch(self, texts, progress=False):
            return word_embedder.embed_batch(["unk" for _ in texts])

        def unknown_share(self, text):
            return 0.9

    passage = "蓝帐汗国是蒙古帝国的诸汗国之一，形成于1227年前后。它的首都设在萨莱。金帐汗国的建立者是拔都。"
    sources = [SimpleNamespace(n=1, text=passage, term="")]
    best = best_sentences("金帐汗国的建立者是谁？", sources, Blind(), 1)
    assert best and best[0][:2] == (1, "金帐汗国的建立者是拔都。")


@pytest.mark.parametrize("sentence, ok", [
    (", can be viewed as the task of detecting fake news at the account level.", False),  # a chunk's cut start
    ("which is why the model converges faster.", False),
    ("Table TABREF13 presents statistics on our dataset.", False),  # points at a table, says nothing
    ("Table 3 shows that BERT outperforms GPT on all eleven tasks by a wide margin.", True),
    ("word2vec learns vectors from co-occurrence.", True),
    ("札尼别的去世导致蓝帐汗国内战延续。", True),
    # announces what follows, says none of it
    ("In the rest of this paper, we present an overview of the modifications we made to the transformer "
     "architecture (Vaswani et al., 2017), as well as our training method.", False),
    ("In this section, we describe the datasets used for pre-training.", False),
    ("We make the following changes to the architecture:", False),  # a list's opening
    ("In this section, we show that pre-normalization improves training stability by a wide margin.", True),
    ("In this paper, we introduce LLaMA, a collection of foundation language models ranging from 7B to 65B "
     "parameters.", True),
])
def test_a_lead_quote_stands_alone(sentence, ok):
    from retrieval.context import quotable

    assert quotable(sentence) is ok


def test_lead_quote_is_never_a_cut_fragment(retriever):
    from retrieval.context import Source, best_sentences

    chunk = retriever.store.chunks[0]
    sources = [Source(1, chunk, ", can be viewed as masked language modelling of BERT text. "
                                "BERT is trained with a masked language modelling objective.")]
    (n, sentence, _), = best_sentences("masked language modelling BERT", sources, retriever.embedder, 1)
    assert sentence.startswith("BERT is trained")


def test_a_quote_is_never_taken_from_term_background(retriever):
    """Background explains a term, it is not a passage the answer rests on: the quote backing a reply
    (``ragqa.answer.back_quote``) is ranked among the passages alone."""
    from retrieval.context import Source, best_sentences

    chunk = retriever.store.chunks[0]
    sources = [Source(1, chunk, "BERT is trained on books and English Wikipedia text."),
               Source(2, chunk, "Masked language modelling hides words that BERT predicts.", term="masked language modelling")]
    (n, sentence, _), = best_sentences("masked language modelling BERT", sources, retriever.embedder, 1)
    assert n == 1 and sentence.startswith("BERT is trained")


@pytest.mark.parametrize("reply, expected", [
    ("The answer is: 玩家用什么泡封敌人？ 玩家以水枪泡封敌人。", "玩家以水枪泡封敌人。"),  # the question echoed, then an answer
    ("1. 1. 1. 1. 1.", ""),
    ("LoRA freezes the pretrained weights. It trains low-rank matrices.", "It trains low-rank matrices."),  # the lead again
    ("It trains two low-rank matrices per layer.", "It trains two low-rank matrices per layer."),
    ("LoRA freezes the base model. What does LoRA do?", "LoRA freezes the base model."),  # the question again
    ("What LoRA does is low-rank adaptation.", "What LoRA does is low-rank adaptation."),  # restates it: stays
    ("It trains two matrices. The two main tasks are:", "It trains two matrices."),  # a list's opening, no list
    # replies seen on ARAGOG dev, shortened: fillers on lines of their own, a loop of them, a sentence again
    ("The answer to this question is:\n\nIt trains two matrices. The answer is:\n\nThe answer is:\n\nThe answer",
     "It trains two matrices."),
    ("It trains two matrices. It trains two matrices. It trains two matrices.", "It trains two matrices."),
    ("It changes three parts:\n\n1. Pre-normalization [2]\n2. SwiGLU\n3. Rotary embeddings\n4. More",
     "It changes three parts:\n1. Pre-normalization [2]\n2. SwiGLU\n3. Rotary embeddings"),  # an opening counts with its list
    ("The tasks are:\n- BooksCorpus\n- Wikipedia\n- BooksCorpus\n-", "The tasks are:\n- BooksCorpus\n- Wikipedia"),
    # a last sentence cut mid-way by the loop stop goes when something was said before it; alone it stays
    ("It trains two matrices. It enhances the ability to learn during pre", "It trains two matrices."),
    ("It is a closed-book QA evaluation", "It is a closed-book QA evaluation"),
    ("It changes two parts:\n1. Pre-normalization\n2. SwiGLU", "It changes two parts:\n1. Pre-normalization\n2. SwiGLU"),
])
def test_shape_leaves_out_reply_sentences_that_say_nothing_new(reply, expected):
    from ragqa.answer import shape

    question = "玩家用什么泡封敌人？" if "玩家" in reply else "What does LoRA do?"
    lead = "LoRA freezes the pretrained weights."
    assert shape(reply, question, plain_answer_config(max_sentences=3), lead=lead) == expected
    assert shape(reply, question, plain_answer_config(max_sentences=3, drop_empty=False), lead=lead) != ""


def test_a_stream_holds_back_an_echo_until_it_says_something():
    from ragqa.answer import shape

    config, question, lead = plain_answer_config(max_sentences=3), "What does LoRA do?", "LoRA freezes the pretrained weights."
    steps = ["LoRA freezes the", "LoRA freezes the pretrained weights. It trains low",
             "LoRA freezes the pretrained weights. It trains low-rank matrices."]
    shown = [shape(raw, question, config, final=False, lead=lead) for raw in steps]
    assert shown == ["", "It trains low", "It trains low-rank matrices."]  # the echo never shows
    assert shape(steps[-1], question, config, lead=lead) == "It trains low-rank matrices."
    assert shape("玩家用什么", "玩家用什么泡封敌人？", config, final=False) == ""  # the question, being repeated
    # a list's opening waits for an item that says something; a filler line never shows
    steps = ["The parts are:", "The parts are:\n1. LoRA", "The parts are:\n1. LoRA\n2. QLoRA"]
    assert [shape(raw, question, config, final=False) for raw in steps] == ["", "The parts are:", "The parts are:\n1. LoRA"]
    assert shape(steps[1], question, config) == "The parts are:\n1. LoRA"
    assert shape("The answer is:\n\nIt trains low-rank", question, config, final=False) == "It trains low-rank"


@pytest.mark.parametrize("reply, expected", [
    ("The answer to this question is: PAL handles large numbers in Python.", "PAL handles large numbers in Python."),
    ("The answer is: yes, the lexicon is shared [1].", "Yes, the lexicon is shared [1]."),
    ("The answer to the question is the BooksCorpus and Wikipedia.", "The BooksCorpus and Wikipedia."),
    ("The answer to this question is that RoBERTa trains longer.", "RoBERTa trains longer."),
    # a value alone says something: it was dropped as list debris (no letter), and the answer with it
    ("The answer is: 97.6%\n\nIt is stated in the abstract.", "97.6% It is stated in the abstract."),
    ("The answer is that BERT uses masked language modelling.", "The answer is that BERT uses masked language modelling."),
    ("The answerer is a second model.", "The answerer is a second model."),
    ("1. 1. 1.\n2.", ""),
])
def test_a_preamble_before_the_answer_is_left_out_and_never_shows_while_streaming(reply, expected):
    from ragqa.answer import shape

    config, question = plain_answer_config(max_sentences=3), "What does PAL do?"
    assert shape(reply, question, config) == expected
    shown = ""  # streamed word by word: each step extends what is shown, and ends where the final text does
    for i in range(1, len(reply) + 1):
        text = shape(reply[:i], question, config, final=False)
        assert text.startswith(shown) or not text, (reply[:i], text)
        shown = text or shown
    assert expected.startswith(shown)


@pytest.mark.parametrize("sentence, empty", [
    ("97.6%", False), ("14,100.", False), ("2019.", False),  # a value alone answers "how many"
    ("1.", True), ("1. 1. 1.", True), ("6. 6.1 7. 7.1 8. 8.1", True), ("1.1.0.1 2.0 3.0 4.0", True),  # list debris
])
def test_a_value_alone_says_something_and_section_numbers_do_not(sentence, empty):
    from ragqa.reply import empty_reply

    assert empty_reply(sentence, "What share of BERT's accuracy does DistilBERT keep?") is empty


def test_a_reply_that_says_nothing_is_shown_as_no_answer_and_scored_as_empty():
    gen = QueueGenerator("What are the pre-training tasks of BERT?")  # the question, parroted
    result = answer("What are the pre-training tasks of BERT?", gen, None, use_retrieval=False)
    assert result.text == "" and result.display.startswith("(No answer")
    assert answer("生命数耗完即算为什么？", QueueGenerator("生命数耗完即算为什么？"), None,
                  use_retrieval=False).display.startswith("（没有回答")


@pytest.mark.parametrize("sentence, empty", [  # replies seen on QASPER dev, shortened
    ("The dataset used in this work is [1].", True),
    ("The features extracted are [1], [2], [3], [4].", True),
    ("The dataset was obtained from [1].", True),
    ("The [1] [2] [3] [4] [5] [6]", True),
    ("The dataset holds 171 accounts [1].", False),  # a claim that cites
    ("They compare to Tweet2vec and LR [1][2].", False),
    ("The model uses six layers (see [2]).", False),
    ("Its sources are [1] and [2].", True),
    ("The baselines are listed in [1, 2].", True),
    ("The dataset, in one or two short sentences.", True),  # the instruction said back
    ("Answer Yes or No first.", True),
])
def test_a_reply_sentence_that_gives_source_numbers_for_an_answer_says_nothing(sentence, empty):
    from ragqa.reply import empty_reply

    assert empty_reply(sentence, "How big is the dataset?") is empty


@pytest.mark.parametrize("reply, expected", [  # replies seen on ARAGOG dev, shortened
    ("The [1] (bert.pdf, p. 14)\n[2] (2017) as well as guides such as The Annotated Transformer.", ""),
    ("BERT beats the previous models on GLUE. [1] (roberta.pdf, p. 1) [2] (roberta.pdf, p.",
     "BERT beats the previous models on GLUE."),
    ("DetectGPT detects text from public models (zero-shot). [1] (DetectGPT.pdf, p. 1)\n\n[2] (Detect",
     "DetectGPT detects text from public models (zero-shot)."),
    ("The model uses six layers [2] (notes.md, p. 1)", "The model uses six layers"),  # a claim stays
    ("The model uses six layers [2].", "The model uses six layers [2]."),  # a citation is no echo
    # a header without its number, its line's opening word with it
    ("PAL runs the program. It is:\n\nPAL (PAL.pdf, p. 7)\n\nPAL (PAL.pdf, p. 7) is", "PAL runs the program."),
    ("It is a closed-book evaluation (LLM_long_tail.pdf, p. This involves", "It is a closed-book evaluation"),
    ("It is zero-shot (no examples) here.", "It is zero-shot (no examples) here."),  # parentheses are no echo
    # the source numbers counted out
    ("It changes three parts. 1. **Pre-normalization** [1] [2] [3] [4] [5] [6] [7] [8] [9] [1", "It changes three parts."),
    ("Both use them [1] [2].", "Both use them [1] [2]."),
])
def test_shape_stops_where_the_reply_writes_out_the_source_list(reply, expected):
    from ragqa.answer import shape

    config = plain_answer_config(max_sentences=3, drop_empty=False)
    assert shape(reply, "How many layers?", config) == expected
    streamed = shape(reply, "How many layers?", config, final=False)  # while streaming, too
    assert streamed == expected or expected.startswith(streamed)
    # a header still being written never shows: streamed text cannot be taken back
    assert "(" not in shape("The six layers. The [1] (user-guide.md,", "How many layers?", config, final=False)
    assert shape("It has six layers [1", "How many layers?", config, final=False) == "It has six layers"
    assert shape("It has six layers (notes.md, p", "How many layers?", config, final=False) == "It has six layers"
    # nor the one-word fragment the echo cuts off ("The"), at any point of the stream
    echo = "The [1] (bert.pdf, p. 14)\n[2] (2017) as well as"
    assert {shape(echo[:i], "How many layers?", config, final=False) for i in range(1, len(echo) + 1)} == {""}


class ByteLevelQueue(QueueGenerator):
    """Counts a Chinese character as ``per_char`` tokens, as SmolLM2's English byte-level tokenizer (2)
    or a Chinese-trained one (1) would."""

    def __init__(self, per_char: int, *replies: str):
        super().__init__(*replies)
        self.per_char = per_char

    def count_tokens(self, text: str) -> int:
        from ragqa.text import CJK_RUN, cjk_count

        return len(CJK_RUN.sub(" ", text).split()) + self.per_char * cjk_count(text)


def test_a_question_in_a_script_the_model_barely_reads_is_answered_by_the_quote_alone(tmp_path, word_embedder):
    filler = " ".join(f"蒙古 帝国 的 第{i}个 汗国 很 大。" for i in range(8))  # 150 tokens: beyond the prompt budget
    (tmp_path / "zh.md").write_text(f"# 汗国\n\n{filler} 金帐汗国 的 建立者 是 拔都。 蓝帐汗国 形成于 1227年 前后。\n")
    ingest([tmp_path], index="zh", embedder=word_embedder, progress=False)
    retriever = Retriever(IndexStore.open("zh"), word_embedder, RetrievalConfig())
    question, cfg = "金帐汗国 的 建立者 是 谁？", AnswerConfig(k=2, abstain_below=0.1, context_tokens=64)
    english_only = ByteLevelQueue(2)  # no reply queued: calling the model fails the test
    result = answer(question, english_only, retriever, config=cfg)
    assert result.text == '"金帐汗国 的 建立者 是 拔都。" [1]' and not english_only.prompts
    assert not result.abstained and result.citations and result.citations[0].n == 1
    assert "barely reads this script (2.0 tokens per character)" in result.timing_line()
    reads_chinese = ByteLevelQueue(1, "拔都 [1]。")
    assert answer(question, reads_chinese, retriever, config=cfg).text.startswith("拔都 [1]。")  # the reply, then the quote
    assert len(reads_chinese.prompts) == 1
    english_only.enqueue("拔都 [1]。")  # the check switched off: the model is asked
    assert answer(question, english_only, retriever, config=AnswerConfig(k=2, abstain_below=0.1, context_tokens=64,
                  quote_only_above=0)).text.startswith("拔都 [1]。")


def test_the_lead_quote_of_a_question_the_embedder_cannot_read_is_ranked_by_shared_words_alone():
    import numpy as np

    from retrieval.context import Source, focus_sources

    wrong, right = "它的首都设在萨莱城。", "金帐汗国的建立者是拔都。"
    fillers = ["蒙古帝国分为多个汗国。", "汗国之间常有战争。"]
    cosines = {wrong: 1.0, fillers[0]: 0.9, fillers[1]: 0.8, right: 0.0}

    class Misleading:  # [UNK]-heavy vectors whose cosines happen to favour the wrong sentence
        def embed_batch(self, texts, progress=False):
            return np.array([[1.0, 0.0] if t not in cosines else [cosines[t], (1 - cosines[t] ** 2) ** 0.5]
                             for t in texts], np.float32)

        def unknown_share(self, text):
            return 0.9

    passage = "".join([wrong, *fillers, right])
    _, lead = focus_sources("金帐汗国的建立者是谁？", [Source(1, None, passage)], Misleading(), 10_000, len)
    assert lead == (1, right)


def test_a_lead_quote_sheds_the_heading_or_footnote_mark_pdf_layout_glued_to_it():
    from types import SimpleNamespace

    from retrieval.context import Source, best_sentences, unglue

    chunk = SimpleNamespace(section="3 A MULTITASK TEST", text="3 A MULTITASK TEST\nWe create a massive multitask "
                            "test of multiple-choice questions.\nThe heads are counted as A.\n3\nWe primarily report "
                            "results on two model sizes.\n2 GPUs were used for every run of the model.")
    assert unglue("3 A MULTITASK TEST We create a massive multitask test of multiple-choice questions.", chunk) == \
        "We create a massive multitask test of multiple-choice questions."
    assert unglue("3 We primarily report results on two model sizes.", chunk) == "We primarily report results on two model sizes."
    assert unglue("2 GPUs were used for every run of the model.", chunk) == "2 GPUs were used for every run of the model."
    wrapped = SimpleNamespace(section="C.2 Ablation for Different Masking", text="C.2 Ablation for Different Masking\n"
                              "Procedures\nIn Section 3.1, we mention that BERT uses a mixed strategy.")
    assert unglue("C.2 Ablation for Different Masking Procedures In Section 3.1, we mention that BERT uses a mixed "
                  "strategy.", wrapped) == "In Section 3.1, we mention that BERT uses a mixed strategy."
    elsewhere = SimpleNamespace(section="BERT", text="BERT\nWe train it on books.\nBERT is pre-trained with masking.")
    assert unglue("BERT is pre-trained with masking.", elsewhere) == "BERT is pre-trained with masking."
    source = Source(1, chunk, " ".join(chunk.text.split()))

    class Words:  # shared words as cosine
        def embed_batch(self, texts, progress=False):
            import numpy as np
            vocab = sorted({w for t in texts for w in t.lower().split()})
            v = np.array([[t.lower().split().count(w) for w in vocab] for t in texts], np.float32)
            return v / np.linalg.norm(v, axis=1, keepdims=True)

    best = best_sentences("How was the multitask test created?", [source], Words(), 1)
    assert best[0][1] == "We create a massive multitask test of multiple-choice questions."


BERT_TASKS = "Masked language modelling and next sentence prediction [1]."


def test_passages_are_reranked_by_the_likelihood_of_the_question_with_the_adapter_off(retriever):
    """UPR: the question names BERT, so retrieval's title ranking puts bert.md first, but the passage
    that would make a reader ask it is LoRA's; the model scores ``rerank_depth`` passages untuned."""
    question = "Which adapters make fine-tuning of BERT cheap?"
    cfg = plain_answer_config(k=1, abstain_below=0.1, rerank_depth=4)
    unscored = answer(question, QueueGenerator("LoRA."), retriever, config=cfg)  # a server: cannot score
    assert unscored.sources[0].chunk.path.endswith("bert.md") and "rerank_ms" not in unscored.timings
    gen = ScoringQueueGenerator("LoRA.")
    result = answer(question, gen, retriever, config=cfg)
    assert result.sources[0].chunk.path.endswith("lora.md")
    assert gen.scored == [(4, True)] and "reranking" in result.timing_line()
    off = ScoringQueueGenerator("LoRA.")
    kept = answer(question, off, retriever, config=plain_answer_config(k=1, abstain_below=0.1, rerank_depth=0))
    assert kept.sources[0].chunk.path.endswith("bert.md") and off.scored == []


def test_rerank_reads_each_passage_after_its_title_and_keeps_ties_in_order():
    from types import SimpleNamespace as NS

    from retrieval.rerank import INSTRUCTION, rerank

    hits = [NS(chunk=NS(title="LoRA", text="LoRA. It freezes weights.")), NS(chunk=NS(title="BERT", text="It masks words.")),
            NS(chunk=NS(title="GPT", text="GPT predicts tokens.")), NS(chunk=NS(title="", text="## Notes\nNo title here."))]
    seen = []

    def score(chats, question):
        seen.extend(c[0]["content"] for c in chats)
        return [0.0, -0.5, 0.0, -1.0]
    assert [h.chunk.title for h in rerank("Which model masks words?", hits, score)] == ["LoRA", "GPT", "BERT", ""]
    assert seen[1] == f"Passage: BERT. It masks words.\n\n{INSTRUCTION}"
    assert seen[0] == f"Passage: LoRA. It freezes weights.\n\n{INSTRUCTION}"  # a first chunk opens with its title: once
    assert seen[3] == f"Passage: No title here.\n\n{INSTRUCTION}"  # heading marks dropped, as the model reads passages
    assert rerank("q", hits[:1], score) == hits[:1]  # nothing to reorder: the model is not asked


@pytest.mark.parametrize("streamed", [True, False])
def test_a_tuned_reply_that_says_nothing_is_asked_again_of_the_untuned_model(retriever, streamed, monkeypatch):
    import itertools

    import ragqa.answer

    clock = itertools.count(step=0.25)  # every reading of the clock a quarter second later: timings are exact
    monkeypatch.setattr(ragqa.answer.time, "perf_counter", lambda: next(clock))
    # the shipped adapter wrote source numbers for an answer in 22 of 71 ARAGOG dev replies
    gen = TunedQueueGenerator(["The two tasks are [1] and [2]."], [BERT_TASKS])
    cfg = plain_answer_config(k=2, abstain_below=0.1, max_sentences=3)
    question = "What are the pre-training tasks of BERT?"
    if streamed:
        *pieces, result = stream_answer(question, gen, retriever, cfg)
        shown = "".join(pieces)  # the terminal cannot take text back: what streamed before the source
        assert shown.endswith("\n\n" + BERT_TASKS) and "[1]" not in shown[:-len(BERT_TASKS)]  # numbers showed stays
    else:
        result, = answer_batch([question], gen, retriever, config=cfg)
    assert result.text == BERT_TASKS and result.citations[0].status == "supported"
    assert gen.base.prompts == gen.prompts  # the same chat, asked again with the adapter off
    assert result.timings["untuned_fallback"] and "answered untuned" in result.timing_line()
    t = result.timings
    assert t["tokens"] == gen.count_tokens("The two tasks are [1] and [2].") + gen.count_tokens(BERT_TASKS)
    if streamed:  # speed over both replies, not the fallback's alone (that showed "19707.1 tokens/s")
        assert 0 < t["ttft_s"] < t["total_s"]
        assert t["tokens_per_s"] == pytest.approx((t["tokens"] - 1) / (t["total_s"] - t["ttft_s"]), rel=1e-3)


def test_a_tuned_reply_that_answers_is_kept_and_the_fallback_can_be_turned_off(retriever):
    gen = TunedQueueGenerator([BERT_TASKS, "The two tasks are [1] and [2]."], [])
    question = "What are the pre-training tasks of BERT?"
    kept = answer(question, gen, retriever, config=plain_answer_config(k=2, abstain_below=0.1, max_sentences=3))
    assert kept.text == BERT_TASKS and "untuned_fallback" not in kept.timings
    off = plain_answer_config(k=2, abstain_below=0.1, max_sentences=3, untuned_fallback=False)
    empty = answer(question, gen, retriever, config=off)
    assert empty.text == "" and empty.display.startswith("(No answer")
    assert gen.base.prompts == []  # the untuned model was never asked


@pytest.mark.parametrize("sentence", [
    "LLaMA: Open and Efficient Foundation Language Models Hugo Touvron∗ , Thibaut Lavril∗ , Gautier Izacard∗ , "
    "Xavier Martinet Marie-Anne Lachaux, Timothee Lacroix, Baptiste Rozière, Naman Goyal Eric Hambro",  # title, authors
    "Correspondence: {htouvron, thibautlav,gizacard,egrave,glample}@meta.com 1 https://github.com/facebookresearch/llama "
    "performance, a smaller one trained longer will ultimately be cheaper at inference.",  # an e-mail line glued on
    "8% 71.4% 83.0% 28.0% 28.2% 28.4% 32.0% 41.1% 78.5% 77.4% Accuracy of the filtering model before AF",  # a table row
    "8% 71.4% 83.0% 28.0% 28.2% 28.4% 32.0% Accuracy of the filtering model before AF Accuracy of the filtering "
    "model after AF BERT-Large accuracy after AF Figure 11: Performance on the WikiHow subset of alternative "
    "variations of HellaSwag, where different",  # a table's cells run into its caption
    "Is PAL better because of the Python prompt or because of the interpreter?",  # the text asking itself
    "domains, DetectGPT provides the clearest signal for zero-shot detection.",  # a tail cut at a chunk's start
])
def test_what_is_not_prose_never_leads_an_answer(sentence):
    from retrieval.context import quotable

    assert not quotable(sentence)


@pytest.mark.parametrize("sentence", [
    "Table 1: DistilBERT retains 97% of BERT performance.",
    "Sukhbaatar et al. [(2019)](https://arxiv.org/abs/1905.07799) proposed a self-attention mechanism that seeks an "
    "optimal attention span.",  # a Markdown link is prose
    "For example, GPT-1 (June 2018), GPT2 (February 2019), and GPT-3 (June 2020) had 117 million, 1.5 billion, and "
    "175 billion parameters, respectively.",
    "The dataset contains 14,100 tweets and is released freely to the research community.",
])
def test_prose_with_numbers_links_or_names_can_lead(sentence):
    from retrieval.context import quotable

    assert quotable(sentence)


def test_a_reply_is_complete_once_its_last_shown_sentence_is_followed_by_another():
    from ragqa.reply import reply_complete

    config = plain_answer_config(max_sentences=2)
    assert not reply_complete("LoRA trains two matrices. It freezes the rest.", "What does LoRA do?", config)
    assert reply_complete("LoRA trains two matrices. It freezes the rest. It", "What does LoRA do?", config)
    # sentences that say nothing are not counted: they will not be shown
    assert not reply_complete("1. 1. 1. LoRA trains two matrices. It", "What does LoRA do?", config)
    assert reply_complete("The [1] (notes.md, p. 1)", "What does LoRA do?", config)  # the source list begun
    assert not reply_complete("A. B. C. D. E.", "q?", plain_answer_config(max_sentences=0))
    # a filler on its own line is no sentence said; a list's items are, its opening is not
    assert not reply_complete("The answer is:\n\nThe answer is:\n\nLoRA trains two matrices. It", "q?", config)
    assert not reply_complete("The parts are:\n1. LoRA\n2. QLo", "q?", config)
    assert reply_complete("The parts are:\n1. LoRA\n2. QLoRA\n3. Do", "q?", config)


def test_an_answer_records_that_the_loop_stop_cut_its_reply(retriever):
    looping = "BERT is pre-trained with masked language modelling. It is it is again again"
    streamed = answer("What are the pre-training tasks of BERT?", LoopingQueueGenerator(looping), retriever,
                      config=CFG)
    assert streamed.timings["loop_stops"] == 1 and "repeating itself" in streamed.timing_line()
    clean = answer("What are the pre-training tasks of BERT?", LoopingQueueGenerator("BERT uses masked LM."),
                   retriever, config=CFG)
    assert "loop_stops" not in clean.timings and "repeating" not in clean.timing_line()
    batch = answer_batch(["What are the pre-training tasks of BERT?", "What does LoRA freeze?"],
                         LoopingQueueGenerator("BERT uses masked LM.", looping), retriever, config=CFG)
    assert [r.timings.get("loop_stops", 0) for r in batch] == [0, 1]


class BeamQueueGenerator(QueueGenerator):
    """Replies whole, as a beam search does: only through ``generate_batch``, which records the ``done``
    tests it was given (streaming ``generate`` must not be called)."""

    beams = 3

    def __init__(self, *replies: str):
        super().__init__(*replies)
        self.done = []

    def generate(self, messages, max_new_tokens=None):
        raise AssertionError("a beam search cannot stream: generate_batch should be asked")

    def generate_batch(self, chats, max_new_tokens=None, samples=0, temperature=0.7, done=None):
        self.done.append(done)
        return ["".join(QueueGenerator.generate(self, m)) for m in chats]


def test_a_beam_searched_reply_is_asked_whole_with_the_stop_streaming_would_make(retriever):
    gen = BeamQueueGenerator("BERT reads text in both directions [1]. It is an encoder. It is big. It is old.")
    config = plain_answer_config(k=2, abstain_below=0.1, max_sentences=2)
    items = list(stream_answer("What are the pre-training tasks of BERT?", gen, retriever, config))
    assert items[-1].text == "BERT reads text in both directions [1]. It is an encoder."
    (done,) = gen.done[0]  # the search stops a candidate once two sentences are said and a third begun
    assert not done("BERT reads text in both directions. It is an encoder.") and done("One. Two. Thr")


class NumberRecordingGenerator(QueueGenerator):
    """Records the texts ``numbers_from`` was given for each call to ``generate`` (None: outside it)."""

    def __init__(self, *replies: str):
        super().__init__(*replies)
        self.current, self.calls = None, []

    def numbers_from(self, texts):
        from contextlib import contextmanager

        @contextmanager
        def switched():
            self.current = texts
            try:
                yield
            finally:
                self.current = None
        return switched()

    def generate(self, messages, max_new_tokens=None):
        self.calls.append(self.current)  # what the call was made under, as the real generator reads it
        return super().generate(messages, max_new_tokens)


def test_a_reply_from_sources_may_state_only_their_numbers_and_one_from_memory_any(retriever):
    gen = NumberRecordingGenerator("BERT was pre-trained on text.", "BERT was pre-trained on text.",
                                   "BERT was pre-trained on text.")
    on = answer("What are the pre-training tasks of BERT?", gen, retriever, config=CFG)
    (texts,) = gen.calls[0]
    assert texts.startswith("What are the pre-training tasks of BERT?")
    assert all(s.text in texts for s in on.sources)  # the sources as the prompt showed them
    answer("What are the pre-training tasks of BERT?", gen, retriever, config=CFG, use_retrieval=False)
    assert gen.calls[1] is None  # without sources the model answers from memory, unconstrained
    answer("What are the pre-training tasks of BERT?", gen, retriever, config=plain_answer_config(
        k=2, abstain_below=0.1, numbers_from_sources=False))
    assert gen.calls[2] is None


def test_the_reply_ends_before_the_sentence_whose_figure_was_refused():
    from ragqa.reply import before_refused_figure

    raw = "It has 14,100 tweets. It took approximately 1. The sources are accurate."
    assert before_refused_figure(raw, []) == raw
    # cut to a stub ("1." of the 1.2 it wanted): that sentence goes, and what was written after it
    assert before_refused_figure(raw, ["It has 14,100 tweets. It took approximately 1."]) == "It has 14,100 tweets."
    # refused as a figure began ("approximately " + a figure they lack): the same
    assert before_refused_figure(raw, ["It has 14,100 tweets. It took approximately "]) == "It has 14,100 tweets."
    assert before_refused_figure(raw, ["It has 9"]) == raw  # a path not taken (a draft rejected)
    assert before_refused_figure(raw, ["It has "]) == ""  # nothing left: the quote answers alone
    items = "Benchmarks: 1. HumanEval: 65B 2. MBPP: 13B 3. LLaMA-13B: 2.3 to 3.3"
    assert before_refused_figure(items, [items[:-3]]) == "Benchmarks: 1. HumanEval: 65B 2. MBPP: 13B"


class CuttingQueueGenerator(NumberRecordingGenerator):
    """As the real generator reports it: each reply was refused a figure in its second sentence."""

    def generate(self, messages, max_new_tokens=None):
        reply = self.replies[0]
        self.number_cuts = [[reply.split(". ")[0] + ". It took approximately "]]
        return super().generate(messages, max_new_tokens)


def test_an_answer_ends_before_the_sentence_whose_figure_was_refused_streamed_or_batched(retriever):
    reply = "BERT is pre-trained on text. It took approximately 4 days. It is good."
    *pieces, streamed = stream_answer("What are the pre-training tasks of BERT?", CuttingQueueGenerator(reply),
                                      retriever, config=CFG)
    assert "".join(pieces) == "BERT is pre-trained on text. It took approximately"  # the stream stops at the refusal
    assert streamed.text == "BERT is pre-trained on text."
    assert "figure its sources do not hold" in streamed.timing_line()  # the stream showed what was left out
    (batched,) = answer_batch(["What are the pre-training tasks of BERT?"], CuttingQueueGenerator(reply), retriever,
                              config=CFG)
    assert batched.text == "BERT is pre-trained on text."


def test_a_server_reply_is_read_for_figures_after_the_fact():
    from ragqa.reply import unheld_figures
    from ragqa.text import figures

    given = figures("The dataset holds 14,100 tweets from 2019.")
    assert unheld_figures("It has 14100 tweets from 2019.", given) == []  # "14,100" may be said "14100"
    assert unheld_figures("Steps: 1. Read. 2. Count 14,100 tweets.", given) == []  # a list's numbers are free
    assert unheld_figures("It has 14,100 tweets, about 1.2 million words.", given) == [
        "It has 14,100 tweets, about "]


def test_a_generator_that_cannot_hold_digits_back_has_its_reply_cut_the_same(retriever):
    """A server (no ``numbers_from``): the reply ends before its first sentence with a figure the sources and the
    question lack, streamed or batched, as the in-process model's does; without retrieval it is left whole."""
    reply = "BERT is pre-trained on text. It took approximately 4,321 days. It is good."
    question = "What are the 2 pre-training tasks of BERT?"
    streamed = answer(question, QueueGenerator(reply), retriever, config=CFG)
    assert streamed.text == "BERT is pre-trained on text."
    assert "figure its sources do not hold" in streamed.timing_line()
    (batched,) = answer_batch([question], QueueGenerator(reply), retriever, config=CFG)
    assert batched.text == "BERT is pre-trained on text."
    kept = answer(question, QueueGenerator("BERT has 2 pre-training tasks."), retriever, config=CFG)
    assert kept.text.startswith("BERT has 2 pre-training tasks.")  # the question's figure
    off = answer(question, QueueGenerator(reply), retriever, config=CFG, use_retrieval=False)
    assert off.text == reply


def test_a_served_models_reply_ends_before_a_figure_its_sources_lack(retriever, server, monkeypatch):
    """End to end through an OpenAI-compatible server (vLLM's API): the streamed reply is read once written."""
    from fakes import FakeOpenAI
    from ragqa.config import GeneratorConfig
    from ragqa.generators import load_generator

    monkeypatch.setattr(FakeOpenAI, "pieces", ["BERT is pre-trained ", "on text. It took ", "4,321 days."])
    gen = load_generator(GeneratorConfig(model="served-model", base_url=server))
    result = answer("What are the pre-training tasks of BERT?", gen, retriever, config=CFG)
    assert result.reply == "BERT is pre-trained on text." and result.timings["figure_cut"] == 1


class OwnCutsQueueGenerator(NumberRecordingGenerator):
    """As the in-process generator streams: each reply carries its own cuts; the generator's attribute is what
    another chat served meanwhile left there."""

    def generate(self, messages, max_new_tokens=None):
        from ragqa.generators._transformers import StreamedReply

        reply = self.replies[0]
        self.number_cuts = [["Another chat's reply"]]
        return StreamedReply(super().generate(messages, max_new_tokens),
                             [[reply.split(". ")[0] + ". It took approximately "]])


def test_a_streamed_reply_is_cut_by_its_own_refused_figures(retriever):
    reply = "BERT is pre-trained on text. It took approximately 4 days. It is good."
    question = "What are the pre-training tasks of BERT?"
    assert answer(question, OwnCutsQueueGenerator(reply), retriever, config=CFG).text == "BERT is pre-trained on text."
    (batched,) = answer_batch([question], OwnCutsQueueGenerator(reply), retriever, config=CFG)
    assert batched.text == "BERT is pre-trained on text."


def test_a_source_header_said_again_without_its_parenthesis_ends_the_reply():
    from ragqa.reply import before_source_echo

    assert before_source_echo("PAL is not limited to code-LMs. -PAL.pdf, p. 3 says") == "PAL is not limited to code-LMs."


def test_later_reply_sentences_go_on_only_in_words_the_sources_hold():
    from ragqa.citations import word_stems
    from ragqa.reply import reply_complete, shape

    held = word_stems("What is BERT? BERT is pre-trained with masked language modelling. Training reads text.")
    config = plain_answer_config(max_sentences=3)
    # the first sentence is the answer, whatever its words; a later one using a word no source holds ends the reply
    raw = "BERT is an encoder. It is trained on masked language modelling. It uses sinusoidal encodings. BERT reads text."
    assert shape(raw, "What is BERT?", config, held=held) == "BERT is an encoder. It is trained on masked language modelling."
    assert shape(raw, "What is BERT?", config) == ("BERT is an encoder. It is trained on masked language modelling. "
                                                   "It uses sinusoidal encodings.")
    # generation stops once such a sentence is complete, not before
    assert not reply_complete("BERT is an encoder. It uses sinusoidal enc", "What is BERT?", config, held=held)
    assert reply_complete("BERT is an encoder. It uses sinusoidal encodings. It", "What is BERT?", config, held=held)
    # a list's opening is not the answer: its first item is, and the items after it are checked
    listed = "The tasks are:\n1. Masked gymnastics.\n2. Language modelling.\n3. Sinusoidal dancing."
    assert shape(listed, "What is BERT?", config, held=held) == "The tasks are:\n1. Masked gymnastics.\n2. Language modelling."


def test_a_later_sentence_streams_once_checked_and_the_stream_is_the_answer(retriever):
    config = plain_answer_config(k=2, abstain_below=0.1, max_sentences=3, words_from_sources=True)
    gen = QueueGenerator("BERT is an encoder [1]. BERT reads text in both directions. It was invented in Paris.")
    items = list(stream_answer("What is BERT?", gen, retriever, config))
    assert "".join(items[:-1]) == items[-1].text == "BERT is an encoder [1]. BERT reads text in both directions."
    assert not any("Paris" in piece or "invented" in piece for piece in items[:-1])  # never shown, then taken back
    # without sources the model answers from memory: nothing to hold its words to
    gen = QueueGenerator("BERT is an encoder. It was invented in Paris.")
    items = list(stream_answer("What is BERT?", gen, retriever, config, use_retrieval=False))
    assert items[-1].text == "BERT is an encoder. It was invented in Paris."
