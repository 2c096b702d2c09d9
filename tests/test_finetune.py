"""Training-data generation (``finetune.generate_data``) on a small Markdown corpus with the
word-overlap embedder: record format, RAFT contexts, filters, split, resume, bad input."""
import json
from collections import Counter

import pytest

from fakes import QueueGenerator, WordEmbedder
from finetune import generate_data
from finetune._assemble import Helper, WordCounter
from finetune._model_teacher import ModelTeacher
from finetune._output import split_records
from finetune._records import Record
from finetune._teacher import Candidate, DeterministicTeacher
from ft_corpus import write_corpus
from ingest import ingest
from ragqa.citations import check_citations, normalize
from ragqa.config import AnswerConfig, Config, DataConfig
from ragqa.errors import ConfigError, GeneratorError, IndexNotFound
from retrieval import Retriever
from retrieval.context import ABSTAIN, SYSTEM_RAG, Source, build_messages
from retrieval.store import IndexStore


def cfg(**data) -> Config:
    return Config(data=DataConfig(**data))


@pytest.fixture
def retriever(tmp_path, word_embedder):
    ingest([write_corpus(tmp_path / "corpus")], index="ft", embedder=word_embedder, progress=False)
    return Retriever(IndexStore.open("ft"), word_embedder)


def rows(out):
    from datasets import load_from_disk

    ds = load_from_disk(str(out))
    return {name: list(ds[name]) for name in ds}


def test_records_are_raft_items_built_like_answer_time_prompts(retriever, tmp_path):
    out = tmp_path / "data"
    stats = generate_data("ft", out, cfg(n=24), retriever=retriever, progress=False)
    by_id = {c.id: c for c in retriever.store.chunks}
    splits = rows(out)
    assert set(splits) == {"train", "validation", "test"} and stats["records"] == sum(map(len, splits.values())) >= 12
    for row in (r for split in splits.values() for r in split):
        shown = [Source(s["n"], by_id[s["chunk_id"]], s["text"], term=s["term"]) for s in row["sources"]]
        assert row["messages"] == build_messages(row["question"], shown, [], 0, True, yes_no_hint=True) + [
            {"role": "assistant", "content": row["answer"]}]
        assert row["messages"][0]["content"] == SYSTEM_RAG and row["teacher"] == "deterministic"
        assert all(by_id[d].doc_id != row["doc_id"] for d in row["distractor_ids"])
        assert 1 <= len(row["distractor_ids"]) <= 3 + len(row["oracle_ids"]) * row["abstain"]
        ids = {s["chunk_id"] for s in row["sources"] if not s["term"]}
        if row["abstain"]:
            assert row["answer"] == ABSTAIN and not ids & set(row["oracle_ids"])
            continue
        assert set(row["oracle_ids"]) <= ids and normalize(row["quote"]) in normalize(by_id[row["oracle_id"]].text)
        cites = check_citations(row["answer"], {s["n"]: s["text"] for s in row["sources"]})
        assert cites and all(c.status == "verified quote" for c in cites)
    jsonl = [json.loads(line) for line in open(out / "train.jsonl")]
    assert [r["id"] for r in jsonl] == [r["id"] for r in splits["train"]]
    card = (out / "README.md").read_text()
    assert "Filter funnel" in card and "| train |" in card and "teacher: `deterministic`" in card
    assert "## Source documents" in card and all(f"{r['source'].split('/')[-1]}" in card for r in jsonl)


