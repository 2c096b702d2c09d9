import json

import pytest

from fakes import QueueGenerator
from ingest import ingest
from ragqa.config import AnswerConfig, Config, EvalConfig
from ragqa.evaluate import evaluate

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


def test_grid_scores_compares_and_writes_a_report(setup, tmp_path, word_embedder):
    # retrieval on answers well, retrieval off answers badly: the report must show it
    gen = QueueGenerator("masked language modelling and next sentence prediction [1]",
                         "autoregressively to predict the next token [1]", "the pretrained weights [1]",
                         "a text-to-text transformer",
                         "I think it is a car", "by hand", "nothing", "a text-to-text transformer")
    config = Config(answer=AnswerConfig(k=2, abstain_below=-1), eval=EvalConfig(retrieval="on,off", bootstrap=200))
    out = tmp_path / "report"
    summary = evaluate(setup, "ev", out, config, generator_factory=lambda cfg: gen, embedder=word_embedder,
                       progress=False)
    on, off = summary["arms"]["base · retrieval on"], summary["arms"]["base · retrieval off"]
    assert on["f1"]["mean"] == pytest.approx(1.0) and off["f1"]["mean"] == pytest.approx(0.25)
    assert on["doc_hit"]["mean"] == pytest.approx(0.75) and "doc_hit" not in off  # t5.pdf is not indexed
    assert on["abstention"] == {"answered_rate": 1.0, "precision": 1.0, "accuracy": 1.0}
    comp = summary["comparisons"][0]
    assert (comp["a"], comp["b"]) == ("base · retrieval on", "base · retrieval off")
    assert comp["correct"] == {"wins": 3, "losses": 0, "p": 0.25} and comp["f1"]["diff"] == pytest.approx(0.75)
    assert summary["missing_docs"] == ["t5.pdf"] and summary["problems"][0].endswith("skipped (JSONDecodeError: "
                                                                                     "Expecting property name enclosed in double quotes: line 1 column 2 (char 1))")
    rows = [json.loads(line) for line in (out / "results.jsonl").open()]
    assert len(rows) == 8 and rows[0]["retrieved"][0].endswith("bert.md")
    report = (out / "report.md").read_text()
    assert "| base · retrieval on | 1.000 [1.000, 1.000]" in report and "McNemar" in report
    assert (out / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "metrics.json").read_text())["questions"] == 4


def test_abstention_counts_as_unanswered(setup, tmp_path, word_embedder):
    gen = QueueGenerator("masked language modelling and next sentence prediction [1]")
    config = Config(answer=AnswerConfig(k=2, abstain_below=0.99), eval=EvalConfig(retrieval="on", limit=2, bootstrap=50))
    summary = evaluate(setup, "ev", tmp_path / "r", config, generator_factory=lambda cfg: gen,
                       embedder=word_embedder, progress=False)
    a = summary["arms"]["base · retrieval on"]["abstention"]
    assert a["answered_rate"] == 0.0 and a["accuracy"] == 0.0 and gen.prompts == []


def test_cli_eval_bad_qa_file_is_one_line(tmp_path):
    from typer.testing import CliRunner

    from ragqa.cli import app

    result = CliRunner().invoke(app, ["eval", "--qa", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "question file not found" in result.output
