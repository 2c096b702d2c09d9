import json

import pytest

from fakes import LoopingQueueGenerator, QueueGenerator, plain_answer_config
from ingest import ingest
from ragqa.config import Config, EvalConfig
from ragqa.evaluate import evaluate
from ragqa.metrics import doc_hit

DOCS = {"bert.md": "# BERT\n\nBERT is pre-trained with masked language modelling and next sentence prediction.",
        "gpt.md": "# GPT\n\nGPT is trained autoregressively to predict the next token from left context.",
        "lora.md": "# LoRA\n\nLoRA freezes pretrained weights and trains low-rank matrices."}
QA = [{"question": "What are the pre-training tasks of BERT?", "answer": "masked language modelling and next "
       "sentence prediction", "source_pdf": "bert.md"},
      {"question": "How is GPT trained?", "answer": "autoregressively to predict the next token", "source_pdf": "gpt.md"},
      {"question": "What does LoRA freeze?", "answer": "the pretrained weights", "source_pdf": "lora.md"},
      {"question": "What is T5?", "answer": "a text-to-text transformer", "source_pdf": "t5.pdf"}]


@pytest.fixture
def setup(tmp_path, word_embedder):
    for name, text in DOCS.items():
        (tmp_path / name).write_text(text)
    ingest([tmp_path], index="ev", embedder=word_embedder, progress=False)
    qa = tmp_path / "qa.jsonl"
    qa.write_text("\n".join(json.dumps(q) for q in QA) + "\n{broken\n")
    return qa


def test_eval_counts_answers_that_state_a_figure_no_retrieved_passage_holds(setup, tmp_path, word_embedder):
    replies = ("BERT was pre-trained in 2018 on masked language modelling [1]",
               "autoregressively, as in 1 of its passages [1]", "the weights: 1. pretrained\n2. frozen [1]",
               "a text-to-text transformer")

    def run(out, **answer):
        config = Config(answer=plain_answer_config(k=2, abstain_below=-1, **answer),
                        eval=EvalConfig(retrieval="on", bootstrap=50, yardstick=False))
        summary = evaluate(setup, "ev", tmp_path / out, config, generator_factory=lambda cfg: QueueGenerator(*replies),
                           embedder=word_embedder, progress=False)
        rows = [json.loads(line) for line in (tmp_path / out / "results.jsonl").open()]
        return [r["unsupported_figures"] for r in rows], summary["arms"]["base · retrieval on"]["citations"]

    # neither 2018 nor 1 is in the question or a retrieved passage; a list number opening a line is no figure
    figures, citations = run("free", numbers_from_sources=False)
    assert figures == [["2018"], ["1"], [], []] and citations["unsupported_figure_rate"] == 0.5
    assert "| 50% |" in (tmp_path / "free" / "report.md").read_text()
    # held to the sources (a generator without numbers_from is read once written): those sentences go
    figures, citations = run("held")
    assert figures == [[], [], [], []] and citations["unsupported_figure_rate"] == 0.0


def test_grid_scores_compares_and_writes_a_report(setup, tmp_path, word_embedder):
    # retrieval on answers well, retrieval off answers badly: the report must show it
    gen = QueueGenerator("masked language modelling and next sentence prediction [1]",
                         "autoregressively to predict the next token [1]", "the pretrained weights [1]",
                         "a text-to-text transformer",
                         "I think it is a car", "by hand", "nothing", "a text-to-text transformer")
    config = Config(answer=plain_answer_config(k=2, abstain_below=-1),
                    eval=EvalConfig(retrieval="on,off", bootstrap=200, yardstick=False))
    out = tmp_path / "report"
    summary = evaluate(setup, "ev", out, config, generator_factory=lambda cfg: gen, embedder=word_embedder,
                       progress=False)
    on, off = summary["arms"]["base · retrieval on"], summary["arms"]["base · retrieval off"]
    assert on["f1"]["mean"] == pytest.approx(1.0) and off["f1"]["mean"] == pytest.approx(0.25)
    assert on["doc_hit"]["mean"] == pytest.approx(0.75) and "doc_hit" not in off  # t5.pdf is not indexed
    assert on["abstention"] == {"answered_rate": 1.0, "precision": 1.0, "accuracy": 1.0}
    assert on["citations"] == {"cite_rate": 0.75, "model_cite_rate": 0.75, "unsupported_figure_rate": 0.0}
    assert "citations" not in off
    assert "loop_stops" not in on  # this backend cannot tell; the transformers one counts them
    comp = summary["comparisons"][0]
    assert (comp["a"], comp["b"]) == ("base · retrieval on", "base · retrieval off")
    assert comp["correct"] == {"wins": 3, "losses": 0, "p": 0.25} and comp["f1"]["diff"] == pytest.approx(0.75)
    assert summary["missing_docs"] == ["t5.pdf"] and summary["problems"][0].endswith("skipped (JSONDecodeError: "
                                                                                     "Expecting property name enclosed in double quotes: line 1 column 2 (char 1))")
    rows = [json.loads(line) for line in (out / "results.jsonl").open()]
    assert len(rows) == 8 and rows[0]["retrieved"][0].endswith("bert.md")
    report = (out / "report.md").read_text()
    assert "| base · retrieval on | 1.000 [1.000, 1.000]" in report and "McNemar" in report
    assert "| base · retrieval on | 75% | 75% | 0% | – |" in report
    assert (out / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "metrics.json").read_text())["questions"] == 4


