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
        assert row["messages"] == build_messages(row["question"], shown, [], 0, True) + [
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
    gen = QueueGenerator("Sure! Here are some questions.", "{not json", '{"question": "no quote"}')
    teacher = ModelTeacher(gen, retries=2)
    target = retriever.store.chunks[0]
    assert teacher.propose(target, Helper(retriever, AnswerConfig(), gen), ["factual"]) is None
    assert len(gen.prompts) == 3 and not gen.replies  # three tries, then counted, never a crash
    assert "Statement (from" in gen.prompts[0][1]["content"]


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