def test_no_document_is_in_two_splits_and_cross_split_duplicates_go(retriever, tmp_path):
    generate_data("ft", tmp_path / "d", cfg(n=30), retriever=retriever, progress=False)
    where = {}
    for name, split in rows(tmp_path / "d").items():
        for row in split:
            assert where.setdefault(row["doc_id"], name) == name
    assert set(where.values()) == {"train", "validation", "test"}  # six documents: 4/1/1

    def rec(doc, q):
        return Record(q, "a", "factual", "t", doc, "p", "t", f"{doc}-c", sources=[])
    unique = ["Which corpus trains it?", "How fast is decoding?", "Why freeze weights?", "Where do tokens go?",
              "When does warmup stop?", "Who labels pairs?"]
    records = [rec(f"d{i}", q) for i, q in enumerate(unique)]
    records += [rec(f"d{i}", "What does the BERT base model use in every stage?") for i in range(6)]
    splits, dropped = split_records(records, DataConfig())
    assert len(splits["train"]) == 8 and len(splits["validation"]) == len(splits["test"]) == 1
    assert dropped == 2 and not any("BERT" in r.question for r in splits["validation"] + splits["test"])


def test_the_deterministic_teacher_reads_every_kind_off_the_text(retriever):
    helper = Helper(retriever, AnswerConfig(), WordCounter())
    method = next(c for c in retriever.store.chunks if c.title.startswith("BERT") and "Method" in c.section)
    cands = DeterministicTeacher().propose(method, helper, ["definition", "numeric", "factual", "judgmental",
                                                            "comparison"])
    got = {c.kind: c for c in cands}
    assert got["definition"].question == "What is BERT?"
    assert got["numeric"].short == "12 layers." and "___ layers" in got["numeric"].question
    assert got["judgmental"].short == "Yes." and got["judgmental"].alt.short == "No."
    assert got["comparison"].second is not None and got["comparison"].second.id != method.id
    assert all(normalize(c.quote) in normalize(method.text) for c in cands)


@pytest.mark.parametrize("sentence, question", [
    ("HNSW builds hierarchical layers of these small-world graphs.", "What does HNSW build?"),
    ("A BiRNN consists of forward and backward RNNs.", "What does the BiRNN consist of?"),  # the verb's preposition
    ("Swish also matches or exceeds the best baseline on most models.", "What does swish also match?"),
    ("GPT-2 improves the state of the art on seven datasets.", "What does GPT-2 improve?"),
    ("Data overlap analysis shows that the test sets overlap with WebText.", "What does data overlap analysis show?"),
    # the dev corpus's own sentences that were asked as "What does the weights of these shortcut
    # connection?", "What does the model has 10 conv layer?", "What does A weight decay tend?", "What does
    # adding max-norm constraint?", "What does Architectures The above investigation?"
    ("The weights of these shortcut connections are customizable for each output element.", ""),
    ("This model has 10 conv layers all with 3x3 filters.", ""),
    ("A weight decay tends to push ai to zero, and thus biases PReLU toward ReLU.", ""),
    ("Adding max-norm constraints did not give any improvements.", ""),
    ("Architectures The above investigations provide guidelines of designing our architectures.", ""),
    # "What does multiplicative gate unit?": the plural noun taken for the verb when the real one follows
    ("Multiplicative gate units learn to open and close access to the constant error flow.", ""),
])
def test_what_does_x_do_is_asked_only_of_a_subject_and_its_verb(sentence, question):
    from finetune._teacher import _SVO, svo_question

    assert svo_question(_SVO.match(sentence), sentence) == question


def test_judgmental_answers_are_about_half_no_and_abstentions_a_fifth(retriever, tmp_path):
    stats = generate_data("ft", tmp_path / "j", cfg(n=20, kinds="judgmental,numeric", per_chunk=3),
                          retriever=retriever, progress=False)
    records = [r for s in rows(tmp_path / "j").values() for r in s]
    answers = Counter(r["answer"][:3] for r in records if r["kind"] == "judgmental" and not r["abstain"])
    assert answers["No."] >= 2 and abs(answers["Yes"] - answers["No."]) <= 1
    assert sum(r["abstain"] for r in records) == int(stats["records"] * 0.2)