def test_abstention_counts_as_unanswered(setup, tmp_path, word_embedder):
    gen = QueueGenerator("masked language modelling and next sentence prediction [1]")
    config = Config(answer=plain_answer_config(k=2, abstain_below=0.99),
                    eval=EvalConfig(retrieval="on", limit=2, bootstrap=50, yardstick=False))
    summary = evaluate(setup, "ev", tmp_path / "r", config, generator_factory=lambda cfg: gen,
                       embedder=word_embedder, progress=False)
    a = summary["arms"]["base · retrieval on"]["abstention"]
    assert a["answered_rate"] == 0.0 and a["accuracy"] == 0.0 and gen.prompts == []


def test_cli_eval_bad_qa_file_is_one_line(tmp_path):
    from typer.testing import CliRunner

    from ragqa.cli import app

    result = CliRunner().invoke(app, ["eval", "--qa", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "question file not found" in result.output


def test_copy_one_sentence_yardstick_is_an_arm_and_compared(setup, tmp_path, word_embedder):
    gen = QueueGenerator("by hand", "nothing", "a car", "a text-to-text transformer")
    config = Config(answer=plain_answer_config(k=2, abstain_below=-1), eval=EvalConfig(retrieval="on", bootstrap=50))
    summary = evaluate(setup, "ev", tmp_path / "r", config, generator_factory=lambda cfg: gen,
                       embedder=word_embedder, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "r" / "results.jsonl").open()]
    copied = {r["id"]: r["answer"] for r in rows if r["arm"] == "copy-one-sentence · retrieval on"}
    # the sentence closest to the question, copied verbatim from the retrieved passage
    assert copied["qa-1"] == "BERT is pre-trained with masked language modelling and next sentence prediction."
    comp = next(c for c in summary["comparisons"] if c["b"] == "copy-one-sentence · retrieval on")
    assert comp["a"] == "base · retrieval on" and comp["f1"]["diff"] < 0  # the model's wrong answers lose


def test_scoped_question_whose_document_is_absent_is_an_error_not_an_unscoped_answer(tmp_path, word_embedder):
    for name, text in DOCS.items():
        (tmp_path / name).write_text(text)
    ingest([tmp_path], index="ev", embedder=word_embedder, progress=False)
    qa = tmp_path / "qasper.jsonl"
    qa.write_text("\n".join(json.dumps(q) for q in [
        {"id": "q1", "doc_id": "bert", "question": "What are the tasks?", "answers": ["masked language modelling"],
         "answer_type": "free_form"},
        {"id": "q2", "doc_id": "t5", "question": "What is it?", "answers": ["a text-to-text transformer"],
         "answer_type": "free_form"}]))
    gen = QueueGenerator("masked language modelling [1]")
    config = Config(answer=plain_answer_config(k=2, abstain_below=-1, abstain_below_scoped=-1),
                    eval=EvalConfig(retrieval="on", bootstrap=50, yardstick=False))
    summary = evaluate(qa, "ev", tmp_path / "r", config, generator_factory=lambda cfg: gen, embedder=word_embedder,
                       progress=False)
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "r" / "results.jsonl").open())}
    assert summary["missing_docs"] == ["t5"]  # 'bert' matches bert.md by its stem
    assert rows["q1"]["doc_hit"] == 1.0 and rows["q1"]["f1"] == 1.0 and "error" not in rows["q1"]
    assert "not in the index" in rows["q2"]["error"] and rows["q2"]["f1"] == 0.0 and len(gen.prompts) == 1


def test_yes_no_items_are_scored_on_the_verdict(word_embedder):
    from ragqa.evaluate import score
    from ragqa.qa_formats import QAItem

    item = QAItem("q", "Is the lexicon shared?", answers=["Yes"], kind="yes_no")
    assert score(item, '"The lexicon is built over all the data." [1]\n\nYes, it is shared [1].', word_embedder, False)["em"] == 1
    assert score(item, "No, each language has its own.", word_embedder, False)["f1"] == 0