class CraftedTeacher:
    """Proposes crafted candidates for one chunk (each meant to trip one filter) and nothing else."""

    name = "deterministic"
    needs_background = False

    def __init__(self, target):
        self.target = target

    def propose(self, chunk, helper, kinds):
        if chunk.id != self.target.id:
            return []
        good = "The BERT base model uses 12 layers in every stage of the network."
        return [Candidate("factual", "Why?", "", good),
                Candidate("factual", "What " + "exactly " * 45 + "does it use?", "", good),
                Candidate("factual", "BERT 模型的每个阶段使用多少层？", "", good),
                Candidate("factual", "What was BERT trained on in the study?", "", "BERT was trained on cat pictures."),
                Candidate("numeric", "How many layers does the BERT base model use?", "12 layers.", good),
                Candidate("numeric", "How many layers does the BERT base model use then?", "12 layers.", good)]


def test_each_filter_is_triggered_and_counted(retriever, tmp_path):
    target = next(c for c in retriever.store.chunks if c.title.startswith("BERT") and "Method" in c.section)
    stats = generate_data("ft", tmp_path / "f", cfg(n=5, per_chunk=10, abstain_share=0.0),
                          retriever=retriever, teacher=CraftedTeacher(target), progress=False)
    f = stats["funnel"]
    assert (f["too_short"], f["too_long"], f["wrong_language"], f["unsupported"], f["near_duplicate"], f["kept"]) \
        == (1, 1, 1, 1, 1, 1)


def test_unparseable_teacher_replies_are_retried_a_bounded_number_of_times(retriever, tmp_path):
    from finetune._teacher import usable_sentences

    target = next(c for c in retriever.store.chunks if usable_sentences(c.text))
    asked = min(2, len(usable_sentences(target.text)))
    gen = QueueGenerator("Sure! Here are some questions.", "{not json", '{"question": "no quote"}',
                         *["I am not sure."] * asked)
    teacher = ModelTeacher(gen, retries=2)
    assert teacher.propose(target, Helper(retriever, AnswerConfig(), gen), ["factual"]) is None
    assert asked and len(gen.prompts) == 3 + asked and not gen.replies  # bounded tries, then counted, never a crash
    assert "Statement (from" in gen.prompts[0][1]["content"] and "Write one question" in gen.prompts[-1][1]["content"]


class QuestionWriter(QueueGenerator):
    """A small model as measured: no JSON for the self-instruct prompt, but a question when given
    one sentence (the answer-first fallback), built from that sentence's words."""

    name = "test/small"

    def generate(self, messages, max_new_tokens=None):
        self.prompts.append(messages)
        content = messages[1]["content"]
        if content.startswith("Statement (from"):
            yield "Here are the questions you asked for."
            return
        w = content.split("\n")[1].split()
        yield f"Sure!\nQuestion: Which {w[2]} {w[3]} does {w[0]} have?\nIt says"


def test_a_small_model_teacher_falls_back_to_answer_first_questions(retriever, tmp_path):
    from ragqa.citations import normalize

    gen = QuestionWriter()
    stats = generate_data("ft", tmp_path / "s", cfg(n=4, abstain_share=0.0), retriever=retriever,
                          teacher=ModelTeacher(gen, retries=0), progress=False)
    records = [r for s in rows(tmp_path / "s").values() for r in s]
    by_id = {c.id: c for c in retriever.store.chunks}
    assert len(records) == 4 and stats["funnel"]["unparseable"] == 0
    for r in records:
        w = r["quote"].split()
        assert r["teacher"] == "test/small" and r["question"] == f"Which {w[2]} {w[3]} does {w[0]} have?"  # of its quote
        assert normalize(r["quote"]) in normalize(by_id[r["oracle_id"]].text)


class BatchQuestionWriter(QuestionWriter):
    """``QuestionWriter`` that also answers in batches, as in-process models do."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def generate_batch(self, chats, max_new_tokens=None, samples=0, temperature=0.7, done=None):
        self.batches.append(len(chats))
        return ["".join(self.generate(chat, max_new_tokens)) for chat in chats]


def test_a_model_teacher_that_cannot_write_the_format_stops_being_asked_it(retriever, tmp_path):
    gen = BatchQuestionWriter()
    teacher = ModelTeacher(gen, retries=1, give_up_after=3)
    stats = generate_data("ft", tmp_path / "s", cfg(n=8, abstain_share=0.0), retriever=retriever, teacher=teacher,
                          progress=False)
    statements = [p for p in gen.prompts if p[1]["content"].startswith("Statement (from")]
    assert len(statements) == 3 * 2 and teacher.answers_first  # 3 chunks of 1 + 1 retry, then never again
    assert stats["funnel"]["chunks"] > 3 and stats["funnel"]["unparseable"] == 0
    # each chunk's answer-first questions came in one batch (two sentences where the chunk has two)
    assert gen.batches and max(gen.batches) == 2 and sum(gen.batches) == len(gen.prompts) - len(statements)
    # a model that writes the format for every other chunk is always asked it: misses count only in a row
    now_and_then = NowAndThen()
    teacher = ModelTeacher(now_and_then, retries=0, give_up_after=2)
    stats = generate_data("ft", tmp_path / "e", cfg(n=4, abstain_share=0.0), retriever=retriever, teacher=teacher,
                          progress=False)
    assert now_and_then.statements == stats["funnel"]["chunks"] > 2 and not teacher.answers_first


class NowAndThen(QuestionWriter):
    """Writes a parseable JSON question for every other chunk's self-instruct prompt, none for the rest."""

    statements = 0

    def generate(self, messages, max_new_tokens=None):
        content = messages[1]["content"]
        if not content.startswith("Statement (from"):
            yield from super().generate(messages, max_new_tokens)
            return
        self.prompts.append(messages)
        self.statements += 1
        first = content.split("\n", 1)[1].split(". ")[0].rstrip(".") + "."
        yield json.dumps({"kind": "factual", "question": f"Explain: {' '.join(first.split()[:7])}?", "answer": "x",
                          "quote": first}) if self.statements % 2 == 0 else "No JSON this time."


class EchoModel(QueueGenerator):
    """A model teacher whose reply means something: one JSON question quoting the statement's first
    sentence, after one unparseable reply per chunk."""

    name = "test/echo"

    def generate(self, messages, max_new_tokens=None):
        self.prompts.append(messages)
        if len(self.prompts) % 2:
            yield "I cannot answer in JSON."
            return
        statement = messages[1]["content"].split("\n", 1)[1].split("\n\n")[0]
        first = statement.split(". ")[0].rstrip(".") + "."
        yield json.dumps({"kind": "factual", "question": f"Explain: {' '.join(first.split()[:7])}?",
                          "answer": first.split()[0], "quote": first, "rating": 4})


def test_a_model_teacher_produces_the_same_record_format(retriever, tmp_path):
    gen = EchoModel()
    stats = generate_data("ft", tmp_path / "m", cfg(n=4, abstain_share=0.0), retriever=retriever,
                          teacher=ModelTeacher(gen, retries=1), progress=False)
    records = [r for s in rows(tmp_path / "m").values() for r in s]
    assert len(records) == 4 and stats["teacher"] == "test/echo"
    for r in records:
        assert r["rating"] == 4.0 and r["teacher"] == "test/echo" and r["kind"] == "factual"
        cites = check_citations(r["answer"], {s["n"]: s["text"] for s in r["sources"]})
        assert [c.status for c in cites] == ["verified quote"]
    assert stats["funnel"]["unparseable"] == 0 and len(gen.prompts) == 2 * stats["funnel"]["chunks"]