def test_gen_data_records_are_asked_of_the_whole_index_and_qasper_of_its_paper(tmp_path):
    from ragqa.qa_formats import load_qa

    f = tmp_path / "q.jsonl"
    f.write_text(json.dumps({"question": "What does LoRA freeze?", "answer": "the weights", "doc_id": "ab12",
                             "source": "/papers/lora.pdf", "oracle_id": "ab12-3"}) + "\n"
                 + json.dumps({"id": "q", "doc_id": "qasper_doc_00", "question": "What is it?", "answers": ["x"]}))
    gen, qasper = load_qa(f)[0]
    assert not gen.scoped and qasper.scoped
    # a gen-data record's doc_id is the index's hash of the document: its doc hit is its source file
    assert doc_hit(["/elsewhere/bert.pdf", "/home/me/papers/lora.pdf"], gen.doc, k=2) == 1
    assert doc_hit(["/elsewhere/bert.pdf"], gen.doc, k=1) == 0


def test_base_is_the_untuned_model_and_auto_what_ask_serves():
    from ragqa.config import resolve_adapter
    from ragqa.evaluate import _generator_config, arms

    base, auto = arms(Config(eval=EvalConfig(models="base,auto", retrieval="on")))[:2]
    assert resolve_adapter(_generator_config(Config(), base).model, _generator_config(Config(), base).adapter) == ""
    served = _generator_config(Config(), auto)
    assert served.adapter == "auto" == Config().generator.adapter  # the arm loads what `ragqa ask` loads


def test_an_arm_reports_the_replies_the_loop_stop_cut_as_its_answers_record_them(setup, tmp_path, word_embedder):
    looping = "masked language modelling. It is it is again again"
    gen = LoopingQueueGenerator(looping, "autoregressively [1]", looping, "a text-to-text transformer")
    config = Config(answer=plain_answer_config(k=2, abstain_below=-1),
                    eval=EvalConfig(retrieval="on", bootstrap=50, yardstick=False))
    summary = evaluate(setup, "ev", tmp_path / "report", config, generator_factory=lambda cfg: gen,
                       embedder=word_embedder, progress=False)
    assert summary["arms"]["base · retrieval on"]["loop_stops"] == 2


def test_compare_pairs_two_runs_on_the_same_questions(setup, tmp_path, word_embedder):
    from typer.testing import CliRunner

    from ragqa.cli import app
    from ragqa.evaluate import compare_runs

    config = Config(answer=plain_answer_config(k=2, abstain_below=-1),
                    eval=EvalConfig(retrieval="on", limit=3, bootstrap=50, yardstick=False))
    runs = {"good": QueueGenerator("masked language modelling and next sentence prediction [1]",
                                   "autoregressively to predict the next token [1]", "the pretrained weights [1]"),
            "bad": QueueGenerator("by hand", "the pretrained weights", "nothing at all")}
    for name, gen in runs.items():
        evaluate(setup, "ev", tmp_path / name, config, generator_factory=lambda cfg, g=gen: g,
                 embedder=word_embedder, progress=False)
    (c,) = compare_runs(tmp_path / "good", tmp_path / "bad")
    assert (c["new"], c["old"], c["questions"], c["changed"]) == ("base · retrieval on", "base · retrieval on", 3, 3)
    # every question better in the new run: the paired interval lies above zero
    assert c["f1"]["new"] == pytest.approx(1.0) and c["f1"]["diff"] == pytest.approx(c["f1"]["new"] - c["f1"]["old"])
    assert c["f1"]["lo"] > 0 and c["semantic_sim"]["lo"] > 0
    (back,) = compare_runs(tmp_path / "bad", tmp_path / "good")
    assert back["f1"]["diff"] == pytest.approx(-c["f1"]["diff"]) and back["f1"]["hi"] < 0

    runner = CliRunner()
    shown = runner.invoke(app, ["compare", str(tmp_path / "good"), str(tmp_path / "bad")])
    assert shown.exit_code == 0 and "3 answers changed" in shown.output and "better" in shown.output
    missing = runner.invoke(app, ["compare", str(tmp_path / "good"), str(tmp_path / "none")])
    assert missing.exit_code == 1 and "no results.jsonl" in missing.output
    other = runner.invoke(app, ["compare", str(tmp_path / "good"), str(tmp_path / "bad"), "--arm-old", "auto · retrieval on"])
    assert other.exit_code == 1 and "no arm 'auto · retrieval on'" in other.output


def test_the_yes_no_bench_set_is_balanced_scoped_and_scored_by_verdict(evalcorpus):
    from pathlib import Path

    from ragqa.qa_formats import load_qa

    items = load_qa(Path(__file__).resolve().parents[1] / "bench" / "yes_no_questions.jsonl")[0]
    verdicts = [it.answers[0] for it in items]
    # half "No": a model that always says "Yes" scores 0.5 here, not full marks as on QASPER's dev items
    assert verdicts.count("Yes") == verdicts.count("No") == 15
    assert all(it.kind == "yes_no" and it.scoped for it in items)
    papers = {p.stem for p in (evalcorpus / "qasper_leval" / "pdfs_rendered").glob("*.pdf")}
    assert {it.doc for it in items} <= papers  # each question is asked of a paper the dev corpus holds