KILL_SCRIPT = """
import sys, os, signal
sys.path[:0] = [{tests!r}, {root!r}]
from fakes import WordEmbedder
from finetune import generate_data
from finetune._teacher import DeterministicTeacher
from ragqa.config import Config, DataConfig
from retrieval import Retriever
from retrieval.store import IndexStore

class Dies(DeterministicTeacher):
    calls = 0
    def propose(self, chunk, helper, kinds):
        Dies.calls += 1
        if Dies.calls == 4:  # mid-run, after three chunks' records are logged
            os.kill(os.getpid(), signal.SIGKILL)
        return super().propose(chunk, helper, kinds)

emb = WordEmbedder()
generate_data("ft", sys.argv[1], Config(data=DataConfig(n=16)), retriever=Retriever(IndexStore.open("ft"), emb),
              teacher=Dies(), progress=False)
"""


def test_a_rerun_after_kill_9_resumes_to_the_same_dataset(retriever, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "gen.py"
    script.write_text(KILL_SCRIPT.format(tests=str(Path(__file__).parent), root=str(Path(__file__).parents[1])))
    out = tmp_path / "killed"
    proc = subprocess.run([sys.executable, str(script), str(out)], env=os.environ.copy(), timeout=300,
                          cwd=Path(__file__).parents[1])
    assert proc.returncode == -9
    logged = (out / "progress.jsonl").read_text().splitlines()
    assert sum('"done"' in line[:8] for line in logged) == 3 and not (out / "train.jsonl").exists()
    with open(out / "progress.jsonl", "a") as f:  # a torn last line, as a kill during a write leaves
        f.write('{"record": {"question": "half')
    resumed = generate_data("ft", out, cfg(n=16), retriever=retriever, progress=False)
    fresh = generate_data("ft", tmp_path / "fresh", cfg(n=16), retriever=retriever, progress=False)
    assert resumed["funnel"] == fresh["funnel"] and resumed["splits"] == fresh["splits"]
    assert rows(out) == rows(tmp_path / "fresh")
    again = generate_data("ft", out, cfg(n=16), retriever=retriever, progress=False)  # nothing left to do
    assert again["funnel"]["chunks"] == fresh["funnel"]["chunks"]


def test_an_output_folder_holding_another_dataset_is_refused(retriever, tmp_path):
    generate_data("ft", tmp_path / "a", cfg(n=3), retriever=retriever, progress=False)
    with pytest.raises(ConfigError, match=r"already holds a different dataset \(seed: 0\) — pass another --out"):
        generate_data("ft", tmp_path / "a", cfg(n=3, seed=1), retriever=retriever, progress=False)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty and holds no gen-data dataset"):
        generate_data("ft", tmp_path / "b", cfg(n=3), retriever=retriever, progress=False)


def test_empty_index_and_unreachable_teacher_fail_with_one_line_keeping_progress(retriever, tmp_path):
    from types import SimpleNamespace

    from ragqa.config import GeneratorConfig
    from ragqa.generators import OpenAIGenerator

    empty = SimpleNamespace(store=SimpleNamespace(chunks=[]))
    with pytest.raises(IndexNotFound, match="holds no passages — add documents: ragqa ingest PATH --index e"):
        generate_data("e", tmp_path / "e", cfg(n=3), retriever=empty, progress=False)

    class FailsLater(DeterministicTeacher):
        name, calls = "served", 0
        server = ModelTeacher(OpenAIGenerator(GeneratorConfig(model="m", base_url="http://127.0.0.1:9/v1")))

        def propose(self, chunk, helper, kinds):
            self.calls += 1
            return super().propose(chunk, helper, kinds) if self.calls <= 2 else self.server.propose(chunk, helper, kinds)

    with pytest.raises(GeneratorError, match="unreachable"):
        generate_data("ft", tmp_path / "u", cfg(n=10), retriever=retriever, teacher=FailsLater(), progress=False)
    kept = [line for line in open(tmp_path / "u" / "progress.jsonl") if line.startswith('{"record"')]
    assert kept  # the chunks done before the server went away stay done


def test_gen_data_command(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from ragqa.cli import app

    monkeypatch.setattr("retrieval.embed.load_embedder", lambda config=None: WordEmbedder())
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", "-q", str(write_corpus(tmp_path / "c")), "--index", "p"]).exit_code == 0
    result = runner.invoke(app, ["gen-data", "--index", "p", "--out", str(tmp_path / "d"), "--n", "8", "-q"])
    assert result.exit_code == 0, result.output
    assert "8 records (target 8) from index p, teacher deterministic" in result.output and "funnel: chunks" in result.output
    assert len(rows(tmp_path / "d")["train"]) >= 1
    missing = runner.invoke(app, ["gen-data", "--index", "nope", "--out", str(tmp_path / "x")])
    assert missing.exit_code == 1 and missing.output.count("\n") == 1 and "index 'nope' not found" in missing.output
    bad = runner.invoke(app, ["gen-data", "--index", "p", "--out", str(tmp_path / "x"), "--kinds", "riddles"])
    assert bad.exit_code == 1 and "data.kinds: unknown ['riddles']" in bad.output


def test_an_unreachable_teacher_server_is_one_line(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from ragqa.cli import app

    monkeypatch.setattr("retrieval.embed.load_embedder", lambda config=None: WordEmbedder())
    runner = CliRunner()
    runner.invoke(app, ["ingest", "-q", str(write_corpus(tmp_path / "c")), "--index", "p"])
    result = runner.invoke(app, ["gen-data", "--index", "p", "--out", str(tmp_path / "d"), "-q",
                                 "--teacher", "qwen", "--teacher-url", "http://127.0.0.1:9/v1"])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "server http://127.0.0.1:9/v1: unreachable" in result.output


def test_near_duplicate_index_agrees_with_brute_force_rouge_l():
    import random

    from finetune._text import NearDuplicates, rouge_l, words

    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(60)] + ["what", "is", "the", "of", "does", "a"] * 10
    questions = [" ".join(rng.choice(vocab) for _ in range(rng.randint(2, 10))) for _ in range(300)]
    questions += [q + " x" for q in questions[:60]] + ["what is the", "what is it", "the of a", "什么 是 BERT"]
    index, kept = NearDuplicates(0.7), []
    for q in questions:
        near = index.is_near(q)
        assert near == any(rouge_l(words(q), words(k)) > 0.7 for k in kept), q
        if not near:
            index.add(q)
            kept.append(q)
    assert 60 <= len(questions) - len(kept)


def test_question_answer_lines_are_parsed_when_the_answer_is_in_the_statement():
    from finetune._model_teacher import parse_reply

    statement = "The BERT base model uses 12 layers in every stage. We train BERT with warmup."
    reply = ("Question 1: How many layers does the BERT base model use?\nAnswer 1: 12 layers in every stage\n\n"
             "Question 2: Why is the sky blue?\nAnswer 2: Rayleigh scattering of light")
    cands = parse_reply(reply, ["numeric", "factual"], statement)
    assert [(c.kind, c.question, c.quote) for c in cands] == [
        ("numeric", "How many layers does the BERT base model use?", "The BERT base model uses 12 layers in every stage.")]
    assert parse_reply('{"kind": "factual", "question": "Q?", "answer": "a", "quote": "x"}', ["factual"])[0].rating is None


def test_answer_first_questions_that_copy_the_sentence_or_ask_yes_no_are_not_used():
    from finetune._model_teacher import _kind_of, parse_question

    sentence = "The BERT base model uses 12 layers of transformer blocks."
    assert parse_question("Question: The BERT base model uses 12 layers of transformer blocks?", sentence) == ""  # a copy
    assert parse_question("1. How many layers does BERT base have?\nAnswer: 12", sentence) == \
        "How many layers does BERT base have?"
    assert parse_question("BERT base has twelve layers.", sentence) == ""  # no question at all
    assert _kind_of("How many layers does BERT base have?", sentence, ["numeric", "factual"]) == "numeric"
    assert _kind_of("Does BERT base use 12 layers?", sentence, ["factual"]) == "judgmental"  # then skipped
    assert _kind_of("What is BERT base?", sentence, ["factual"]) == ""  # a kind not asked for
